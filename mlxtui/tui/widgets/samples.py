"""Sample answers during training: each held-out prompt, its reference, and how the answer changes.

`SampleHistory` folds `SamplePredictions` events (plain state, kept by the app whether or not
anything shows it); `SamplesSummary` is the one-line latest answer under the loss plot, and
`SamplesScreen` (key `a`) shows every prompt with its reference and latest answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from mlxtui.core import events as ev
from mlxtui.tui.palette import REFERENCE, theme_color
from mlxtui.tui.widgets.loss_plot import LossPlot


@dataclass
class SampleHistory:
    """Every answer to every sample prompt, in the order the evaluations happened."""

    order: list[str] = field(default_factory=list)  # prompts, first-seen order
    references: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    iteration: int | None = None  # of the latest evaluation

    def record(self, event: ev.SamplePredictions) -> None:
        self.iteration = event.iteration
        for item in event.items:
            if item.prompt not in self.answers:
                self.order.append(item.prompt)
                self.answers[item.prompt] = []
            self.references[item.prompt] = item.reference
            self.answers[item.prompt].append((event.iteration, item.answer))

    def clear(self) -> None:
        self.order.clear()
        self.references.clear()
        self.answers.clear()
        self.iteration = None

    def latest(self, prompt: str) -> tuple[int, str] | None:
        found = self.answers.get(prompt)
        return found[-1] if found else None

    def previous(self, prompt: str) -> tuple[int, str] | None:
        found = self.answers.get(prompt)
        return found[-2] if found and len(found) > 1 else None


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


class SamplesSummary(Static):
    """The latest answer to the first sample prompt, in one line (under the loss plot)."""

    DEFAULT_CSS = """
    SamplesSummary { height: 1; color: $text-muted; }
    """

    history: SampleHistory | None = None

    def show(self, history: SampleHistory) -> None:
        self.history = history
        self.refresh()

    def render(self) -> Text:
        # Built at render time: the width is only known once the line is displayed.
        history = self.history
        if history is None or history.iteration is None or not history.order:
            return Text("")
        latest = history.latest(history.order[0])
        answer = latest[1] if latest else ""
        head = f"it {history.iteration} "
        hint = "  (a: answers)"
        width = max(self.size.width - len(head) - len(hint), 10)
        text = Text(head, style="bold")
        text.append(_one_line(answer, width))
        text.append(hint, style="italic")
        return text


class LossWithSamples(Vertical):
    """The loss plot with the latest sample answer under it (hidden until there is one)."""

    DEFAULT_CSS = """
    LossWithSamples { height: 1fr; }
    LossWithSamples > SamplesSummary { display: none; }
    LossWithSamples.-has-samples > SamplesSummary { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield LossPlot(id="loss-plot")
        yield SamplesSummary(id="samples-summary")

    def show_samples(self, history: SampleHistory) -> None:
        self.set_class(bool(history.order), "-has-samples")
        self.query_one(SamplesSummary).show(history)


class SamplesPanel(VerticalScroll):
    """Each prompt with its reference, the latest answer and the one before it."""

    DEFAULT_CSS = """
    SamplesPanel { height: 1fr; }
    SamplesPanel .sample { height: auto; margin: 0 0 1 0; padding: 0 1; background: $surface; }
    """

    def __init__(self, history: SampleHistory, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history = history

    def compose(self) -> ComposeResult:
        yield Static(self._empty_text(), id="samples-empty")

    def _empty_text(self) -> str:
        return (
            "No sample answers yet. While training, mlxtui answers a few held-out prompts at "
            "each evaluation (every `steps_per_eval` steps; prompts from `sample_prompts` or "
            "the validation set), so you can watch the answers change as the loss falls."
        )

    def rows(self, prompt: str) -> list[tuple[str, str, str]]:
        """(label, text, style) lines for one prompt."""
        out = [("prompt", prompt.strip(), "")]
        reference = self.history.references.get(prompt, "")
        if reference:
            out.append(("reference", reference.strip(), theme_color(self.app, REFERENCE)))
        latest = self.history.latest(prompt)
        if latest:
            out.append((f"it {latest[0]}", latest[1].strip(), ""))
        previous = self.history.previous(prompt)
        if previous:
            out.append((f"it {previous[0]}", _one_line(previous[1], 200), "dim"))
        return out

    def render_item(self, prompt: str) -> Table:
        # A grid, so long answers wrap under the text, not under the labels.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=10, style="bold", no_wrap=True)
        grid.add_column(ratio=1)
        for label, text, style in self.rows(prompt):
            grid.add_row(Text(label, style=style), Text(text, style=style))
        return grid

    def refresh_items(self) -> None:
        self.query_one("#samples-empty", Static).display = not self.history.order
        items = list(self.query(".sample").results(Static))
        for i, prompt in enumerate(self.history.order):
            if i < len(items):
                items[i].update(self.render_item(prompt))
            else:
                self.mount(Static(self.render_item(prompt), classes="sample"))

    def on_mount(self) -> None:
        self.refresh_items()

    def item_texts(self) -> list[str]:
        return [
            "\n".join(f"{label} {text}" for label, text, _s in self.rows(prompt))
            for prompt in self.history.order
        ]


class SamplesScreen(Screen[None]):
    """Full-screen view of the sample answers; refreshed live while it is open."""

    BINDINGS = [Binding("escape,q,a", "app.pop_screen", "Close", show=True)]

    DEFAULT_CSS = """
    SamplesScreen #samples-title { text-style: bold; padding: 0 1; background: $panel; width: 100%; }
    """

    def __init__(self, history: SampleHistory) -> None:
        super().__init__()
        self.history = history

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title(), id="samples-title")
            yield SamplesPanel(self.history, id="samples-panel")
        yield Footer()

    def _title(self) -> str:
        at = f" at iteration {self.history.iteration}" if self.history.iteration is not None else ""
        return f"Sample answers{at} (green: reference; dim: the evaluation before)"

    def refresh_samples(self) -> None:
        self.query_one("#samples-title", Label).update(self._title())
        self.query_one(SamplesPanel).refresh_items()
