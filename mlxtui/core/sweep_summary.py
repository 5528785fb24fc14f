"""A sweep's results: one row per run (read from its run folder by run_history), sorted by best
validation loss, as a Markdown table; and the best run's config as a YAML file ready for
`mlxtui train --config` (and the dashboard's Config form)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxtui.core.config import ConfigError, TrainConfig, load_config, save_config
from mlxtui.core.sweep import BEST_FILE, DONE, SUMMARY_FILE, SweepState, fmt_value


@dataclass(frozen=True)
class SummaryRow:
    label: str
    status: str  # the queue's: pending, running, done, stopped, failed, skipped
    overrides: dict[str, Any]
    run_dir: str | None
    best_val_loss: float | None
    best_step: int | None
    iteration: int
    total_iters: int
    tokens_per_second: float | None
    peak_memory_gb: float | None
    estimated_gb: float | None
    duration_s: float
    flagged: bool
    message: str


def summary_rows(state: SweepState) -> list[SummaryRow]:
    """Every run of the queue, the best validation loss first (runs without one last, in queue order)."""
    from mlxtui.core.run_history import RunError, summarize

    rows = []
    for run in state.runs:
        s = None
        if run.run_dir:
            try:
                s = summarize(run.run_dir)
            except (RunError, OSError, ValueError):
                s = None  # the folder moved or was never written: the queue's facts still show
        rows.append(
            SummaryRow(
                label=run.label,
                status=run.status,
                overrides=run.overrides,
                run_dir=run.run_dir,
                best_val_loss=s.best_val_loss if s else None,
                best_step=s.best_step if s else None,
                iteration=s.iteration if s else 0,
                total_iters=s.total_iters if s else 0,
                tokens_per_second=s.tokens_per_second if s else None,
                peak_memory_gb=s.peak_memory_gb if s else None,
                estimated_gb=run.estimate_bytes / 2**30 if run.estimate_bytes else None,
                duration_s=s.duration_s if s else 0.0,
                flagged=run.flagged,
                message=run.message,
            )
        )
    order = {r.label: i for i, r in enumerate(rows)}

    def key(row: SummaryRow) -> tuple[float, int]:
        loss = row.best_val_loss
        return (loss if loss is not None and math.isfinite(loss) else math.inf, order[row.label])

    return sorted(rows, key=key)


def best_row(rows: list[SummaryRow]) -> SummaryRow | None:
    """The finished run with the lowest best validation loss (else the lowest of any run)."""
    scored = [r for r in rows if r.best_val_loss is not None and math.isfinite(r.best_val_loss) and r.run_dir]
    done = [r for r in scored if r.status == DONE]
    pool = done or scored
    return min(pool, key=lambda r: r.best_val_loss or 0.0) if pool else None


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "–"


def markdown(state: SweepState, rows: list[SummaryRow] | None = None) -> str:
    rows = summary_rows(state) if rows is None else rows
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r.overrides if k not in keys]
    head = ["#", "run", *keys, "status", "best val loss", "step", "tokens/s", "peak GB", "est. GB", "time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for i, r in enumerate(rows, 1):
        step = f"{r.best_step}" if r.best_step is not None else "–"
        est = _num(r.estimated_gb, ".2f") + (" ⚠ will swap" if r.flagged else "")
        cells = [
            str(i),
            r.label,
            *(fmt_value(r.overrides[k]) if k in r.overrides else "" for k in keys),
            r.status + (f" {r.iteration}/{r.total_iters}" if r.status != DONE and r.total_iters else ""),
            _num(r.best_val_loss, ".4f"),
            step,
            _num(r.tokens_per_second, ",.0f"),
            _num(r.peak_memory_gb, ".2f"),
            est,
            fmt_duration(r.duration_s) if r.duration_s else "–",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def best_config(row: SummaryRow) -> TrainConfig:
    """The best run's own saved settings, made ready for a new run: its adapter goes to
    mlx-lm's default folder, not back into the old run folder."""
    assert row.run_dir is not None
    config = load_config(Path(row.run_dir) / "config.yaml")
    return config.with_values(adapter_path=TrainConfig().adapter_path, resume_run=None, run_name=row.label)


def write_outputs(sweep_dir: str | Path, state: SweepState) -> tuple[str, Path | None, SummaryRow | None]:
    """(the Markdown table, best.yaml or None, the best row): both written into the sweep folder
    (rewritten at each summary: they are mlxtui's, made from the run folders)."""
    from mlxtui.core.fileio import atomic_write_text

    rows = summary_rows(state)
    table = markdown(state, rows)
    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / SUMMARY_FILE, f"# sweep {state.name}\n\n{table}")
    best = best_row(rows)
    if best is None:
        return table, None, None
    try:
        config = best_config(best)
    except (ConfigError, OSError):
        return table, None, best
    path = folder / BEST_FILE
    save_config(config, path)
    header = (
        f"# the best run of sweep {state.name}: {best.label}, best validation loss "
        f"{best.best_val_loss:.4f} at step {best.best_step} ({best.run_dir})\n"
        f"# train it again: mlxtui train --config {path}\n"
    )
    atomic_write_text(path, header + path.read_text(encoding="utf-8"))
    return table, path, best
