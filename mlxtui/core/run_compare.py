"""Comparing runs: the settings that differ, per run the best step and the gap between
validation and training loss, and the curves to overlay on one plot (against steps or tokens).

Plain data from `run_history.RunSummary`; the dashboard draws it with plotext, the CLI writes it
with matplotlib (`plot_export`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlxtui.core.run_history import CurvePoint, RunSummary

# Keys that differ between any two runs without being a choice the user made.
_NOT_SETTINGS = frozenset(
    {"adapter_path", "runs_dir", "resume_run", "resume_adapter_file", "run_name"}
)
X_AXES = ("steps", "tokens")


@dataclass(frozen=True)
class RunFigures:
    name: str
    best_step: int | None
    best_val_loss: float | None
    final_val_loss: float | None
    final_train_loss: float | None
    # validation minus training loss at the last validation step (train loss of the nearest
    # report at or before it): how far the adapter fits the training set better than held-out data
    val_train_gap: float | None
    gap_step: int | None


@dataclass(frozen=True)
class Series:
    run: str
    kind: str  # "train" or "val"
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    names: tuple[str, ...]
    diff: tuple[tuple[str, tuple[Any, ...]], ...]  # (setting, value per run) where they differ
    figures: tuple[RunFigures, ...]
    runs: tuple[RunSummary, ...]

    def series(self, x_axis: str = "steps") -> list[Series]:
        return overlay(self.runs, x_axis, self.names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "name": f.name,
                    "path": str(r.path),
                    **{k: v for k, v in f.__dict__.items() if k != "name"},
                }
                for f, r in zip(self.figures, self.runs, strict=True)
            ],
            "diff": {key: list(values) for key, values in self.diff},
        }


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (lora_parameters.rank), the way a diff reads them."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(configs: list[dict[str, Any]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The settings whose values are not all the same, in config order; a key one config lacks
    shows as None there."""
    flat = [flatten(c) for c in configs]
    keys: list[str] = []
    for f in flat:
        keys.extend(k for k in f if k not in keys)
    out = []
    for key in keys:
        if key.split(".")[0] in _NOT_SETTINGS:
            continue
        values = tuple(f.get(key) for f in flat)
        if any(v != values[0] for v in values[1:]):
            out.append((key, values))
    return out


def _train_loss_at(curve: tuple[CurvePoint, ...], step: int) -> float | None:
    before = [p for p in curve if p.iteration <= step]
    return before[-1].loss if before else None


def figures(run: RunSummary, name: str | None = None) -> RunFigures:
    gap = gap_step = None
    # step 0's validation comes before any training: no gap to speak of
    trained_vals = [p for p in run.val_curve if p.iteration > 0]
    if trained_vals:
        last = trained_vals[-1]
        train = _train_loss_at(run.train_curve, last.iteration)
        if train is not None:
            gap, gap_step = last.loss - train, last.iteration
    return RunFigures(
        name=name or run.name,
        best_step=run.best_step,
        best_val_loss=run.best_val_loss,
        final_val_loss=run.final_val_loss,
        final_train_loss=run.final_train_loss,
        val_train_gap=gap,
        gap_step=gap_step,
    )


def unique_names(runs: list[RunSummary]) -> tuple[str, ...]:
    """Run names for a legend: the folder where two runs share a display name."""
    names = [r.name for r in runs]
    return tuple(r.folder if names.count(r.name) > 1 else r.name for r in runs)


def overlay(
    runs: tuple[RunSummary, ...] | list[RunSummary],
    x_axis: str = "steps",
    names: tuple[str, ...] | None = None,
) -> list[Series]:
    """Train and validation curves of each run, x in steps or in tokens trained."""
    if x_axis not in X_AXES:
        raise ValueError(f"x axis {x_axis!r}: choose one of {', '.join(X_AXES)}")
    names = names or unique_names(list(runs))
    out = []
    for name, run in zip(names, runs, strict=True):
        for kind, curve in (("train", run.train_curve), ("val", run.val_curve)):
            if curve:
                xs = tuple(float(p.iteration if x_axis == "steps" else p.tokens) for p in curve)
                out.append(Series(name, kind, xs, tuple(p.loss for p in curve)))
    return out


def compare(runs: list[RunSummary]) -> Comparison:
    if len(runs) < 2:
        raise ValueError(f"compare needs two runs or more; got {len(runs)}")
    names = unique_names(runs)
    return Comparison(
        names=names,
        diff=tuple(config_diff([r.config for r in runs])),
        figures=tuple(figures(r, n) for r, n in zip(runs, names, strict=True)),
        runs=tuple(runs),
    )
