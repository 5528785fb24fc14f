"""The one settings table: every TrainConfig field is reachable from a flag, from YAML and from
the form (or says why not), every flag has help, and mlx_lm.lora's flags keep their names."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlxtui.cli.train import add_train_arguments, config_from_args
from mlxtui.core.config import (
    FORM_FIELDS,
    SETTINGS,
    ConfigError,
    FieldSpec,
    TrainConfig,
    field_label,
    flag_for,
    from_dict,
    get_field,
    load_config,
    save_config,
    set_field,
    validate_field,
)

FIELDS = [f.name for f in fields(TrainConfig)]
# values that mean something for settings a plain string or number cannot show
TEXT_EXAMPLES = {
    "memory_limit": "1GB",
    "cache_limit": "2GB",
    "clear_cache_threshold": "1GB",
    "lr_phases": "10:1e-4,5:1e-5",
    "optimizer_options": "weight_decay=0.01",
    "lora_keys": "self_attn.q_proj,self_attn.v_proj",
    "report_to": "wandb",
}
MAPPING_EXAMPLES: dict[str, Any] = {
    "lr_schedule": {"name": "cosine_decay", "arguments": [1e-5, 100]},
    "lora_parameters": {"rank": 4, "scale": 10.0, "dropout": 0.1},
    "optimizer_config": {"adamw": {"weight_decay": 0.1}},
    "hf_dataset": {"path": "someone/dataset"},
}


def example(spec: FieldSpec, default: Any) -> Any:
    """A valid value of `spec` different from `default`."""
    if spec.name in TEXT_EXAMPLES:
        return TEXT_EXAMPLES[spec.name]
    if spec.kind == "mapping":
        return MAPPING_EXAMPLES[spec.name]
    if spec.kind == "bool":
        return not default
    if spec.kind == "choice":
        return next(c for c in spec.choices if c != default)
    if spec.kind in ("int", "optional_int"):
        value = max(int(spec.minimum or 0), 1) + 2
        return value + 1 if value == default else value
    if spec.kind in ("float", "optional_float"):
        value = 0.5 if spec.maximum is None or spec.maximum >= 0.5 else spec.maximum / 2
        value = max(value, 2 * (spec.minimum or 0))
        return value * 3 if value == default else value
    return "some-" + spec.name.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlxtui train")
    add_train_arguments(p)
    return p


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_in_the_table_once(name):
    own = [s for s in SETTINGS if s.name == name]
    assert len(own) == 1, f"{name}: declare it once in config.SETTINGS"


def test_the_table_names_only_real_fields_and_unique_flags():
    assert {s.config_field for s in SETTINGS} == set(FIELDS)
    flags = [f for s in SETTINGS for f in s.flags]
    assert len(flags) == len(set(flags))
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_reachable_from_a_flag(name, tmp_path):
    reaching = [s for s in SETTINGS if s.config_field == name and s.flags]
    if not reaching:
        own = next(s for s in SETTINGS if s.name == name)
        assert own.no_flag, f"{name}: give it a flag, or say in no_flag why it has none"
        return
    for spec in reaching:
        yaml_file = tmp_path / f"{spec.name}.yaml"
        base_values: dict[str, Any] = {"model": "m"}
        if name == "project_name":
            base_values["report_to"] = "wandb"  # a project means nothing without a reporter
        if spec.kind == "bool":
            base_values[spec.name] = False  # a store_true flag can only turn it on
            if name == "train":
                base_values["test"] = True  # train and test both off is refused: nothing to run
        yaml_file.write_text(yaml.safe_dump(base_values))
        baseline = load_config(yaml_file)
        value = example(spec, get_field(baseline, spec.name))
        if spec.name == "resume_run":
            value = str(tmp_path / "run")
            Path(value).mkdir()
            save_config(baseline, Path(value) / "config.yaml")
        argv = ["--config", str(yaml_file), spec.flags[-1]] + ([] if spec.kind == "bool" else [str(value)])
        cfg = config_from_args(_parser().parse_args(argv))
        assert getattr(cfg, name) != getattr(baseline, name), f"{spec.flags[-1]} did not change {name}"


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_reachable_from_yaml(name, tmp_path):
    spec = next(s for s in SETTINGS if s.name == name)
    default = getattr(TrainConfig(), name)
    value = example(spec, default)
    if name == "clear_cache_threshold":
        value = 1 << 30  # YAML takes bytes, as mlx-lm does ("1GB" works too)
    path = tmp_path / "c.yaml"
    values = {spec.yaml_key: value}
    if name == "project_name":
        values["report_to"] = "wandb"
    if name == "train":
        values["test"] = True  # train and test both off is refused: nothing to run
    path.write_text(yaml.safe_dump(values))
    cfg = load_config(path)
    assert getattr(cfg, name) != default, f"YAML key {spec.yaml_key} did not change {name}"


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_reachable_from_the_form_or_says_why_not(name):
    in_form = [s for s in FORM_FIELDS if s.config_field == name]
    if not in_form:
        own = next(s for s in SETTINGS if s.name == name)
        assert own.not_in_form, f"{name}: put it in the form, or say in not_in_form why not"
        return
    cfg = TrainConfig()
    for spec in in_form:
        raw = example(spec, get_field(cfg, spec.name))
        value, error = validate_field(spec.name, raw if spec.kind == "bool" else str(raw))
        assert error is None, (spec.name, error)
        assert getattr(set_field(cfg, spec.name, value), name) != getattr(cfg, name), spec.name


def test_every_flag_has_help_and_every_setting_a_label_or_a_reason():
    for action in _parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, action.option_strings
    for spec in SETTINGS:
        assert spec.help, spec.name
        assert spec.label or spec.not_in_form, spec.name
        assert field_label(spec.name)


def test_yaml_round_trip_of_every_field(tmp_path):
    cfg = TrainConfig()
    changes = {}
    for spec in SETTINGS:
        if spec.name in FIELDS and spec.name != "clear_cache_threshold":
            changes[spec.name] = example(spec, getattr(cfg, spec.name))
    changes["lr_phases"] = None  # phases and a schedule are alternatives
    changes["test"] = True  # with train off (its example), something must run
    changes["data"] = changes["train_data"] = changes["valid_data"] = changes["test_data"] = None  # hf_dataset names the data
    changes["sample_prompts"] = 0  # they come from a local valid.jsonl
    cfg = from_dict(changes)
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_mlx_lm_lora_flags_keep_their_names_and_defaults():
    """Every mlx_lm.lora flag parses here into the same key; the defaults are mlx-lm's."""
    from mlx_lm import lora

    theirs = lora.build_parser()
    ours = {opt: a.dest for a in _parser()._actions for opt in a.option_strings}
    for action in theirs._actions:
        for opt in action.option_strings:
            if opt in ("-h", "--help"):
                continue
            assert opt in ours, f"mlx_lm.lora's {opt} is missing"
            assert ours[opt] == action.dest, opt
    defaults = TrainConfig()
    for key, value in lora.CONFIG_DEFAULTS.items():
        if key in ("model", "data", "train", "config"):
            continue  # None = the demo model and data; `mlxtui train` trains
        assert getattr(defaults, key) == value, key


def test_field_label_and_flag_for():
    assert field_label("batch_size") == "Batch size"
    assert field_label("lora_rank") == "LoRA rank"
    assert field_label("report_to") == "report_to"  # not in the form: its YAML key
    assert field_label("lora_alpha") == "lora_parameters.alpha"
    assert flag_for("num_layers") == "--num-layers" and flag_for("resume_run") == "--resume"
    assert flag_for("hf_dataset") is None


def test_an_unknown_setting_is_named_with_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        validate_field("batchsize", "4")
