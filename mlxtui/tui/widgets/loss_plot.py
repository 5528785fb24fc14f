"""Train and validation loss against iteration, drawn with textual-plotext.

This module is the only place that knows about plotext, so the plot can be swapped.
Points are stored at once; the drawing is throttled (at most `MAX_REDRAWS_PER_SECOND`).
A long run keeps its cost flat: past `MAX_KEPT_POINTS` a series' older points are decimated,
each bucket keeping its lowest and highest point (spikes and the best loss stay on the curve),
while the newest `RECENT_POINTS` stay exact.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, cast

from textual.app import ComposeResult
from textual.widget import Widget
from textual_plotext import PlotextPlot

from mlxtui.tui.palette import TRAIN_CURVE, VAL_CURVE, plot_color
from mlxtui.tui.ticks import PLOT_SLOT, until_slot

MAX_REDRAWS_PER_SECOND = 1 / PLOT_SLOT[0]
# The most of the UI thread's time the plot may take: plotext builds each figure in Python (5-15 ms
# here), and while training every millisecond of it is taken from the training thread, which
# needs the same GIL. A figure that costs more is redrawn less often (2 Hz at 10 ms).
PLOT_CPU_SHARE = 0.02
# Beyond this many points a line is thinned for drawing (min/max kept, as when stored).
MAX_DRAWN_POINTS = 400
# Points kept per series; decimating down to half of it makes the work per point O(1) amortized.
MAX_KEPT_POINTS = 2000
RECENT_POINTS = 500
VAL_MARKER = "•"
Y_TICKS = 4
TITLE = f"loss: train (cyan) · val (orange {VAL_MARKER})"


def _plottable(iteration: object, loss: object) -> bool:
    # NaN/inf have no place on the axis (the status line and a pause report them).
    return (
        isinstance(iteration, int)
        and isinstance(loss, int | float)
        and not isinstance(loss, bool)
        and math.isfinite(loss)
    )


def integer_ticks(lo: int, hi: int, count: int = 5) -> list[int]:
    """At most about `count` whole numbers in [lo, hi] at a 1-2-5 step: no "0.50" ticks on a
    short run and no uneven gaps (0 2 3 4 6)."""
    lo, hi = int(lo), int(hi)
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    step = 1
    while _next_nice(step) <= raw or abs(math.log(_next_nice(step) / raw)) < abs(
        math.log(step / raw)
    ):
        step = _next_nice(step)  # the 1-2-5 step nearest the even spacing
    start = -(-lo // step) * step  # the first multiple of step at or above lo
    return list(range(start, hi + 1, step)) or [lo]


def _next_nice(step: int) -> int:
    """1 → 2 → 5 → 10 → 20 → 50 → 100 …"""
    digits = str(step)
    lead, zeros = int(digits[0]), len(digits) - 1
    return {1: 2, 2: 5}.get(lead, 10) * 10**zeros


Point = tuple[int, float]


def min_max_decimate(points: list[Point], limit: int) -> list[Point]:
    """At most about `limit` points of `points` (in order): in each of limit/2 buckets its lowest
    and highest point, in iteration order; the first and last point are always kept."""
    if len(points) <= limit or limit < 4:
        return points
    buckets = max((limit - 2) // 2, 1)
    inner = points[1:-1]
    size = len(inner) / buckets
    kept = [points[0]]
    for b in range(buckets):
        chunk = inner[int(b * size) : int((b + 1) * size)]
        if not chunk:
            continue
        low = min(chunk, key=lambda p: p[1])
        high = max(chunk, key=lambda p: p[1])
        kept.extend(sorted({low, high}))
    kept.append(points[-1])
    return kept


def decimate_older(points: list[Point], limit: int, recent: int) -> list[Point]:
    """`points` shortened to at most `limit` once it passes it: the newest `recent` exact, the
    older ones min/max-decimated into what is left of half the limit."""
    if len(points) <= limit:
        return points
    recent = min(recent, limit // 4)
    older, newest = points[:-recent], points[-recent:]
    return min_max_decimate(older, max(limit // 2 - recent, 4)) + newest


def _thin(points: list[Point], limit: int) -> list[Point]:
    return min_max_decimate(points, limit)


class TimedPlot(PlotextPlot):
    """A PlotextPlot that remembers what its last figure cost (CPU seconds of this thread)."""

    build_seconds = 0.0

    def render(self) -> Any:
        start = time.thread_time()
        try:
            return super().render()
        finally:
            self.build_seconds = time.thread_time() - start


def on_screen(widget: Widget) -> bool:
    """Whether some of `widget` is seen now: not hidden, not in a pane beside the shown one,
    not scrolled out of its pane. A refresh of a widget that is not makes Textual arrange all
    the screen's widgets again at the next frame (its full compositor map)."""
    return widget.screen.can_view_partial(widget)


class LossPlot(Widget):
    """Live loss curves. Call `add_train`, `add_val`, `reset`; the widget redraws itself."""

    DEFAULT_CSS = """
    LossPlot { height: 1fr; width: 1fr; }
    LossPlot > PlotextPlot { height: 1fr; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.train_points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []
        self._dirty = True
        self._drawn_at = 0.0
        self._seen = False  # on screen at the last tick

    def compose(self) -> ComposeResult:
        yield TimedPlot()

    def on_mount(self) -> None:
        self._redraw()
        self._tick()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

    def add_train(self, iteration: int, loss: float) -> None:
        if _plottable(iteration, loss):
            self.train_points.append((int(iteration), float(loss)))
            if len(self.train_points) > MAX_KEPT_POINTS:
                self.train_points = decimate_older(
                    self.train_points, MAX_KEPT_POINTS, RECENT_POINTS
                )
            self._dirty = True

    def add_val(self, iteration: int, loss: float) -> None:
        if _plottable(iteration, loss):
            self.val_points.append((int(iteration), float(loss)))
            if len(self.val_points) > MAX_KEPT_POINTS:
                self.val_points = decimate_older(self.val_points, MAX_KEPT_POINTS, RECENT_POINTS)
            self._dirty = True

    def load_history(self, run_dir: str, upto: int) -> None:
        """Train reports and validation losses a run recorded up to step `upto` (resume)."""
        from mlxtui.core.runs import read_metrics

        for record in read_metrics(Path(run_dir)):
            iteration = record.get("iteration")
            if not isinstance(iteration, int) or iteration > upto:
                continue
            if record.get("event") == "train" and "train_loss" in record:
                self.add_train(iteration, record["train_loss"])
            elif record.get("event") == "val" and "val_loss" in record:
                self.add_val(iteration, record["val_loss"])

    def reset(self) -> None:
        self.train_points.clear()
        self.val_points.clear()
        self._dirty = True

    def _tick(self) -> None:
        """Every PLOT_SLOT interval, at its phase: never in the status line's frame (ticks.py)."""
        self._redraw_if_dirty()
        self.set_timer(max(until_slot(PLOT_SLOT, time.monotonic() + 0.01), 0.001), self._tick)

    def _redraw_if_dirty(self) -> None:
        """Draw new points: only while on screen (a hidden plot keeps its last figure, shown at
        once when its pane comes back, and redrawn at the next tick), and within PLOT_CPU_SHARE."""
        seen, self._seen = self._seen, on_screen(self)
        if not self._dirty or not self._seen:
            return
        cost = self.query_one(TimedPlot).build_seconds
        wait = max(1 / MAX_REDRAWS_PER_SECOND, cost / PLOT_CPU_SHARE)
        if not seen or time.monotonic() - self._drawn_at >= wait - 0.01:
            self._redraw()

    def _redraw(self) -> None:
        self._dirty = False
        self._drawn_at = time.monotonic()
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        # The key is in the title: plotext's legend box sits over the first iterations, where the
        # starting validation loss is. Validation points get a dot, so they read without colour.
        plt.title(TITLE)
        plt.xlabel("iteration")
        if self.train_points:
            xs, ys = zip(*_thin(self.train_points, MAX_DRAWN_POINTS), strict=True)
            train = plot_color(self.app, TRAIN_CURVE)
            plt.plot(list(xs), list(ys), marker="braille", color=train)
        if self.val_points:
            xs, ys = zip(*_thin(self.val_points, MAX_DRAWN_POINTS), strict=True)
            val = plot_color(self.app, VAL_CURVE)
            plt.plot(list(xs), list(ys), marker="braille", color=val)
            plt.scatter(list(xs), list(ys), marker=VAL_MARKER, color=val)
        iterations = [it for it, _ in self.train_points] + [it for it, _ in self.val_points]
        if iterations:
            plt.xticks(cast(Any, integer_ticks(min(iterations), max(iterations))))
            # Few evenly spaced loss labels: plotext's own skip rows unevenly (4.76 4.24 3.20).
            losses = [loss for _, loss in self.train_points + self.val_points]
            lo, hi = min(losses), max(losses)
            if hi > lo:
                yticks = [lo + (hi - lo) * k / (Y_TICKS - 1) for k in range(Y_TICKS)]
                plt.yticks(yticks, [f"{t:.2f}" for t in yticks])
        else:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        plot.refresh()
