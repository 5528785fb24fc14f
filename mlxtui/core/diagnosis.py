"""Watching the losses the way the fine-tuning guides say to, and saying what they advise.

The guides' rules: a loss spike → halve the learning rate; a plateau → raise it 1.5×;
validation rising while training falls (overfitting) → stop, or train for fewer steps, and
keep the best checkpoint. `Diagnoser.feed` takes the run's events (TrainReport, ValReport;
others are ignored) and returns the `Diagnosis` events they trigger, each kind at most once per
run, with the figures that triggered it. Pure Python: no MLX, no clock, no I/O.

A run is one run across its resumes: `state()` is what the Diagnoser has seen and said, as
JSON-friendly data the run's resume state keeps, and `Diagnoser.restore` takes it back, so a
resumed run neither repeats advice already given nor forgets the losses before the pause.
The advice itself is kept too: `earlier()` gives it back, marked, for the resumed run to show
again (the dashboard's line under the loss plot starts empty at each start).

The thresholds (one place, so the tests and the README quote the same numbers):
- spike: a train report's loss is above SPIKE_FACTOR × the median of the (up to) SPIKE_WINDOW
  reports before it, at least SPIKE_MIN_HISTORY of them, all after the warmup steps (a far too
  high rate blows the loss up at the second step already, so the window cannot wait to fill);
- plateau: over the last PLATEAU_REPORTS train reports after warmup, the mean of the last
  three differs from the mean of the first three by less than PLATEAU_CHANGE (relative), while
  the learning rate stayed within LR_STEADY of constant (a decaying rate explains a flat loss)
  and the loss is not stuck above the run's best report by more than PLATEAU_CHANGE (a loss
  that got worse and stayed there had a rate too high, not too low);
- overfitting: OVERFIT_RISES validation losses in a row each higher than the one before, while
  the mean train loss since the previous validation is lower than over the interval before it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.runs import BEST_FILE

SPIKE_FACTOR = 1.5
SPIKE_WINDOW = 5
SPIKE_MIN_HISTORY = 2
PLATEAU_REPORTS = 10
PLATEAU_CHANGE = 0.01
LR_STEADY = 0.05
OVERFIT_RISES = 2
_ENDS = 3  # reports averaged at each end of the plateau window


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _lr(value: float) -> str:
    return f"{value:.2e}"


class Diagnoser:
    """warmup: steps of learning-rate warmup (a rising rate makes the loss move by itself);
    learning_rate: the configured rate the advice scales (the current one when None)."""

    def __init__(self, warmup: int = 0, learning_rate: float | None = None) -> None:
        self.warmup = warmup
        self.learning_rate = learning_rate
        self.reports: list[ev.TrainReport] = []
        self.vals: list[ev.ValReport] = []
        # mean train loss of the reports between one validation and the next, per validation
        self.train_level: list[float | None] = []
        self._since_val: list[float] = []
        self.given: set[str] = set()
        self.advice: list[ev.Diagnosis] = []  # what was said, in order
        self.best: tuple[int, float] | None = None

    def feed(self, event: ev.Event) -> list[ev.Diagnosis]:
        found: list[ev.Diagnosis | None] = []
        if isinstance(event, ev.TrainReport):
            if _finite(event.train_loss):
                self._since_val.append(event.train_loss)
            if event.iteration > self.warmup:
                self.reports.append(event)
                found += [self._spike(), self._plateau()]
        elif isinstance(event, ev.ValReport):
            if event.is_best and _finite(event.val_loss):
                self.best = (event.iteration, event.val_loss)
            if _finite(event.val_loss):
                self.vals.append(event)
                level = statistics.fmean(self._since_val) if self._since_val else None
                self.train_level.append(level)
                self._since_val = []
                found.append(self._overfitting())
        out = [d for d in found if d is not None and d.kind not in self.given]
        self.given.update(d.kind for d in out)
        self.advice += out
        return out

    def earlier(self) -> list[ev.Diagnosis]:
        """The advice given so far, marked as said before (a resumed run shows it again)."""
        return [replace(d, earlier=True) for d in self.advice]

    # ------------------------------------------------------------------ across a resume

    def state(self) -> dict[str, Any]:
        """What was said (`given`) and the history the rules still need, for state.json."""
        keep = max(SPIKE_WINDOW + 1, PLATEAU_REPORTS)
        return {
            "given": sorted(self.given),
            "advice": [asdict(d) | {"earlier": False} for d in self.advice],
            "best": list(self.best) if self.best is not None else None,
            "reports": [asdict(r) for r in self.reports[-keep:]],
            "vals": [asdict(v) for v in self.vals[-(OVERFIT_RISES + 1) :]],
            "train_level": self.train_level[-(OVERFIT_RISES + 1) :],
            "since_val": list(self._since_val),
        }

    @classmethod
    def restore(
        cls, state: dict[str, Any] | None, warmup: int = 0, learning_rate: float | None = None
    ) -> Diagnoser:
        """A Diagnoser that continues from `state()` (a fresh one for None: an older run)."""
        d = cls(warmup, learning_rate)
        if not state:
            return d
        d.given = set(state.get("given", ()))
        d.advice = [a for a in map(_advice, state.get("advice", ())) if a is not None]
        best = state.get("best")
        d.best = (int(best[0]), float(best[1])) if best else None
        d.reports = [ev.TrainReport(**r) for r in state.get("reports", ())]
        d.vals = [ev.ValReport(**v) for v in state.get("vals", ())]
        d.train_level = list(state.get("train_level", ()))
        d._since_val = list(state.get("since_val", ()))
        return d

    # ------------------------------------------------------------------ the rules

    def _base_lr(self, current: float) -> float:
        return self.learning_rate if self.learning_rate else current

    def _spike(self) -> ev.Diagnosis | None:
        if "spike" in self.given or len(self.reports) <= SPIKE_MIN_HISTORY:
            return None
        now = self.reports[-1]
        before = [r.train_loss for r in self.reports[-SPIKE_WINDOW - 1 : -1]]
        if not _finite(now.train_loss) or not all(_finite(x) for x in before):
            return None
        median = statistics.median(before)
        if median <= 0 or now.train_loss <= SPIKE_FACTOR * median:
            return None
        lr = self._base_lr(now.learning_rate)
        return ev.Diagnosis(
            "spike",
            now.iteration,
            f"loss spike at step {now.iteration}: {now.train_loss:.3f} is "
            f"{now.train_loss / median:.1f}x the median {median:.3f} of the {len(before)} reports before. "
            f"The guides' advice: halve the learning rate ({_lr(lr)} -> {_lr(lr / 2)}, "
            f"--learning-rate {lr / 2:g}) or clip the gradients (--max-grad-norm 1.0)",
            {
                "loss": now.train_loss,
                "median": median,
                "ratio": now.train_loss / median,
                "learning_rate": lr,
                "suggested_learning_rate": lr / 2,
            },
        )

    def _plateau(self) -> ev.Diagnosis | None:
        if "plateau" in self.given or len(self.reports) < PLATEAU_REPORTS:
            return None
        window = self.reports[-PLATEAU_REPORTS:]
        losses = [r.train_loss for r in window]
        rates = [r.learning_rate for r in window]
        if not all(_finite(x) for x in losses) or not _steady(rates):
            return None
        first, last = statistics.fmean(losses[:_ENDS]), statistics.fmean(losses[-_ENDS:])
        if first <= 0:
            return None
        change = (last - first) / first
        if abs(change) >= PLATEAU_CHANGE:
            return None
        best = min(r.train_loss for r in self.reports if _finite(r.train_loss))
        if last > best * (1 + PLATEAU_CHANGE):
            return None
        now = window[-1]
        lr = self._base_lr(now.learning_rate)
        return ev.Diagnosis(
            "plateau",
            now.iteration,
            f"loss plateau: from step {window[0].iteration} to {now.iteration} the loss moved "
            f"{change * 100:+.2f}% ({first:.3f} -> {last:.3f}) at a constant learning rate. "
            f"The guides' advice: raise the learning rate 1.5x ({_lr(lr)} -> {_lr(lr * 1.5)}, "
            f"--learning-rate {lr * 1.5:g})",
            {
                "first_loss": first,
                "last_loss": last,
                "relative_change": change,
                "from_iteration": window[0].iteration,
                "learning_rate": lr,
                "suggested_learning_rate": lr * 1.5,
            },
        )

    def _overfitting(self) -> ev.Diagnosis | None:
        n = OVERFIT_RISES + 1
        if "overfitting" in self.given or len(self.vals) < n:
            return None
        vals = self.vals[-n:]
        if not all(b.val_loss > a.val_loss for a, b in zip(vals, vals[1:], strict=False)):
            return None
        now_train, before_train = self.train_level[-1], self.train_level[-2]
        if now_train is None or before_train is None or now_train >= before_train:
            return None
        now = vals[-1]
        best_it, best_loss = (
            self.best if self.best is not None else (vals[0].iteration, vals[0].val_loss)
        )
        rises = " -> ".join(f"{v.val_loss:.3f}" for v in vals)
        steps = ", ".join(str(v.iteration) for v in vals)
        where = f" (adapters/{BEST_FILE})" if best_it > 0 else ""
        shorter = (
            f"train for about {best_it} steps next time (--iters {best_it})"
            if best_it > 0
            else ("lower the learning rate or add data: validation was best before any training")
        )
        return ev.Diagnosis(
            "overfitting",
            now.iteration,
            f"overfitting: validation loss rose {OVERFIT_RISES} times in a row ({rises} at steps {steps}) "
            f"while the training loss fell ({before_train:.3f} -> {now_train:.3f}). The best checkpoint "
            f"is step {best_it}, val {best_loss:.3f}{where}. The guides' advice: stop now and use "
            f"it, or {shorter}",
            {
                "val_loss": now.val_loss,
                "first_val_loss": vals[0].val_loss,
                "train_loss": now_train,
                "previous_train_loss": before_train,
                "best_iteration": best_it,
                "best_val_loss": best_loss,
            },
        )


def _advice(saved: object) -> ev.Diagnosis | None:
    """One saved advice back as its event; None for an entry a damaged state holds."""
    if not isinstance(saved, dict):
        return None
    try:
        return ev.Diagnosis(**saved)
    except TypeError:
        return None


def _steady(rates: Sequence[float]) -> bool:
    if not rates or not all(_finite(r) for r in rates):
        return False
    hi, lo = max(rates), min(rates)
    return hi <= 0 or (hi - lo) / hi <= LR_STEADY
