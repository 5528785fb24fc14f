"""Run folders: where a run leaves its config, metrics, adapters and resume state.

runs/<timestamp>-<name>/
  config.yaml        loads in `mlx_lm.lora --config` as it is
  metrics.jsonl      one line per event
  adapters/          adapters.safetensors + adapter_config.json, periodic and best checkpoints
  state/             optimizer state, iteration, RNG: enough to resume exactly
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADAPTER_FILE = "adapters.safetensors"
BEST_FILE = "best_adapters.safetensors"
STATE_DIR = "state"
_CHECKPOINT_RE = re.compile(r"^(\d{7})_adapters\.safetensors$")


@dataclass(frozen=True)
class RunInfo:
    path: Path
    name: str
    status: str
    iteration: int
    total_iters: int
    best_val_loss: float | None
    started: float

    @property
    def adapters(self) -> Path:
        return self.path / "adapters"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "run"


def new_run_dir(runs_dir: str | Path, name: str | None) -> Path:
    """A fresh folder; never reuses (and so never overwrites) an existing one."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(name or 'run')}"
    path = root / base
    n = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            n += 1
            path = root / f"{base}-{n}"
    (path / "adapters").mkdir()
    (path / STATE_DIR).mkdir()
    return path


def checkpoints(adapter_dir: Path) -> list[tuple[int, Path]]:
    """Periodic checkpoints as (iteration, path), oldest first."""
    if not adapter_dir.is_dir():
        return []
    found = []
    for p in adapter_dir.iterdir():
        m = _CHECKPOINT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the rest is still good
    return out


def read_state(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATE_DIR / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Run history, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        if not (p / "config.yaml").is_file():
            continue
        try:
            state = read_state(p) or {}
        except ValueError:  # a state.json cut by a crash: the run is still listed
            state = {}
        runs.append(
            RunInfo(
                path=p,
                name=p.name,
                status=state.get("status", "unknown"),
                iteration=int(state.get("iteration", 0)),
                total_iters=int(state.get("total_iters", 0)),
                best_val_loss=state.get("best_val_loss"),
                started=p.stat().st_mtime,
            )
        )
    return sorted(runs, key=lambda r: r.name, reverse=True)


def adapter_choices(runs_dir: str | Path) -> list[tuple[str, Path]]:
    """Every loadable adapter of every run: (label, file), for the chat's weight picker."""
    out: list[tuple[str, Path]] = []
    for run in list_runs(runs_dir):
        ad = run.adapters
        if (ad / ADAPTER_FILE).is_file():
            out.append((f"{run.name} final", ad / ADAPTER_FILE))
        if (ad / BEST_FILE).is_file():
            out.append((f"{run.name} best", ad / BEST_FILE))
        for it, p in checkpoints(ad):
            out.append((f"{run.name} step {it}", p))
    return out
