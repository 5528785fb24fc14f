"""Compare screen: two runs or more overlaid on one loss plot, the settings that differ beside
it, and per run the best step and the gap between validation and training loss.

`x` switches the plot between steps and tokens trained; `w` writes it as a PNG next to the runs
(matplotlib, the same file `mlxtui runs compare --plot` writes).

The tables fit: the settings table heads each run's column with its number (in the run's
colour on the plot; the per-run table pairs number and name), long values and names keep their
end (a model path's folder), the tables take the width they need, and a narrow terminal (under WIDE columns) puts the tables under the plot
instead of beside it. Four runs fit at 80x24; more scroll sideways (left/right).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import work
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


WIDE = 120  # from this width on, the tables sit beside the plot
VALUE_WIDTH = 12  # a setting's value; a longer one keeps its end ("…/tiny_model")
NAME_WIDTH = 20  # a run's name in the per-run table (a run folder's name fits whole)


def _setting(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return text if len(text) <= VALUE_WIDTH else "…" + text[-(VALUE_WIDTH - 1) :]


def _name(name: str) -> str:
    """The name, or its end: run folders differ at the end (timestamp-name)."""
    return name if len(name) <= NAME_WIDTH else "…" + name[-(NAME_WIDTH - 1) :]


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Close", show=True),
        Binding("x", "toggle_x", "Steps/tokens", show=True),
        Binding("w", "write_plot", "Write PNG", show=True),
    ]

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]

    DEFAULT_CSS = """
    CompareScreen > Vertical { padding: 0 1; }
    CompareScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    CompareScreen #cmp-body { height: 1fr; }
    CompareScreen #cmp-plot { width: 1fr; min-width: 40; }
    CompareScreen #cmp-side { width: auto; max-width: 70%; min-width: 30; }
    CompareScreen #cmp-side DataTable { width: auto; }
    CompareScreen #cmp-diff { height: 1fr; }
    CompareScreen #cmp-figures { height: auto; max-height: 12; }
    CompareScreen .section { color: $primary; text-style: bold; }
    CompareScreen.-narrow #cmp-body { layout: vertical; }
    CompareScreen.-narrow #cmp-plot { width: 100%; height: 1fr; min-height: 6; }
    CompareScreen.-narrow #cmp-side { width: 100%; max-width: 100%; height: auto; }
    CompareScreen.-narrow #cmp-diff { height: auto; max-height: 7; }
    CompareScreen.-narrow #cmp-figures { max-height: 7; }
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
        styles = [self._run_style(i) for i in range(len(c.names))]
        diff: DataTable[Text | str] = self.query_one("#cmp-diff", DataTable)
        diff.add_column("setting")
        for i in range(len(c.names)):
            diff.add_column(Text(str(i + 1), style=styles[i]), key=f"run-{i}")
        for key, values in c.diff:
            diff.add_row(key, *[_setting(v) for v in values])
        if not c.diff:
            diff.add_row("(none)", *["same" for _ in c.names])
        figures: DataTable[Text | str] = self.query_one("#cmp-figures", DataTable)
        figures.add_columns("#", "run", "best val", "at step", "val−train", "final val")
        for i, f in enumerate(c.figures):
            figures.add_row(
                Text(str(i + 1), style=styles[i]),
                Text(_name(f.name), style=styles[i]),
                _num(f.best_val_loss),
                _num(f.best_step),
                _num(f.val_train_gap, 3),
                _num(f.final_val_loss),
            )
        self._draw()

    def _run_style(self, index: int) -> str:
        """The run's colour on the overlay plot, bold."""
        color = self.app.theme_variables.get(RUN_COLORS[index % len(RUN_COLORS)], "")
        return f"bold {color}" if color else "bold"

    def _draw(self) -> None:
        self.query_one(OverlayPlot).show(
            self.comparison.names, self.comparison.series(self.x_axis), self.x_axis
        )

    def action_toggle_x(self) -> None:
        self.x_axis = "tokens" if self.x_axis == "steps" else "steps"
        self._draw()

    def action_write_plot(self) -> None:
        out = self.out_dir / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.png"
        self.notify(f"writing {out}…")
        self._write_plot(out, self.x_axis)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _write_plot(self, out: Path, x_axis: str) -> None:
        """matplotlib takes about a second to import and draw: off the UI thread."""
        from mlxtui.core.plot_export import write_overlay

        try:
            written = write_overlay(self.comparison, out, x_axis)
        except (OSError, ValueError) as e:
            self.app.call_from_thread(
                self.notify, f"{out}: {e}", title="Plot not written", severity="error"
            )
            return
        self.app.call_from_thread(self.notify, f"plot written to {written}")
