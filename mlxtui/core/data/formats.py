"""The JSONL dataset formats mlx-lm reads, and how to tell them apart.

mlx-lm (`mlx_lm/tuner/datasets.py`) looks for `train.jsonl`, `valid.jsonl` and `test.jsonl` in a
folder and decides the format of a whole file from its FIRST record, in this order:
completions (prompt + completion keys), chat (`messages`), text (`text`). We check in the same
order so a record is classified the way mlx-lm would classify it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Format = Literal["chat", "completions", "text"]

SPLITS: tuple[str, ...] = ("train", "valid", "test")
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class FormatKeys:
    """Key names, with mlx-lm's config names and defaults (`prompt_feature`, ...)."""

    prompt_feature: str = "prompt"
    completion_feature: str = "completion"
    text_feature: str = "text"
    chat_feature: str = "messages"

    def known_keys(self, fmt: str) -> frozenset[str]:
        """Keys mlx-lm reads for a record of this format (everything else is ignored)."""
        if fmt == "chat":
            return frozenset({self.chat_feature, "tools"})
        if fmt == "completions":
            return frozenset({self.prompt_feature, self.completion_feature, "tools"})
        if fmt == "text":
            return frozenset({self.text_feature})
        return frozenset()

    def describe(self) -> str:
        return (
            f'"{self.chat_feature}" (chat), "{self.prompt_feature}"+"{self.completion_feature}" '
            f'(completions) or "{self.text_feature}" (text)'
        )


DEFAULT_KEYS = FormatKeys()


def keys_from(obj: Any) -> FormatKeys:
    """FormatKeys from any object or mapping with mlx-lm's attribute names (a config, argparse args)."""

    def get(name: str, default: str) -> str:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        return value if isinstance(value, str) and value else default

    d = DEFAULT_KEYS
    return FormatKeys(
        prompt_feature=get("prompt_feature", d.prompt_feature),
        completion_feature=get("completion_feature", d.completion_feature),
        text_feature=get("text_feature", d.text_feature),
        chat_feature=get("chat_feature", d.chat_feature),
    )


def detect_format(record: Any, keys: FormatKeys = DEFAULT_KEYS) -> Format | None:
    """ "chat", "completions" or "text" for a record (a parsed JSON line), None if it is none of them."""
    if not isinstance(record, dict):
        return None
    if keys.prompt_feature in record and keys.completion_feature in record:
        return "completions"
    if keys.chat_feature in record:
        return "chat"
    if keys.text_feature in record:
        return "text"
    return None


def split_paths(data_dir: str | Path) -> dict[str, Path]:
    """The paths mlx-lm reads in a data folder: {"train": .../train.jsonl, ...} (existing or not)."""
    data_dir = Path(data_dir)
    return {name: data_dir / f"{name}.jsonl" for name in SPLITS}


def data_file(path: str | Path) -> Path:
    """A JSONL file from a file path or a data folder (its train.jsonl)."""
    path = Path(path)
    return path / "train.jsonl" if path.is_dir() else path
