"""`hf_dataset`: datasets on the Hugging Face hub, loaded by mlx-lm's own loader.

mlx_lm.lora reads a YAML `hf_dataset` block (one mapping or a list) with
`mlx_lm.tuner.datasets.load_custom_hf_dataset`; so does mlxtui, with the same keys (path,
train_split, valid_split, test_split, config, and the *_feature keys). The top-level
prompt_feature / completion_feature / chat_feature / text_feature and mask_prompt apply to a
block that does not set its own, so none of them is ignored.

Errors say what to do: the `datasets` package missing (name it), the hub unreachable (the
network, the offline cache, or a local data folder instead).
"""

from __future__ import annotations

import copy
import importlib.util
from types import SimpleNamespace
from typing import Any

from mlxtui.core.config import ConfigError, TrainConfig

FEATURES = ("prompt_feature", "completion_feature", "chat_feature", "text_feature")


class HubDataError(Exception):
    """A hub dataset that could not be loaded, with what to do."""


def check_hub_data(config: TrainConfig) -> None:
    """Raise ConfigError when hf_dataset is set but cannot be read at all (before the model loads)."""
    if config.hf_dataset is None:
        return
    if importlib.util.find_spec("datasets") is None:
        raise ConfigError(
            "needs the Hugging Face `datasets` package, which is not installed: install it "
            "(`uv pip install datasets` or `pip install datasets`), or give a local data folder "
            "with data instead",
            "hf_dataset",
        )
    if config.test:
        for block in _blocks(config):
            if not block.get("test_split"):
                raise ConfigError(
                    f"{block['path']}: test is on but this dataset has no test_split "
                    "(e.g. test_split: 'test'); mlx-lm's loader needs one",
                    "hf_dataset",
                )


def _blocks(config: TrainConfig) -> list[dict[str, Any]]:
    value = config.hf_dataset
    return [dict(b) for b in (value if isinstance(value, list) else [value])]


def load_hub_datasets(config: TrainConfig, tokenizer: Any) -> tuple[Any, Any, Any]:
    """(train, valid, test) as mlx-lm's loader makes them, each cached like a local split."""
    check_hub_data(config)
    from mlx_lm.tuner.datasets import CacheDataset, load_custom_hf_dataset

    blocks = []
    for block in copy.deepcopy(_blocks(config)):
        for key in FEATURES:
            if key not in block and getattr(config, key):
                block[key] = getattr(config, key)
        blocks.append(block)
    args = SimpleNamespace(hf_dataset=blocks, mask_prompt=config.mask_prompt, train=config.train, test=config.test)
    names = ", ".join(b["path"] for b in blocks)
    try:
        splits = load_custom_hf_dataset(args, tokenizer)
    except (ConnectionError, TimeoutError, OSError) as e:
        raise HubDataError(
            f"hf_dataset {names}: the Hugging Face hub could not be reached ({type(e).__name__}: {e}); "
            "check the network, or use a copy in the datasets cache with HF_DATASETS_OFFLINE=1, "
            "or give a local data folder with data instead"
        ) from None
    except ValueError as e:
        raise HubDataError(f"hf_dataset {names}: {e}") from None
    except Exception as e:  # datasets raises its own types (DatasetNotFoundError, ...)
        raise HubDataError(
            f"hf_dataset {names}: could not be loaded ({type(e).__name__}: {e}); check the "
            "path and splits, or give a local data folder with data instead"
        ) from None
    out: tuple[Any, ...] = tuple(CacheDataset(s) if len(s) else [] for s in splits)
    if config.train and not out[0]:
        raise HubDataError(f"hf_dataset {names}: the train split is empty; check train_split")
    return out[0], out[1], out[2]
