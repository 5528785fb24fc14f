"""What a data setting names: "demo" (or nothing) is the bundled demo dataset, anything else
a folder. The one resolver, for the engine, the CLI and the dashboard alike."""

from __future__ import annotations

from pathlib import Path

DEMO = "demo"


class DataDirError(ValueError):
    """The data setting names no folder; the message says what to give instead."""


def is_demo(data: str | Path | None) -> bool:
    return data is None or str(data).strip() in ("", DEMO)


def resolve_data_dir(data: str | Path | None) -> Path:
    """The folder of train.jsonl (valid.jsonl, test.jsonl) that `data` names."""
    if is_demo(data):
        from mlxtui.demo_data import demo_data_dir

        return demo_data_dir()
    path = Path(str(data)).expanduser()
    if not path.is_dir():
        raise DataDirError(
            f"data: {path} is not a folder; give a folder with train.jsonl (and optionally "
            "valid.jsonl, test.jsonl), or leave it empty for the demo dataset"
        )
    return path
