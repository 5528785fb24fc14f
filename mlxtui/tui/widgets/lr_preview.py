"""The Loss pane: the learning-rate schedule before training, the loss curves during it.

`LrPreview` draws `schedule_preview(config, iters)` (pure Python, computed on the UI thread).
`LossPane` holds it and the loss view (the `LossPlot`, or a widget around it); training switches to
the loss, `l` toggles, and a line under the plot keeps the current learning rate and gradient
norm in view. A NaN pause is shown above the plot, the diagnosis's advice below it.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig, get_field, schedule_preview
from mlxtui.tui.palette import CURRENT_MARK, LR_CURVE, plot_color
from mlxtui.tui.ticks import LOSS_LINE_SLOT, until_slot
from mlxtui.tui.widgets.loss_plot import LossPlot, integer_ticks

# A training's steps reach the lr line (and the schedule's mark) at most this often: each draw is
# a frame of the UI thread, whose time the training's thread waits for (the GIL).
STEP_DRAW_INTERVAL_S = LOSS_LINE_SLOT[0]


def lr_label(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def schedule_points(
    config: TrainConfig, n_train: int | None
) -> tuple[list[tuple[int, float]], str]:
    """The preview points and a title; no points and the reason when the length is unknown."""
    try:
        total = config.resolved_iters(n_train)
    except ConfigError:
        return [], "epochs need the training set size (indexing the dataset…)"
    try:
        points = schedule_preview(config, total)
    except Exception as exc:  # a schedule the form let through must still not break the pane
        return [], f"cannot preview the schedule: {exc}"
    name = "phases" if config.lr_phases else str(get_field(config, "lr_schedule_name"))
    title = f"LR {name} · {total} it"
    warm = f" · warmup {config.warmup}" if config.warmup and not config.lr_phases else ""
    # plotext drops a title wider than the plot: the Loss pane is about 40 columns wide.
    return points, title + warm if len(title + warm) <= 36 else title


class LrPreview(Widget):
    """The whole schedule as a line; `mark(iteration)` draws where training is."""

    DEFAULT_CSS = """
    LrPreview { height: 1fr; width: 1fr; }
    LrPreview > PlotextPlot { height: 1fr; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[tuple[int, float]] = []
        self.title = "learning rate"
        self.current: int | None = None

    def compose(self) -> ComposeResult:
        yield PlotextPlot()

    def on_mount(self) -> None:
        self._redraw()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

    def set_points(self, points: list[tuple[int, float]], title: str) -> None:
        if points == self.points and title == self.title:
            return
        self.points, self.title = points, title
        self._redraw()

    def mark(self, iteration: int | None) -> None:
        self.current = iteration
        if self.display:
            self._redraw()

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel("iteration")
        if self.points:
            xs = [it for it, _ in self.points]
            ys = [lr for _, lr in self.points]
            plt.plot(xs, ys, marker="braille", color=plot_color(self.app, LR_CURVE))
            ticks = integer_ticks(min(xs), max(xs))
            plt.xticks([float(t) for t in ticks], [str(t) for t in ticks])
            # From 0, so a constant rate reads as a flat line at its height, not at the top.
            hi = max(ys) * 1.1 or 1.0
            plt.ylim(0, hi)
            yticks = [max(ys) * k / 2 for k in range(3)]
            plt.yticks(yticks, [lr_label(t) for t in yticks])
            if self.current is not None:
                plt.vline(self.current, plot_color(self.app, CURRENT_MARK))
        else:
            plt.xlim(0, 1)
            plt.ylim(0, 1)
        plot.refresh()


class LossPane(Vertical):
    """LR preview or loss plot, a NaN banner, and the current learning rate."""

    DEFAULT_CSS = """
    LossPane { height: 1fr; }
    LossPane #loss-banner { display: none; height: auto; background: $error 30%; color: $text; }
    LossPane #loss-banner.-shown { display: block; }
    LossPane #lr-line { height: 1; color: $text-muted; }
    LossPane #advice-line { display: none; height: auto; background: $warning 20%; color: $text; }
    LossPane #advice-line.-shown { display: block; }
    """

    def __init__(self, loss_view: Widget | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loss_view = loss_view if loss_view is not None else LossPlot(id="loss-plot")
        self.show_lr = True
        self.current_lr: float | None = None
        self.current_iteration: int | None = None
        self.current_grad_norm: float | None = None
        self.advice: list[ev.Diagnosis] = []
        self._step_timer: Any = None
        self._step_drawn_at = 0.0

    def compose(self) -> ComposeResult:
        yield Static("", id="loss-banner")
        yield LrPreview(id="lr-preview")
        yield self.loss_view
        yield Static("", id="lr-line")
        yield Static("", id="advice-line")

    def on_mount(self) -> None:
        self._apply_mode()

    # ------------------------------------------------------------ public

    def show_schedule(self, config: TrainConfig, n_train: int | None) -> bool:
        """Draw the schedule; False when its length is not known yet (epochs, dataset indexing)."""
        points, title = schedule_points(config, n_train)
        self.query_one(LrPreview).set_points(points, title)
        self._draw_line()
        return bool(points)

    def schedule_points(self) -> list[tuple[int, float]]:
        return list(self.query_one(LrPreview).points)

    def toggle(self) -> None:
        self.show_lr = not self.show_lr
        self._apply_mode()

    def train_started(self) -> None:
        self.show_lr = False
        self.current_lr = self.current_iteration = self.current_grad_norm = None
        self.advice = []
        self._show_advice()
        self._banner("")
        self._apply_mode()

    def train_step(self, step: ev.TrainStep, grad_norm: float | None = None) -> None:
        """`grad_norm`: the last norm among the steps one UI wake-up brought, when `step` has none
        (a step that only accumulated gradients keeps the last update's).

        Drawn at most `STEP_DRAW_INTERVAL_S` apart (the last step's figures always land)."""
        self.current_lr, self.current_iteration = step.learning_rate, step.iteration
        norm = step.grad_norm if step.grad_norm is not None else grad_norm
        if norm is not None:
            self.current_grad_norm = norm
        if self._step_timer is None:
            # in a slot of its own: not in the status line's frame (mlxtui/tui/ticks.py)
            wait = until_slot(LOSS_LINE_SLOT, self._step_drawn_at + STEP_DRAW_INTERVAL_S)
            self._step_timer = self.set_timer(max(wait, 0.001), self._draw_step)

    def train_finished(self) -> None:
        """The last step's figures at once."""
        self._draw_step()

    def show_nan(self, paused: ev.TrainPaused) -> None:
        self._banner(paused.message or f"loss is not a number at step {paused.iteration}")

    def show_diagnosis(self, diagnosis: ev.Diagnosis) -> None:
        """The advice stays under the plot for the rest of the run (each kind comes once)."""
        self.advice.append(diagnosis)
        self._show_advice()

    def advice_text(self) -> str:
        return str(self.query_one("#advice-line", Static).render())

    def clear_banner(self) -> None:
        self._banner("")

    def banner_text(self) -> str:
        return str(self.query_one("#loss-banner", Static).render())

    # ------------------------------------------------------------ internals

    def _apply_mode(self) -> None:
        self.query_one(LrPreview).display = self.show_lr
        self.loss_view.display = not self.show_lr
        if self.show_lr:
            self.query_one(LrPreview).mark(self.current_iteration)
        self._draw_line()

    def _draw_step(self) -> None:
        if self._step_timer is not None:
            self._step_timer.stop()
            self._step_timer = None
        self._step_drawn_at = time.monotonic()
        self._draw_line()
        if self.show_lr:
            self.query_one(LrPreview).mark(self.current_iteration)

    def _draw_line(self) -> None:
        if self.show_lr:
            text = "l: show the loss"
        elif self.current_lr is not None:
            norm = f" · |g| {self.current_grad_norm:.3g}" if self.current_grad_norm is not None else ""
            text = f"lr {lr_label(self.current_lr)} at it {self.current_iteration}{norm} · l: schedule"
        else:
            text = "l: show the learning-rate schedule"
        # one row whatever the text: no layout pass of the whole screen on every step
        self.query_one("#lr-line", Static).update(
            Text(text, no_wrap=True, overflow="ellipsis"), layout=False
        )

    def _show_advice(self) -> None:
        line = self.query_one("#advice-line", Static)
        line.update(Text("\n".join(f"◆ step {d.iteration}: {d.message}" for d in self.advice)))
        line.set_class(bool(self.advice), "-shown")

    def _banner(self, message: str) -> None:
        banner = self.query_one("#loss-banner", Static)
        banner.update(Text(("⚠ " + message) if message else ""))
        banner.set_class(bool(message), "-shown")
