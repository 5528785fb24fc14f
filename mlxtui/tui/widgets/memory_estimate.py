"""The pre-flight memory estimate shown at the top of the Config pane, and its details modal.

The widget only renders `MemoryEstimated` events (the form asks for new ones); the
arithmetic runs on the engine thread (`Estimate` job, it needs the loaded model's shapes).
After a run it also shows the estimate next to the peak the trainer measured.
"""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from mlxtui.core import events as ev
from mlxtui.core.memory import format_bytes

VERDICT_STYLE = {"fits": "bold $success", "tight": "bold $warning", "will swap": "bold $error"}
# mlx-lm reports peak memory in GB of 10^9 bytes (mx.get_peak_memory() / 1e9).
MLX_LM_GB = 1e9


def estimate_lines(estimate: ev.MemoryEstimated, with_options: bool = True) -> Content:
    """'estimated peak X — fits (Y available)' plus the cheaper options when it does not fit."""
    text = Content("estimated peak ")
    text = text.append_text(format_bytes(estimate.total_bytes), "bold")
    if estimate.verdict:
        text = text.append(" — ")
        text = text.append_text(estimate.verdict, VERDICT_STYLE.get(estimate.verdict, "bold"))
    if estimate.available_bytes is not None:
        text = text.append(f" ({format_bytes(estimate.available_bytes)} available)")
    if with_options and estimate.verdict in ("tight", "will swap") and estimate.options:
        text = text.append_text("\ncheaper:", "bold")
        for label, size in estimate.options[:4]:
            text = text.append(f"\n • {label}: {format_bytes(size)}")
    return text


def comparison_line(estimated: int | None, measured_gb: float) -> Content:
    """The last run's estimate against the trainer's measured peak (GB of 10^9 bytes)."""
    measured = int(measured_gb * MLX_LM_GB)
    text = Content("last run: measured peak ")
    text = text.append_text(format_bytes(measured), "bold")
    if estimated:
        diff = (measured - estimated) / estimated * 100
        text = text.append(f", estimated {format_bytes(estimated)} ({diff:+.0f}%)")
    else:
        text = text.append(" (no estimate)")
    return text


def short_error(message: str) -> str:
    """The first line of a failed estimate, without the exception name or the CLI advice."""
    first = message.splitlines()[0] if message else "unknown error"
    first = re.sub(r"^\w+Error: ", "", first)
    first = re.sub(r";? ?run `mlxtui data validate [^`]*`", "", first)
    if ".jsonl" in first:
        first += " (v lists every problem)"
    return first


class EstimateView(Static):
    """Renders the latest estimate and, after a run, the estimate against the measured peak."""

    DEFAULT_CSS = """
    EstimateView { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("memory estimate: after the model loads", id=id)
        self.estimate: ev.MemoryEstimated | None = None
        self.pending = False
        self.error: str | None = None
        self.run_estimate: int | None = None
        self.run_peak_gb = 0.0
        self.last_run: Content | None = None
        self.ranks_line: Content | None = None

    def show_ranks(self, ranks: int | None, batch_size: int, accumulation: int, hosts: str | None) -> None:
        """A run across ranks: the effective batch, and that the estimate is each rank's."""
        if ranks == 1:
            self.ranks_line = None
        elif ranks is None:
            self.ranks_line = Content.styled(f"ranks: cannot read the host file {hosts}", "$warning")
        else:
            effective = batch_size * ranks * accumulation
            text = Content("effective batch ")
            text = text.append_text(str(effective), "bold")
            text = text.append(
                f" = {batch_size} per rank × {ranks} ranks × {accumulation} accumulation; "
                "the estimate is per rank"
            )
            self.ranks_line = text
        self.redraw()

    def show_estimate(self, estimate: ev.MemoryEstimated) -> None:
        self.estimate, self.pending, self.error = estimate, False, None
        self.redraw()

    def show_error(self, message: str) -> None:
        self.pending, self.error = False, message
        self.redraw()

    def run_started(self, estimated_peak_bytes: int | None) -> None:
        self.run_estimate, self.run_peak_gb = estimated_peak_bytes, 0.0
        self.redraw()

    def run_peak(self, peak_gb: float) -> None:
        """The trainer's peak so far (GB of 10^9 bytes, as mlx-lm reports it)."""
        if isinstance(peak_gb, int | float) and peak_gb == peak_gb:
            self.run_peak_gb = max(self.run_peak_gb, float(peak_gb))

    def run_finished(self) -> None:
        if self.run_peak_gb > 0:
            self.last_run = comparison_line(self.run_estimate, self.run_peak_gb)
        self.redraw()

    def set_pending(self) -> None:
        self.pending = True
        self.redraw()

    def redraw(self) -> None:
        if self.error:
            text = Content.styled(f"no memory estimate: {short_error(self.error)}", "$warning")
        elif self.estimate is not None:
            text = estimate_lines(self.estimate)
            if self.pending:
                text = text.append_text(" …", "dim")
        elif self.pending:
            text = Content.styled("estimating peak memory…", "italic")
        else:
            text = Content("memory estimate: after the model loads")
        if self.last_run is not None:
            text = text.append("\n")
            text = text.append(self.last_run)
        if self.ranks_line is not None:
            text = text.append("\n")
            text = text.append(self.ranks_line)
        if self.estimate is not None:
            text = text.append_text("  (m: details)", "dim")
        self.update(text)

    def plain(self) -> str:
        return str(self.render())

    def on_click(self) -> None:
        self.open_details()

    def open_details(self) -> None:
        if self.estimate is None:
            self.app.notify("No estimate yet: it comes once the model has loaded.")
            return
        self.app.push_screen(EstimateScreen(self.estimate, self.last_run))


class EstimateScreen(ModalScreen[None]):
    """The estimate's breakdown and every cheaper option."""

    DEFAULT_CSS = """
    EstimateScreen { align: center middle; }
    """
    BINDINGS = [Binding("escape,enter,q,m", "app.pop_screen", "Close", show=True)]

    def __init__(self, estimate: ev.MemoryEstimated, last_run: Content | None = None) -> None:
        super().__init__()
        self.estimate = estimate
        self.last_run = last_run

    def compose(self) -> ComposeResult:
        est = self.estimate
        text = estimate_lines(est, with_options=False)
        text = text.append_text("\n\nbreakdown:\n", "bold")
        width = max((len(k) for k in est.breakdown), default=4) + 2
        for name, size in sorted(est.breakdown.items(), key=lambda kv: -kv[1]):
            text = text.append(f"  {name.ljust(width)}{format_bytes(size):>10}\n")
        if est.options:
            text = text.append_text("\nalternatives (estimated peak):\n", "bold")
            for label, size in est.options:
                text = text.append(f"  {label}: {format_bytes(size)}\n")
        if est.note:
            text = text.append_text(f"\n{est.note}\n", "italic")
        if self.last_run is not None:
            text = text.append("\n")
            text = text.append(self.last_run)
        with Vertical(id="estimate-box", classes="modal-box"):
            yield Label("Memory estimate", classes="modal-title")
            with VerticalScroll():
                yield Static(text, id="estimate-details")
            yield Label("Esc closes", classes="modal-hint")
