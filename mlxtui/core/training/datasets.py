"""The train/valid/test sets of a data folder, tokenized as mlx-lm does, and the held-out
prompts the run answers at each validation."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlxtui.core.config import TrainConfig
from mlxtui.core.training.errors import TrainingError

SamplePrompt = tuple[list[dict[str, str]], str, str]  # (messages, prompt text, reference answer)


def load_datasets(config: TrainConfig, data_dir: Path, tokenizer: Any) -> tuple[Any, Any, Any]:
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset

    if config.hf_dataset is not None:
        from mlxtui.core.config import ConfigError
        from mlxtui.core.hub_data import HubDataError, load_hub_datasets

        try:
            return load_hub_datasets(config, tokenizer)
        except (HubDataError, ConfigError) as e:
            raise TrainingError(str(e)) from None

    keys = SimpleNamespace(
        mask_prompt=config.mask_prompt,
        prompt_feature=config.prompt_feature or "prompt",
        completion_feature=config.completion_feature or "completion",
        chat_feature=config.chat_feature or "messages",
        text_feature=config.text_feature or "text",
    )
    out: list[Any] = []
    for name in ("train", "valid", "test"):
        path = data_dir / f"{name}.jsonl"
        if not path.is_file():
            out.append([])
            continue
        records = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise TrainingError(
                        f"{path}:{lineno}: invalid JSON ({e.msg}); run `mlxtui data validate {data_dir}`"
                    ) from None
        if not records:
            out.append([])
            continue
        try:
            out.append(CacheDataset(create_dataset(records, tokenizer, keys)))
        except ValueError as e:
            raise TrainingError(f"{path}: {e}") from None
    if not out[0]:
        raise TrainingError(
            f"{data_dir}: train.jsonl is missing or empty; a data folder needs train.jsonl "
            "(valid.jsonl and test.jsonl are optional)"
        )
    return out[0], out[1], out[2]


def sample_prompts(data_dir: Path, n: int) -> list[SamplePrompt]:
    """The first `n` chat or prompt/completion records of valid.jsonl, as prompts to answer."""
    out: list[SamplePrompt] = []
    path = data_dir / "valid.jsonl"
    if n <= 0 or not path.is_file():
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(out) >= n:
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # validation reported it before training started
            msgs = rec.get("messages") if isinstance(rec, dict) else None
            if isinstance(msgs, list) and len(msgs) >= 2 and msgs[-1].get("role") == "assistant":
                user = [m for m in msgs[:-1] if m.get("role") == "user"]
                out.append((msgs[:-1], user[-1]["content"] if user else "", msgs[-1]["content"]))
            elif isinstance(rec, dict) and "prompt" in rec and "completion" in rec:
                out.append(
                    ([{"role": "user", "content": rec["prompt"]}], rec["prompt"], rec["completion"])
                )
    return out
