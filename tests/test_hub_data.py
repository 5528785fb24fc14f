"""hf_dataset: read by mlx-lm's own hub loader; without the `datasets` package, or without the
hub, the error says what to do. `datasets` is not installed on this machine: the loader's path is
shown with a stand-in module (a third-party package, like the wandb one in test_reporting)."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from mlxtui.core.config import ConfigError, TrainConfig, from_dict
from mlxtui.core.hub_data import HubDataError, check_hub_data, load_hub_datasets
from mlxtui.demo_data import demo_data_dir


def test_without_the_datasets_package_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as on a machine without it
    import importlib.util

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed here")
    cfg = from_dict({"hf_dataset": {"path": "mlx-community/wikisql"}})
    with pytest.raises(ConfigError, match=r"datasets. package.*pip install datasets"):
        check_hub_data(cfg)


def test_hf_dataset_and_local_data_together_are_refused():
    with pytest.raises(ConfigError, match="give hf_dataset .* or data"):
        from_dict({"hf_dataset": {"path": "a/b"}, "data": "data"})
    with pytest.raises(ConfigError, match="mapping with 'path'"):
        from_dict({"hf_dataset": {"name": "a/b"}})


def _fake_datasets(load: Any) -> types.ModuleType:
    mod = types.ModuleType("datasets")
    mod.load_dataset = load  # type: ignore[attr-defined]
    mod.__spec__ = types.SimpleNamespace(name="datasets")  # type: ignore[assignment]
    return mod


def test_the_hub_out_of_reach_says_what_to_do(monkeypatch, tiny_model_dir):
    def load_dataset(path: str, split: str | None = None, **kw: Any) -> Any:
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", _fake_datasets(load_dataset))
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    cfg = from_dict({"hf_dataset": {"path": "mlx-community/wikisql"}})
    from mlxtui.core.models import load_model

    _model, tokenizer, _info = load_model(str(tiny_model_dir))
    with pytest.raises(HubDataError, match="could not be reached.*HF_DATASETS_OFFLINE=1.*local data folder"):
        load_hub_datasets(cfg, tokenizer)


def test_the_splits_and_features_reach_mlx_lms_loader(monkeypatch, tiny_model_dir):
    records = [json.loads(x) for x in (demo_data_dir() / "train.jsonl").read_text().splitlines()[:10]]
    renamed = [{"conversation": r["messages"]} for r in records]
    calls: list[tuple[str, str | None, dict[str, Any]]] = []

    def load_dataset(path: str, split: str | None = None, **kw: Any) -> Any:
        calls.append((path, split, kw))
        return renamed[:8] if split == "train[:80%]" else renamed[8:]

    monkeypatch.setitem(sys.modules, "datasets", _fake_datasets(load_dataset))
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    # the top-level chat_feature applies to a block that sets none (mlx-lm alone would ignore it)
    cfg = from_dict({"hf_dataset": {"path": "someone/chats", "config": {"revision": "main"}}, "chat_feature": "conversation"})
    from mlxtui.core.models import load_model

    _model, tokenizer, _info = load_model(str(tiny_model_dir))
    train, valid, test = load_hub_datasets(cfg, tokenizer)
    assert [c[:2] for c in calls] == [("someone/chats", "train[:80%]"), ("someone/chats", "train[-10%:]")]
    assert calls[0][2] == {"revision": "main"}
    assert len(train) == 8 and len(valid) == 2 and test == []
    assert cfg.hf_dataset == {"path": "someone/chats", "config": {"revision": "main"}}  # not mutated by the loader
    assert TrainConfig().hf_dataset is None
