"""TrainConfig: form validation, suggestions, schedules and sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxtui.core.config import (
    FORM_FIELDS,
    ConfigError,
    TrainConfig,
    get_field,
    materialized_schedule,
    parse_phases,
    parse_size,
    schedule_preview,
    set_field,
    suggestions,
    validate_field,
)


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("batch_size", "abc", "not a whole number"),
        ("batch_size", "0", "from 1 to 4096"),
        ("learning_rate", "fast", "not a number"),
        ("learning_rate", "nan", "finite"),
        ("num_layers", "0", "trains nothing"),
        ("fine_tune_type", "qlora", "one of lora, dora, full"),
        ("lr_phases", "400-2e-5", "ITERATIONS:LEARNING_RATE"),
        ("memory_limit", "lots", "not a size"),
        ("adapter_path", "", "must not be empty"),
        ("lora_dropout", "1.5", "from 0 to 0.99"),
    ],
)
def test_invalid_form_values_are_refused_with_the_reason(name, raw, reason):
    value, error = validate_field(name, raw)
    assert value is None and error and reason in error


def test_every_form_field_round_trips_through_the_config():
    cfg = TrainConfig.quick_start()
    for spec in FORM_FIELDS:
        value = get_field(cfg, spec.name)
        parsed, error = validate_field(spec.name, "" if value is None else str(value) if spec.kind != "bool" else value)
        assert error is None, (spec.name, error)
        assert set_field(cfg, spec.name, parsed) == cfg or spec.name in ("lr_schedule_name",), spec.name


def test_form_views_on_nested_keys():
    cfg = set_field(TrainConfig(), "lora_rank", 16)
    cfg = set_field(cfg, "lora_keys", "self_attn.q_proj, self_attn.v_proj")
    assert cfg.lora_parameters == {"rank": 16, "dropout": 0.0, "scale": 20.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]}
    cfg = set_field(cfg, "lr_schedule_name", "cosine_decay")
    cfg = set_field(cfg, "warmup", 10)
    assert materialized_schedule(cfg, 110) == {"name": "cosine_decay", "arguments": [1e-5, 100], "warmup": 10}
    preview = schedule_preview(cfg, 110)
    assert preview[0][1] == 0.0 and max(lr for _, lr in preview) == pytest.approx(1e-5, rel=1e-3)
    assert preview[-1][1] < 1e-6


def test_phases_and_sizes():
    assert parse_phases("400:2e-5,400:1e-5,200:2e-6") == [(400, 2e-5), (400, 1e-5), (200, 2e-6)]
    with pytest.raises(ConfigError, match="phase 2"):
        parse_phases("10:1e-4,x")
    assert TrainConfig(lr_phases="400:2e-5,400:1e-5,200:2e-6").resolved_iters(None) == 1000
    assert parse_size("8GB") == 8 << 30 and parse_size("512MB") == 512 << 20 and parse_size(1024) == 1024


def test_suggestions_follow_precision_and_dataset_size():
    q = TrainConfig.quick_start(model="m", learning_rate=1e-5)
    assert "2e-4" in suggestions(q, 4, 300)["learning_rate"]
    assert "1e-4" in suggestions(q, 8, 300)["learning_rate"]
    assert "5e-5" in suggestions(q, None, 300)["learning_rate"]
    assert "<1k" in suggestions(q, 4, 300)["iters"]
    assert "1k-10k" in suggestions(q, 4, 5000)["iters"]
    assert ">10k" in suggestions(q, 4, 50000)["iters"]
    assert "alpha = scale x rank = 20 x 8 = 160" == suggestions(q)["lora_scale"]
    assert "float32 copy" in suggestions(q, 4, 300, 135_000_000)["dequantize"]
    # a suggestion is only a hint: the config is unchanged
    assert q.learning_rate == 1e-5


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(learning_rate=3e-4),
        TrainConfig(learning_rate=3e-4, warmup=7),
        TrainConfig(lr_schedule={"name": "cosine_decay", "arguments": [1e-3, 40, 1e-5], "warmup": 5, "warmup_init": 1e-6}),
        TrainConfig(lr_schedule={"name": "exponential_decay", "arguments": [1e-3, 0.97]}),
        TrainConfig(lr_schedule={"name": "step_decay", "arguments": [1e-3, 0.5, 10]}),
        TrainConfig(learning_rate=2e-4, lr_schedule={"name": "linear_schedule"}, warmup=4),
        TrainConfig(lr_phases="10:2e-5,10:1e-5,5:2e-6"),
    ],
)
def test_the_preview_matches_the_optimizer_schedule(cfg):
    import mlx.core as mx

    from mlxtui.core.config import build_lr_schedule

    total = 50
    sched = build_lr_schedule(cfg, total)
    for it, lr in schedule_preview(cfg, total, points=50):
        want = float(sched(mx.array(it - 1)).item()) if callable(sched) else float(sched)
        assert lr == pytest.approx(want, rel=1e-4, abs=1e-9), it


def test_optimizer_options_and_dataset_keys_in_the_form():
    cfg = set_field(TrainConfig(optimizer="adamw"), "optimizer_options", "weight_decay=0.01,betas=0.9 0.98")
    assert cfg.optimizer_config["adamw"] == {"weight_decay": 0.01, "betas": [0.9, 0.98]}
    assert get_field(cfg, "optimizer_options") == "weight_decay=0.01,betas=0.9 0.98"
    assert validate_field("optimizer_options", "weight_decay")[1]
    assert validate_field("optimizer_options", "eps=tiny")[1]
    cfg = set_field(cfg, "prompt_feature", "question")
    assert cfg.prompt_feature == "question"
    names = {f.name for f in FORM_FIELDS}
    assert {"optimizer_options", "prompt_feature", "completion_feature", "chat_feature", "text_feature", "trust_remote_code"} <= names


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"lora_parameters": {"rank": 0}}, "lora_rank"),
        ({"memory_limit": "lots"}, "memory_limit"),
        ({"lr_phases": "1-2"}, "lr_phases"),
        ({"epochs": 0}, "epochs"),
        ({"lr_schedule": {"name": "wavy"}}, "lr_schedule"),
    ],
)
def test_config_errors_carry_the_setting_and_name_no_flag(changes, field):
    from mlxtui.core.config import field_label, from_dict

    with pytest.raises(ConfigError) as info:
        from_dict(changes, where="run.yaml")
    e = info.value
    assert e.field == field and e.where == "run.yaml"
    assert "--" not in e.message and e.message
    assert str(e) == f"run.yaml: {field}: {e.message}"
    # the dashboard's wording: its own label for the setting
    assert field_label(field) != field or field == "lr_schedule"


def test_yaml_may_name_any_mlx_lm_schedule_not_only_the_forms_three():
    from mlxtui.core.config import from_dict

    cfg = from_dict({"lr_schedule": {"name": "exponential_decay", "arguments": [1e-3, 0.9]}})
    assert cfg.lr_schedule["name"] == "exponential_decay"


def test_the_python_api_may_give_folders_as_paths(tmp_path):
    cfg = TrainConfig().with_values(data=tmp_path, resume_run=tmp_path / "run", runs_dir=tmp_path)
    cfg.validate()
    assert validate_field("run_name", 3) == ("3", None)
    assert "must be text" in (validate_field("run_name", ["a"])[1] or "")


def test_lr_schedule_as_phases_on_the_flag_and_in_yaml(tmp_path):
    """The skill's `--lr-schedule "400:2e-5,400:1e-5,200:2e-6"`: phases, from the flag or YAML."""
    from mlxtui.cli.main import build_parser
    from mlxtui.cli.train import config_from_args
    from mlxtui.core.config import from_dict, lr_function

    args = build_parser().parse_args(["train", "--model", "m", "--lr-schedule", "400:2e-5,400:1e-5,200:2e-6"])
    cfg = config_from_args(args)
    assert cfg.lr_phases == "400:2e-5,400:1e-5,200:2e-6" and cfg.lr_schedule is None
    assert cfg.resolved_iters(None) == 1000
    fn = lr_function(cfg, 1000)
    assert (fn(0), fn(400), fn(999)) == (2e-5, 1e-5, 2e-6)
    assert from_dict({"lr_schedule": "400:2e-5,600:1e-5"}).lr_phases == "400:2e-5,600:1e-5"
    assert from_dict({"lr_schedule": "cosine_decay"}).lr_schedule == {"name": "cosine_decay"}
    with pytest.raises(ConfigError, match="phase 2 '1e-5' is not ITERATIONS:LEARNING_RATE"):
        from_dict({"lr_schedule": "400:2e-5,1e-5"})
    with pytest.raises(ConfigError, match="make the first phase the warmup"):
        from_dict({"lr_phases": "4:1e-5", "warmup": 2})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--lr-schedule", "fast"])


def test_data_files_make_the_data_folder(tmp_path, monkeypatch):
    """train_data/valid_data/test_data: one folder of split names is that folder; other names are
    staged under their split's name; a missing file or a second folder is refused."""
    from mlxtui.core.datafiles import with_data_folder

    monkeypatch.setenv("MLXTUI_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train", "valid"):
        (data / f"{name}.jsonl").write_text(f'{{"text": "{name}"}}\n')
    cfg = with_data_folder(TrainConfig(train_data=str(data / "train.jsonl")))
    assert cfg.data == str(data)
    (tmp_path / "mine.jsonl").write_text('{"text": "t"}\n')
    (tmp_path / "dev.jsonl").write_text('{"text": "d"}\n')
    staged = with_data_folder(TrainConfig(train_data=str(tmp_path / "mine.jsonl"), valid_data=str(tmp_path / "dev.jsonl")))
    folder = Path(staged.data)
    assert sorted(p.name for p in folder.iterdir()) == ["train.jsonl", "valid.jsonl"]
    assert (folder / "valid.jsonl").read_text() == '{"text": "d"}\n'
    assert with_data_folder(staged) == staged  # a resumed run's config.yaml resolves the same
    with pytest.raises(ConfigError, match="no such file"):
        with_data_folder(TrainConfig(train_data=str(tmp_path / "nope.jsonl")))
    with pytest.raises(ConfigError, match="not both"):
        with_data_folder(TrainConfig(data=str(tmp_path), train_data=str(data / "train.jsonl")))
    with pytest.raises(ConfigError, match="training needs the training file"):
        with_data_folder(TrainConfig(valid_data=str(data / "valid.jsonl")))
    assert TrainConfig(train=False, test=True).validate() is None
    with pytest.raises(ConfigError, match="nothing would run"):
        TrainConfig(train=False).validate()
