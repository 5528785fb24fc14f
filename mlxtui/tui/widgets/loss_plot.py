"""Train and validation loss against iteration, drawn with textual-plotext.

This module is the only place that knows about plotext, so the plot can be swapped.
Points are stored at once; the drawing is throttled (at most `MAX_REDRAWS_PER_SECOND`).
"""

from __future__ import annotations

import math
from typing import Any, cast

from textual.app import ComposeResult
from textual.widget import Widget
from textual_plotext import PlotextPlot

MAX_REDRAWS_PER_SECOND = 4
# Beyond this many points a line is thinned for drawing (the stored data stays complete).
MAX_DRAWN_POINTS = 400


def _plottable(iteration: object, loss: object) -> bool:
    # NaN/inf have no place on the axis (the status line and a pause report them).
    return (
        isinstance(iteration, int)
        and isinstance(loss, int | float)
        and not isinstance(loss, bool)
        and math.isfinite(loss)
    )


def _integer_ticks(lo: int, hi: int, count: int = 5) -> list[int]:
    """Iterations are whole numbers: no "0.50" ticks on a short run."""
    return sorted({round(lo + (hi - lo) * k / (count - 1)) for k in range(count)})


def _thin(points: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    if len(points) <= limit:
        return points
    step = len(points) / limit
    picked = [points[int(i * step)] for i in range(limit)]
    if picked[-1] != points[-1]:
        picked.append(points[-1])
    return picked


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

    def compose(self) -> ComposeResult:
        yield PlotextPlot()

    def on_mount(self) -> None:
        self._redraw()
        self.set_interval(1 / MAX_REDRAWS_PER_SECOND, self._redraw_if_dirty)

    def add_train(self, iteration: int, loss: float) -> None:
        if _plottable(iteration, loss):
            self.train_points.append((int(iteration), float(loss)))
            self._dirty = True

    def add_val(self, iteration: int, loss: float) -> None:
        if _plottable(iteration, loss):
            self.val_points.append((int(iteration), float(loss)))
            self._dirty = True

    def reset(self) -> None:
        self.train_points.clear()
        self.val_points.clear()
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._redraw()

    def _redraw(self) -> None:
        self._dirty = False
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss")
        plt.xlabel("iteration")
        if self.train_points:
            xs, ys = zip(*_thin(self.train_points, MAX_DRAWN_POINTS), strict=True)
            plt.plot(list(xs), list(ys), label="train", marker="braille", color="cyan")
        if self.val_points:
            xs, ys = zip(*_thin(self.val_points, MAX_DRAWN_POINTS), strict=True)
            plt.plot(list(xs), list(ys), label="val", marker="braille", color="orange")
        iterations = [it for it, _ in self.train_points] + [it for it, _ in self.val_points]
        if iterations:
            plt.xticks(cast(Any, _integer_ticks(min(iterations), max(iterations))))
        else:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        plot.refresh()
