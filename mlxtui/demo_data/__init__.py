"""The demo dataset: a support bot for Lumo, a fictional smart plant pot (see README.md)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def demo_data_dir() -> Path:
    """The folder holding train.jsonl, valid.jsonl and test.jsonl (the mlx-lm data layout)."""
    try:
        folder = Path(str(importlib.resources.files(__package__)))
    except (TypeError, ModuleNotFoundError):
        folder = Path(__file__).parent
    # A zipped install has no real folder; mlx-lm needs one, so fall back to the source tree.
    if not (folder / "train.jsonl").is_file():
        folder = Path(__file__).parent
    return folder
