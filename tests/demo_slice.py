"""The first few examples of the demo dataset as a data folder: enough to train the tiny model a
few steps, quick to tokenize.

Not a test module: the training, run, sweep and fault tests (and benchmarks/dist_trials.py) build
their data with it, so a change of the demo dataset's layout is mended in one place.
"""

from __future__ import annotations

from pathlib import Path

from mlxtui.demo_data import demo_data_dir


def demo_slice(out: Path, train: int = 16, valid: int = 4, test: int = 0) -> Path:
    """`out`/train.jsonl, valid.jsonl and test.jsonl holding the demo dataset's first `train`,
    `valid` and `test` lines (a count of 0 leaves that file out); returns `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("valid", valid), ("test", test)):
        if n:
            lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
            (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
