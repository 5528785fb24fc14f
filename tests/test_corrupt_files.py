"""Damaged or missing files of a model, an adapter and a run's state/: each is named with the
fix, by the CLI (a non-zero status, no traceback) and by the engine's typed errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlxtui.cli.main import main
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine
from mlxtui.core.jobs import LoadModel, Train
from mlxtui.core.jobs.context import EngineError
from mlxtui.core.models import ModelError, check_adapter, resolve_model


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _garbage(p: Path) -> None:
    p.write_bytes(b"\xff" * 8 + b"not weights at all" * 20)


def _bad_json(p: Path) -> None:
    p.write_text('{"model_type": "llama",\n  oops\n')


# (what is damaged, the file, how, words of the fix)
MODEL_DAMAGE: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("truncated weights", "model.safetensors", _truncate, "truncated"),
    ("garbage weights", "model.safetensors", _garbage, "not a safetensors file"),
    ("empty weights", "model.safetensors", lambda p: p.write_bytes(b""), "not a safetensors file"),
    ("bad config.json", "config.json", _bad_json, "not valid JSON"),
    ("bad tokenizer.json", "tokenizer.json", _bad_json, "not valid JSON"),
    ("bad tokenizer_config.json", "tokenizer_config.json", _bad_json, "not valid JSON"),
    ("no tokenizer", "tokenizer.json", lambda p: p.unlink(), "no tokenizer"),
]


def _engine_error(job: Any) -> EngineError:
    engine = Engine(lambda e: None)
    engine.start()
    try:
        with pytest.raises(EngineError) as info:
            engine.run_sync(job)
        return info.value
    finally:
        engine.stop()


def _cli(argv: list[str], capsys: Any) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code not in (0, None), err
    assert "Traceback" not in err
    return err


def _said_by_engine_and_cli(
    job: Any, argvs: list[list[str]], words: str, capsys: Any
) -> tuple[EngineError, list[str]]:
    """The engine refuses `job` and each command line exits non-zero, all saying `words`;
    returns the engine's error and what each command line said."""
    error = _engine_error(job)
    assert words in str(error)
    said = [_cli(argv, capsys) for argv in argvs]
    assert all(words in err for err in said), said
    return error, said


@pytest.mark.parametrize("what,name,damage,words", MODEL_DAMAGE, ids=[d[0] for d in MODEL_DAMAGE])
def test_a_damaged_model_is_named_with_the_fix(
    what, name, damage, words, tiny_model_dir, tmp_path, capsys
):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    assert resolve_model(str(model)) == model  # whole, it loads
    damage(model / name)
    with pytest.raises(ModelError) as info:
        resolve_model(str(model))
    said = str(info.value)
    assert words in said and (
        str(model / name) in said or (words == "no tokenizer" and str(model) in said)
    )
    assert any(fix in said for fix in ("download or convert", "copy"))
    # the engine's typed error, and the CLI's one line
    _said_by_engine_and_cli(
        LoadModel(spec=str(model)),
        [["generate", "--model", str(model), "--max-tokens", "1", "-p", "hi"]],
        words,
        capsys,
    )


def test_pickle_weights_are_refused_not_loaded(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin: model weights as a PyTorch pickle"):
        resolve_model(str(model))
    assert "only from .safetensors" in _cli(["generate", "--model", str(model), "-p", "hi"], capsys)


def _adapter(folder: Path, model: Path) -> Path:
    """A LoRA adapter folder of the mlx-lm layout for the tiny model (zero B: the base's answers)."""
    import mlx.core as mx

    folder.mkdir(parents=True)
    config = {
        "model": str(model), "fine_tune_type": "lora", "num_layers": 2,
        "lora_parameters": {"rank": 4, "scale": 20.0, "dropout": 0.0, "keys": ["self_attn.q_proj"]},
    }  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    weights = {}
    for layer in (2, 3):
        weights[f"model.layers.{layer}.self_attn.q_proj.lora_a"] = mx.zeros((64, 4))
        weights[f"model.layers.{layer}.self_attn.q_proj.lora_b"] = mx.zeros((4, 64))
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)
    return folder


ADAPTER_DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated weights", lambda d: _truncate(d / "adapters.safetensors"), "adapters.safetensors: truncated"),
    ("garbage weights", lambda d: _garbage(d / "adapters.safetensors"), "adapters.safetensors: not a safetensors"),
    ("no weights", lambda d: (d / "adapters.safetensors").unlink(), "no adapters.safetensors"),
    ("bad config JSON", lambda d: _bad_json(d / "adapter_config.json"), "adapter_config.json:2: invalid JSON"),
    ("no config", lambda d: (d / "adapter_config.json").unlink(), "no adapter_config.json"),
    ("config without lora_parameters",
     lambda d: (d / "adapter_config.json").write_text('{"fine_tune_type": "lora", "num_layers": 2}'),
     "lora_parameters needs rank and scale"),
    ("config without num_layers",
     lambda d: (d / "adapter_config.json").write_text('{"lora_parameters": {"rank": 4, "scale": 20}}'),
     "num_layers is missing"),
    ("pickle weights", lambda d: (d / "adapters.safetensors").rename(d / "adapters.bin"),
     "adapters.bin: adapter weights as a PyTorch pickle"),
]  # fmt: skip


@pytest.mark.parametrize("what,damage,words", ADAPTER_DAMAGE, ids=[d[0] for d in ADAPTER_DAMAGE])
def test_a_damaged_adapter_is_named_with_the_fix(
    what, damage, words, tiny_model_dir, tmp_path, capsys
):
    adapter = _adapter(tmp_path / "adapters", tiny_model_dir)
    check_adapter(adapter)  # whole, it passes
    damage(adapter)
    with pytest.raises(ModelError) as info:
        check_adapter(adapter)
    assert words in str(info.value)
    fused = adapter.parent / "fused"
    model_and_adapter = ["--model", str(tiny_model_dir), "--adapter-path", str(adapter)]
    _said_by_engine_and_cli(
        LoadModel(spec=str(tiny_model_dir), adapter_path=str(adapter)),
        [
            ["generate", *model_and_adapter, "-p", "hi"],
            ["fuse", *model_and_adapter, "--save-path", str(fused)],
        ],
        words,
        capsys,
    )
    assert not fused.exists()


def test_a_pickle_resume_adapter_file_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "adapters", tiny_model_dir)
    pickle = adapter / "adapters.pt"
    pickle.write_bytes(b"\x80\x04not really a pickle")
    cfg = TrainConfig(
        model=str(tiny_model_dir), resume_adapter_file=str(pickle), runs_dir=str(tmp_path / "runs")
    )
    assert "PyTorch pickle" in str(_engine_error(Train(cfg)))


STATE_DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated state.json", lambda s: s.joinpath("state.json").write_text('{"iteration": 4, "rng'), "state.json:1"),
    ("no optimizer file", lambda s: s.joinpath("optimizer.safetensors").unlink(), "optimizer.safetensors is missing"),
    ("truncated optimizer file", lambda s: _truncate(s / "optimizer.safetensors"), "optimizer.safetensors: truncated"),
]  # fmt: skip


@pytest.mark.parametrize("what,damage,words", STATE_DAMAGE, ids=[d[0] for d in STATE_DAMAGE])
def test_a_damaged_run_state_is_named_with_a_way_on(
    what, damage, words, tiny_model_dir, tmp_path, capsys
):
    import mlx.core as mx

    run = tmp_path / "runs" / "r1"
    state = run / "state"
    state.mkdir(parents=True)
    _adapter(run / "adapters", tiny_model_dir)
    (state / "state.json").write_text(json.dumps({"iteration": 4}))
    mx.save_safetensors(str(state / "optimizer.safetensors"), {"step": mx.zeros((16,))})
    cfg = TrainConfig(
        model=str(tiny_model_dir), runs_dir=str(tmp_path / "runs"), resume_run=str(run)
    )
    (run / "config.yaml").write_text(cfg.with_values(resume_run=None).to_yaml())
    damage(state)
    error, (err,) = _said_by_engine_and_cli(
        Train(cfg), [["train", "--resume", str(run)]], words, capsys
    )
    assert "--resume-adapter-file" in error.hint and "adapters.safetensors" in error.hint
    assert "--resume-adapter-file" in err
    # the run is still listed by `mlxtui runs`
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "r1" in capsys.readouterr().out
