"""Run history: one summary per run folder, read from its files (no MLX), plus the user's
name, tags and note for a run and the one safe way to delete a run folder.

A summary is what the runs screen, `mlxtui runs list|show` and the sweep's table show: name,
date, method, model, key settings, final and best validation loss, tokens/s, peak memory
(measured and estimated), duration and status. Everything comes from `config.yaml`,
`metrics.jsonl` (one line per event, appended across resumes) and `state/state.json`.

Status, from the last session of the run (the lines after its last "start"):
  finished   the trainer ended it (all steps, or early stopping)
  stopped    the user stopped it (resumable)
  failed     training raised (the message is kept)
  running    a live process is training it now (this one or another)
  paused     a live process holds it paused
  interrupted  no end was written and no process is training it: a crash or a kill
               (resume it: `mlxtui train --resume <folder>`)
  new        the folder was made but training never started
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxtui.core.fileio import atomic_write_text
from mlxtui.core.runs import (
    ADAPTER_FILE,
    BEST_FILE,
    STATE_DIR,
    checkpoints,
    read_metrics,
    read_state,
)

META_FILE = "run_meta.json"
# What mlxtui itself puts at the top of a run folder; anything else is the user's.
# ".mlxtui.lock": the per-process run lock (core/runlock.py), left behind by a killed process
LOCK_FILE = ".mlxtui.lock"
RUN_ENTRIES = frozenset(
    {"config.yaml", "metrics.jsonl", "adapters", STATE_DIR, META_FILE, LOCK_FILE}
)
STATUSES = ("finished", "stopped", "failed", "running", "paused", "interrupted", "new")
_TRAINER_STATUS = {
    "completed": "finished",
    "early_stopped": "finished",
    "stopped": "stopped",
    "failed": "failed",
}
_FOLDER_RE = re.compile(r"^\d{8}-\d{6}-")
_TAG_RE = re.compile(r"^[A-Za-z0-9._:+-]{1,40}$")


class RunError(ValueError):
    """A run reference or a run action that cannot be done: says which run and what to do."""


@dataclass(frozen=True)
class CurvePoint:
    iteration: int
    tokens: int  # tokens trained when this loss was measured
    loss: float


@dataclass(frozen=True)
class RunSummary:
    path: Path
    folder: str
    name: str  # the user's name for it (run_meta.json), else the config's run_name, else the folder
    tags: tuple[str, ...]
    note: str
    started: (
        float  # epoch seconds of the first session's start (the folder's time if never started)
    )
    status: str
    method: str  # fine_tune_type: lora, dora, full
    model: str
    settings: dict[str, Any]  # the key settings, in display order
    iteration: int
    total_iters: int
    final_val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    final_train_loss: float | None
    tokens_per_second: float | None  # the mean of the train reports
    trained_tokens: int
    peak_memory_gb: float | None  # measured (MLX's peak, as mlx-lm reports it)
    estimated_peak_gb: float | None  # the memory estimate made before training
    duration_s: float  # training time summed over the sessions (the pauses between them left out)
    test_loss: float | None
    message: str  # the failure or stop message of the last session
    pid: int | None  # the live process training it, when status is running or paused
    config: dict[str, Any] = field(repr=False, default_factory=dict)
    train_curve: tuple[CurvePoint, ...] = field(repr=False, default=())
    val_curve: tuple[CurvePoint, ...] = field(repr=False, default=())

    @property
    def adapters(self) -> Path:
        return self.path / "adapters"

    def checkpoint_files(self) -> list[tuple[str, Path]]:
        """The loadable adapters of this run as (label, file): final, best, then each step."""
        out: list[tuple[str, Path]] = []
        if (self.adapters / ADAPTER_FILE).is_file():
            out.append(("final", self.adapters / ADAPTER_FILE))
        if (self.adapters / BEST_FILE).is_file():
            out.append(("best", self.adapters / BEST_FILE))
        out.extend((f"step {it}", p) for it, p in checkpoints(self.adapters))
        return out

    def to_row(self) -> dict[str, Any]:
        """Plain values for a table or JSON (the curves left out)."""
        return {
            "name": self.name,
            "folder": self.folder,
            "date": format_date(self.started),
            "status": self.status,
            "method": self.method,
            "model": self.model,
            **{k: v for k, v in self.settings.items()},
            "steps": f"{self.iteration}/{self.total_iters}"
            if self.total_iters
            else str(self.iteration),
            "final_val_loss": self.final_val_loss,
            "best_val_loss": self.best_val_loss,
            "best_step": self.best_step,
            "final_train_loss": self.final_train_loss,
            "tokens_per_s": self.tokens_per_second,
            "peak_mem_gb": self.peak_memory_gb,
            "est_mem_gb": self.estimated_peak_gb,
            "duration_s": round(self.duration_s, 1),
            "tags": ",".join(self.tags),
            "note": self.note,
            "path": str(self.path),
        }


# ---------------------------------------------------------------- reading


def format_date(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def is_run_folder(path: Path) -> bool:
    """The markers `runs.new_run_dir` leaves: a real folder (not a link) with adapters/ and state/,
    and the config.yaml the trainer writes before the first step."""
    return (
        path.is_dir()
        and not path.is_symlink()
        and (path / "config.yaml").is_file()
        and (path / "adapters").is_dir()
        and (path / STATE_DIR).is_dir()
    )


def _load_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_meta(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def key_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings people tune and compare, as short column names."""
    lora = config.get("lora_parameters") or {}
    return {
        "lr": config.get("learning_rate"),
        "layers": config.get("num_layers"),
        "rank": lora.get("rank") if config.get("fine_tune_type", "lora") != "full" else None,
        "batch": config.get("batch_size"),
        "seq": config.get("max_seq_length"),
        "iters": config.get("iters"),
    }


def process_alive(pid: int, since: float | None = None) -> bool:
    """Whether process `pid` lives and (when `since` is given) began before `since`, so a pid the
    system reused for a newer process does not count."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    return since is None or created <= since + 1.0


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the live process holding the run's lock (core/runlock.py, once that module is
    merged), else None."""
    import importlib

    try:
        runlock = importlib.import_module("mlxtui.core.runlock")
    except ImportError:
        return None
    try:
        holder = runlock.holder(run_dir)
    except OSError:
        return None
    pid = holder.get("pid") if isinstance(holder, dict) else None
    return pid if isinstance(pid, int) else None


def _last_session(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    starts = [i for i, m in enumerate(metrics) if m.get("event") == "start"]
    return metrics[starts[-1] :] if starts else []


def _duration(metrics: list[dict[str, Any]]) -> float:
    """Sum over sessions of (last line's time - its start)."""
    total = 0.0
    begin: float | None = None
    last: float | None = None
    for m in metrics:
        t = m.get("time")
        if not isinstance(t, int | float):
            continue
        if m.get("event") == "start":
            if begin is not None and last is not None:
                total += max(0.0, last - begin)
            begin = float(m.get("started_at", t))
        last = float(t)
    if begin is not None and last is not None:
        total += max(0.0, last - begin)
    return total


def _curves(metrics: list[dict[str, Any]]) -> tuple[tuple[CurvePoint, ...], tuple[CurvePoint, ...]]:
    """Train and validation losses by step; a step reported again after a resume keeps its
    latest value (the earlier one belonged to steps the crash threw away)."""
    train: dict[int, CurvePoint] = {}
    val: dict[int, float] = {}
    for m in metrics:
        kind = m.get("event")
        if kind == "train" and "train_loss" in m:
            it = int(m["iteration"])
            train[it] = CurvePoint(it, int(m.get("trained_tokens") or 0), float(m["train_loss"]))
        elif kind == "val" and "val_loss" in m:
            val[int(m["iteration"])] = float(m["val_loss"])
    train_pts = tuple(train[k] for k in sorted(train))

    def tokens_at(step: int) -> int:
        # tokens trained at a validation step: the nearest train report at or before it
        best = 0
        for p in train_pts:
            if p.iteration > step:
                break
            best = p.tokens
        return best

    val_pts = tuple(CurvePoint(k, tokens_at(k), val[k]) for k in sorted(val))
    return train_pts, val_pts


def _status(
    session: list[dict[str, Any]], state: dict[str, Any], locked_by: int | None = None
) -> tuple[str, str, int | None]:
    """(status, message, live pid) of the last session. `locked_by` is the live holder of the
    run's lock: it says "running" even before the start line is written."""
    finished = any(m.get("event") == "finished" for m in session)
    if locked_by is not None:  # a live process writes it now (maybe a resume still loading)
        marks = [m.get("event") for m in session if m.get("event") in ("paused", "resumed")]
        paused = not finished and bool(marks) and marks[-1] == "paused"
        return ("paused" if paused else "running"), "", locked_by
    if not session:
        if not state:
            return "new", "", None
        return _TRAINER_STATUS.get(state.get("status", ""), "interrupted"), "", None
    for m in reversed(session):
        if m.get("event") == "finished":
            raw = str(m.get("status", ""))
            return _TRAINER_STATUS.get(raw, raw or "finished"), str(m.get("message") or ""), None
    start = session[0]
    pid = start.get("pid")
    alive = isinstance(pid, int) and process_alive(pid, since=start.get("started_at"))
    if alive:
        marks = [m.get("event") for m in session if m.get("event") in ("paused", "resumed")]
        paused = bool(marks) and marks[-1] == "paused"
        return ("paused" if paused else "running"), "", pid
    return (
        "interrupted",
        "the process ended without finishing (a crash or a kill); it can be resumed",
        None,
    )


def summarize(run_dir: str | Path) -> RunSummary:
    """The summary of one run folder. Raises RunError when `run_dir` is not a run folder."""
    path = Path(run_dir)
    if not is_run_folder(path):
        raise RunError(
            f"{path}: not an mlxtui run folder (it needs config.yaml, adapters/ and state/)"
        )
    config = _load_config(path)
    metrics = read_metrics(path)
    try:
        state = read_state(path) or {}
        damaged = ""
    except ValueError:  # a state.json cut by a crash or an edit: the run is still listed
        state = {}
        damaged = "state/state.json is damaged: continue from its adapter with --resume-adapter-file"
    meta = read_meta(path)
    session = _last_session(metrics)
    status, message, pid = _status(session, state, lock_holder(path))
    if damaged:
        message = f"{message}; {damaged}" if message else damaged
    train_pts, val_pts = _curves(metrics)

    starts = [m for m in metrics if m.get("event") == "start"]
    started = (
        float(starts[0].get("started_at", starts[0].get("time", 0)))
        if starts
        else path.stat().st_mtime
    )
    estimated = next(
        (m.get("estimated_peak_bytes") for m in reversed(starts) if m.get("estimated_peak_bytes")),
        None,
    )
    peaks = [
        float(m["peak_memory"])
        for m in metrics
        if m.get("event") == "train" and m.get("peak_memory")
    ]
    peaks += [
        float(m["peak_memory_gb"])
        for m in metrics
        if m.get("event") == "finished" and m.get("peak_memory_gb")
    ]
    tps = [
        float(m["tokens_per_second"])
        for m in metrics
        if m.get("event") == "train" and m.get("tokens_per_second")
    ]
    tests = [
        m.get("test_loss")
        for m in metrics
        if m.get("event") == "test" and m.get("test_loss") is not None
    ]

    best_val = min(val_pts, key=lambda p: p.loss) if val_pts else None
    iteration = max(
        [int(state.get("iteration", 0))]
        + [p.iteration for p in train_pts]
        + [p.iteration for p in val_pts]
    )
    total = int(
        state.get("total_iters")
        or next((m.get("total_iters") for m in reversed(starts) if m.get("total_iters")), 0)
        or config.get("iters")
        or 0
    )
    model = str(config.get("model") or state.get("model_path") or "")
    tags = meta.get("tags") or []
    return RunSummary(
        path=path,
        folder=path.name,
        name=str(meta.get("name") or config.get("run_name") or path.name),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        note=str(meta.get("note") or ""),
        started=started,
        status=status,
        method=str(config.get("fine_tune_type") or "lora"),
        model=Path(model).name if model and Path(model).is_absolute() else model,
        settings=key_settings(config),
        iteration=iteration,
        total_iters=total,
        final_val_loss=val_pts[-1].loss if val_pts else None,
        best_val_loss=best_val.loss if best_val else state.get("best_val_loss"),
        best_step=best_val.iteration if best_val else state.get("best_iteration"),
        final_train_loss=train_pts[-1].loss if train_pts else None,
        tokens_per_second=sum(tps) / len(tps) if tps else None,
        trained_tokens=int(
            state.get("trained_tokens") or (train_pts[-1].tokens if train_pts else 0)
        ),
        peak_memory_gb=max(peaks) if peaks else None,
        estimated_peak_gb=estimated / 1e9 if isinstance(estimated, int | float) else None,
        duration_s=_duration(metrics),
        test_loss=float(tests[-1]) if tests and tests[-1] is not None else None,
        message=message,
        pid=pid,
        config=config,
        train_curve=train_pts,
        val_curve=val_pts,
    )


def run_folders(runs_dir: str | Path) -> list[Path]:
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if is_run_folder(p)]


def list_summaries(runs_dir: str | Path) -> list[RunSummary]:
    """Every run in `runs_dir`, newest first."""
    out = [summarize(p) for p in run_folders(runs_dir)]
    return sorted(out, key=lambda s: (s.started, s.folder), reverse=True)


def resolve_run(ref: str, runs_dir: str | Path) -> Path:
    """A run folder from what a person types: a path, a folder name in `runs_dir`, the run's
    name, or a unique part of either. Raises RunError naming the candidates."""
    as_path = Path(ref).expanduser()
    if as_path.is_dir():
        if not is_run_folder(as_path):
            raise RunError(
                f"{ref}: not an mlxtui run folder (it needs config.yaml, adapters/ and state/)"
            )
        return as_path
    root = Path(runs_dir)
    if (root / ref).is_dir() and is_run_folder(root / ref):
        return root / ref
    folders = run_folders(root)
    named = [p for p in folders if read_meta(p).get("name") == ref]
    if len(named) == 1:
        return named[0]
    partial = [p for p in folders if ref in p.name or ref in str(read_meta(p).get("name") or "")]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise RunError(
            f"{ref}: no such run in {root} (give a run folder, its name or a part of it; "
            "`mlxtui runs list` shows them)"
        )
    shown = ", ".join(sorted(p.name for p in partial)[:5])
    raise RunError(f"{ref}: matches {len(partial)} runs ({shown}); give more of the name")


# ---------------------------------------------------------------- the user's name, tags, note


def _write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    if not is_run_folder(run_dir):
        raise RunError(f"{run_dir}: not an mlxtui run folder")
    atomic_write_text(run_dir / META_FILE, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def rename_run(run_dir: Path, name: str) -> None:
    """Give the run a display name. The folder keeps its name: config.yaml, the adapter config
    and resume all name it by path."""
    name = name.strip()
    if not name or len(name) > 80 or "\n" in name:
        raise RunError(f"name {name!r}: give 1 to 80 characters on one line")
    _write_meta(run_dir, read_meta(run_dir) | {"name": name})


def set_tags(run_dir: Path, add: Iterable[str] = (), remove: Iterable[str] = ()) -> tuple[str, ...]:
    meta = read_meta(run_dir)
    tags = [str(t) for t in meta.get("tags") or []]
    for tag in add:
        if not _TAG_RE.match(tag):
            raise RunError(f"tag {tag!r}: use 1 to 40 letters, digits or . _ : + -")
        if tag not in tags:
            tags.append(tag)
    drop = set(remove)
    tags = [t for t in tags if t not in drop]
    _write_meta(run_dir, meta | {"tags": tags})
    return tuple(tags)


def set_note(run_dir: Path, note: str) -> None:
    if len(note) > 4000:
        raise RunError(f"note: {len(note)} characters; keep it under 4000")
    _write_meta(run_dir, read_meta(run_dir) | {"note": note})


# ---------------------------------------------------------------- deleting


def why_not_delete(run_dir: Path) -> str | None:
    """Why `run_dir` may not be deleted, or None when it may: only an mlxtui run folder, holding
    nothing but what mlxtui wrote, that no live process is training."""
    if run_dir.is_symlink():
        return f"{run_dir} is a link, not a run folder; remove the link yourself if you mean to"
    if not is_run_folder(run_dir):
        return f"{run_dir} is not an mlxtui run folder (no config.yaml, adapters/ and state/); nothing deleted"
    if not _FOLDER_RE.match(run_dir.name):
        return f"{run_dir}: the folder name is not one mlxtui gives (YYYYMMDD-HHMMSS-name); nothing deleted"
    others = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_ENTRIES)
    if others:
        return (
            f"{run_dir} holds files mlxtui did not write ({', '.join(others[:5])}); "
            "move them out first, then delete the run"
        )
    summary = summarize(run_dir)
    if summary.status in ("running", "paused"):
        return f"{run_dir} is being trained by process {summary.pid}; stop it first"
    return None


def delete_run(run_dir: Path) -> None:
    why = why_not_delete(run_dir)
    if why:
        raise RunError(why)
    # Rename first so a crash half-way leaves a hidden folder, never a half-deleted run that
    # looks whole in the history.
    doomed = run_dir.with_name(f".{run_dir.name}.deleting-{os.getpid()}")
    os.replace(run_dir, doomed)
    shutil.rmtree(doomed)
