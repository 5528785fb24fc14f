"""Loss curves of several runs on one plot (textual-plotext), against steps or tokens trained.

Like `loss_plot`, the only other module that knows plotext: train losses are lines, validation
losses are lines with a dot at each evaluation; each run gets its own colour from the theme.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widget import Widget
from textual_plotext import PlotextPlot

from mlxtui.tui.palette import plot_color

# Theme variables, one per run in turn.
RUN_COLORS = ("primary", "accent", "success", "warning", "error", "secondary")
VAL_MARKER = "•"


class OverlayPlot(Widget):
    DEFAULT_CSS = """
    OverlayPlot { height: 1fr; width: 1fr; }
    OverlayPlot > PlotextPlot { height: 1fr; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: list[Any] = []  # run_compare.Series
        self.x_axis = "steps"
        self.names: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield PlotextPlot()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.redraw())
        self.redraw()

    def show(self, names: tuple[str, ...], series: list[Any], x_axis: str) -> None:
        self.names, self.series, self.x_axis = names, series, x_axis
        if self.is_mounted:
            self.redraw()

    def color_of(self, name: str) -> tuple[int, int, int]:
        index = self.names.index(name) if name in self.names else 0
        return plot_color(self.app, RUN_COLORS[index % len(RUN_COLORS)])

    def redraw(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"loss: train (line) · val ({VAL_MARKER}) · against {self.x_axis}")
        plt.xlabel("step" if self.x_axis == "steps" else "tokens trained")
        for s in self.series:
            color = self.color_of(s.run)
            plt.plot(list(s.x), list(s.y), marker="braille", color=color)
            if s.kind == "val":
                plt.scatter(list(s.x), list(s.y), marker=VAL_MARKER, color=color)
        if not self.series:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        plot.refresh()
