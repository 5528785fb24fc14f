"""Compare screen: two runs or more overlaid on one loss plot, the settings that differ beside
it, and per run the best step and the gap between validation and training loss.

`x` switches the plot between steps and tokens trained; `w` writes it as a PNG next to the runs
(matplotlib, the same file `mlxtui runs compare --plot` writes).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from mlxtui.core.run_compare import Comparison
from mlxtui.tui.widgets.overlay_plot import RUN_COLORS, OverlayPlot


def _num(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _setting(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Close", show=True),
        Binding("x", "toggle_x", "Steps/tokens", show=True),
        Binding("w", "write_plot", "Write PNG", show=True),
    ]

    DEFAULT_CSS = """
    CompareScreen > Vertical { padding: 0 1; }
    CompareScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    CompareScreen #cmp-body { height: 1fr; }
    CompareScreen #cmp-plot { width: 3fr; min-width: 40; }
    CompareScreen #cmp-side { width: 2fr; min-width: 30; }
    CompareScreen #cmp-diff { height: 1fr; }
    CompareScreen #cmp-figures { height: auto; max-height: 12; }
    CompareScreen .section { color: $primary; text-style: bold; }
    """

    def __init__(self, comparison: Comparison, out_dir: str | Path = ".") -> None:
        super().__init__()
        self.comparison = comparison
        self.out_dir = Path(out_dir)
        self.x_axis = "steps"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Compare {len(self.comparison.names)} runs", classes="title")
            with Horizontal(id="cmp-body"):
                yield OverlayPlot(id="cmp-plot")
                with Vertical(id="cmp-side"):
                    yield Label("settings that differ", classes="section")
                    yield DataTable(id="cmp-diff", cursor_type="row", zebra_stripes=True)
                    yield Label("per run", classes="section")
                    yield DataTable(id="cmp-figures", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        c = self.comparison
        diff: DataTable[Text | str] = self.query_one("#cmp-diff", DataTable)
        diff.add_columns("setting", *c.names)
        for key, values in c.diff:
            diff.add_row(key, *[_setting(v) for v in values])
        if not c.diff:
            diff.add_row("(none)", *["same" for _ in c.names])
        figures: DataTable[Text | str] = self.query_one("#cmp-figures", DataTable)
        figures.add_columns("run", "best val", "at step", "val−train", "final val")
        for i, f in enumerate(c.figures):
            color = self.app.theme_variables.get(RUN_COLORS[i % len(RUN_COLORS)], "")
            figures.add_row(
                Text(f.name, style=f"bold {color}" if color else "bold"),
                _num(f.best_val_loss),
                _num(f.best_step),
                _num(f.val_train_gap, 3),
                _num(f.final_val_loss),
            )
        self._draw()

    def _draw(self) -> None:
        self.query_one(OverlayPlot).show(
            self.comparison.names, self.comparison.series(self.x_axis), self.x_axis
        )

    def action_toggle_x(self) -> None:
        self.x_axis = "tokens" if self.x_axis == "steps" else "steps"
        self._draw()

    def action_write_plot(self) -> None:
        from mlxtui.core.plot_export import write_overlay

        out = self.out_dir / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.png"
        try:
            written = write_overlay(self.comparison, out, self.x_axis)
        except (OSError, ValueError) as e:
            self.notify(f"{out}: {e}", title="Plot not written", severity="error")
            return
        self.notify(f"plot written to {written}")
