"""Evaluate screen: test loss and perplexity, base-vs-adapter answers with ROUGE-L, and a benchmark.

The screen builds `Evaluate`/`Benchmark` jobs and hands them to `submit(job, reply_to)` (the app's
`submit_job`: it sends them to the engine and posts the job's progress, result or failure back
here as `messages.JobProgress`/`JobFinished`/`JobFailed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.validation import Integer
from textual.widgets import Button, DataTable, Footer, Input, Label, ProgressBar, Static

from mlxtui.tui import messages

Submit = Callable[[Any, Any], "int | None"]

# (input id, label, default, validator, what a valid value is)
FIELDS = (
    ("eval-n", "examples", "20", Integer(minimum=1, maximum=10000), "a whole number from 1"),
    ("eval-max", "max tokens", "128", Integer(minimum=1, maximum=8192), "a whole number from 1"),
    (
        "bench-runs",
        "bench runs",
        "5",
        Integer(minimum=1, maximum=100),
        "a whole number from 1 to 100",
    ),
)


def _cell(text: str, width: int = 28) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_losses(losses: dict[str, tuple[float, float]]) -> str:
    if not losses:
        return "test loss: no test.jsonl in the data folder (answers compared on valid.jsonl)"
    parts = []
    for name in ("base", "adapter"):
        if name in losses:
            loss, ppl = losses[name]
            parts.append(f"{name}: loss {loss:.3f}  ppl {ppl:.2f}")
    return "test   " + "   │   ".join(parts)


def format_means(report: Any) -> str:
    delta = report.adapter_mean - report.base_mean
    return (
        f"mean ROUGE-L over {len(report.rows)} examples:  base {report.base_mean:.3f}   "
        f"adapter {report.adapter_mean:.3f}   (adapter − base {delta:+.3f})"
    )


def format_benchmark(result: dict[str, Any]) -> str:
    lines = [f"{'':10}{'prompt tok/s':>20}{'generation tok/s':>22}{'peak memory':>14}"]
    runs = 0
    for name in ("base", "adapter"):
        b = result.get(name)
        if b is None:
            continue
        runs = b.runs
        lines.append(
            f"{name:10}"
            f"{f'{b.prompt_tps_mean:.1f} ± {b.prompt_tps_std:.1f}':>20}"
            f"{f'{b.gen_tps_mean:.1f} ± {b.gen_tps_std:.1f}':>22}"
            f"{f'{b.peak_memory_gb:.2f} GB':>14}"
        )
    lines.append(f"(mean ± std over {runs} runs)")
    return "\n".join(lines)


class EvaluateScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", show=True),
        Binding("q", "app.pop_screen", "Close", show=False),
        Binding("v", "evaluate", "Evaluate", show=True),
        Binding("b", "benchmark", "Benchmark", show=True),
        Binding("s", "stop_evaluation", "Stop", show=True),
    ]

    DEFAULT_CSS = """
    EvaluateScreen > Vertical { padding: 0 1; }
    EvaluateScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    EvaluateScreen #eval-settings { height: 1; margin: 1 0 0 0; }
    EvaluateScreen #eval-settings Label { padding: 0 1 0 0; color: $text-muted; }
    EvaluateScreen #eval-settings Input { border: none; height: 1; width: 7; padding: 0 1; margin-right: 2; }
    EvaluateScreen #eval-settings Input.-invalid { background: $error 40%; }
    EvaluateScreen #eval-buttons { height: 3; }
    EvaluateScreen #eval-buttons Button { margin-right: 1; }
    EvaluateScreen #eval-status { height: 1; }
    EvaluateScreen #eval-status Static { width: 1fr; }
    EvaluateScreen #eval-bar { width: 30; }
    EvaluateScreen #eval-table { height: 1fr; min-height: 4; }
    EvaluateScreen #eval-detail { height: auto; max-height: 8; color: $text-muted; }
    EvaluateScreen #eval-losses, EvaluateScreen #eval-means { height: auto; }
    EvaluateScreen #bench-result { height: auto; margin-top: 1; }
    """

    def __init__(self, submit: Submit, data: str | None = None) -> None:
        super().__init__()
        self.submit = submit
        self.data = data
        self.running: dict[str, int] = {}  # job kind -> job id
        self.result: dict[str, Any] | None = None
        self.bench: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"Evaluate: base vs adapter   data: {self.data or 'demo dataset'}", classes="title"
            )
            with Horizontal(id="eval-settings"):
                for input_id, label, default, validator, _what in FIELDS:
                    yield Label(label)
                    yield Input(default, id=input_id, validators=[validator])
            with Horizontal(id="eval-buttons"):
                yield Button("Evaluate (v)", id="eval-run", variant="primary")
                yield Button("Benchmark (b)", id="bench-run")
            with Horizontal(id="eval-status"):
                yield Static("", id="eval-progress")
                yield ProgressBar(id="eval-bar", show_eta=False)
            yield Static("", id="eval-losses")
            yield Static("", id="eval-means")
            table: DataTable[str] = DataTable(
                id="eval-table", cursor_type="row", zebra_stripes=True
            )
            yield table
            yield Static("", id="eval-detail")
            yield Static("", id="bench-result")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "prompt", "reference", "base", "adapter", "R-L base", "R-L adapter")
        self.query_one("#eval-bar", ProgressBar).display = False
        # On the button, not in a field, so v and b act at once.
        self.query_one("#eval-run", Button).focus()

    def action_stop_evaluation(self) -> None:
        """Stop a running evaluation between two examples (the engine checks its cancel token)."""
        engine = getattr(self.app, "engine", None)
        if "evaluate" in self.running and engine is not None:
            engine.cancel_generation()
            self.notify("stopping the evaluation after the current example")

    def action_close(self) -> None:
        """Esc in a field leaves it (so single keys act); Esc elsewhere closes the screen."""
        if isinstance(self.focused, Input):
            self.query_one("#eval-run", Button).focus()
        else:
            self.app.pop_screen()

    # ------------------------------------------------------------ settings

    def values(self) -> tuple[dict[str, int], list[str]]:
        out: dict[str, int] = {}
        errors: list[str] = []
        for input_id, label, _default, _validator, what in FIELDS:
            field = self.query_one(f"#{input_id}", Input)
            result = field.validate(field.value)
            if result is not None and not result.is_valid:
                errors.append(f"{label}: {field.value!r} is not {what}")
            else:
                out[input_id] = int(field.value.strip())
        return out, errors

    def _checked_values(self) -> dict[str, int] | None:
        values, errors = self.values()
        if errors:
            self.notify("\n".join(errors), title="Fix the field first", severity="error")
            return None
        return values

    # ------------------------------------------------------------ jobs

    @on(Button.Pressed, "#eval-run")
    def action_evaluate(self) -> None:
        from mlxtui.core.engine import Evaluate

        if "evaluate" in self.running:
            self.notify("The evaluation is running.", severity="warning")
            return
        values = self._checked_values()
        if values is None:
            return
        job = Evaluate(data=self.data, n=values["eval-n"], max_tokens=values["eval-max"])
        self._start("evaluate", job, f"evaluating {values['eval-n']} examples…")

    @on(Button.Pressed, "#bench-run")
    def action_benchmark(self) -> None:
        from mlxtui.core.engine import Benchmark

        if "benchmark" in self.running:
            self.notify("The benchmark is running.", severity="warning")
            return
        values = self._checked_values()
        if values is None:
            return
        job = Benchmark(runs=values["bench-runs"], max_tokens=values["eval-max"])
        self._start("benchmark", job, f"benchmark: {values['bench-runs']} runs each…")

    def _start(self, kind: str, job: Any, message: str) -> None:
        job_id = self.submit(job, self)
        if job_id is None:
            return
        self.running[kind] = job_id
        self._set_progress(message)

    def _set_progress(self, message: str, done: int = 0, total: int = 0) -> None:
        self.query_one("#eval-progress", Static).update(Text(message))
        bar = self.query_one("#eval-bar", ProgressBar)
        bar.display = total > 0
        if total > 0:
            bar.update(total=total, progress=done)

    def _kind(self, job_id: int) -> str:
        return next((k for k, i in self.running.items() if i == job_id), "")

    @on(messages.JobProgress)
    def _job_progress(self, message: messages.JobProgress) -> None:
        event = message.event
        counts = f" ({event.done}/{event.total})" if event.total else ""
        kind = self._kind(event.job_id)
        self._set_progress(f"{kind}: {event.message}{counts}", event.done, event.total)

    @on(messages.PhaseStarted)
    def _phase_started(self, message: messages.PhaseStarted) -> None:
        event = message.event
        self._set_progress(f"{self._kind(event.job_id)}: {event.label}", 0, event.total)

    @on(messages.PhaseProgress)
    def _phase_progress(self, message: messages.PhaseProgress) -> None:
        event = message.event
        counts = f" {event.done}/{event.total}" if event.total else ""
        kind = self._kind(event.job_id)
        self._set_progress(f"{kind}: {event.label}{counts}", event.done, event.total)

    @on(messages.JobFinished)
    def _job_finished(self, message: messages.JobFinished) -> None:
        event = message.event
        kind = self._kind(event.job_id)
        self.running.pop(kind, None)
        if kind == "evaluate":
            self.show_evaluation(event.result)
        elif kind == "benchmark":
            self.show_benchmark(event.result)
        self._set_progress(f"{kind}: done" if not self.running else "running…")

    @on(messages.JobFailed)
    def _job_failed(self, message: messages.JobFailed) -> None:
        event = message.event
        kind = self._kind(event.job_id)
        self.running.pop(kind, None)
        hint = f" ({event.hint})" if event.hint else ""
        self._set_progress(f"{kind} failed: {event.message}{hint}")

    # ------------------------------------------------------------ results

    def show_evaluation(self, result: dict[str, Any]) -> None:
        self.result = result
        report = result["report"]
        self.query_one("#eval-losses", Static).update(format_losses(result.get("losses", {})))
        self.query_one("#eval-means", Static).update(format_means(report))
        table = self.query_one(DataTable)
        table.clear(columns=True)
        # Share the width among the four text columns (the numbers keep theirs).
        text_width = max((self.size.width - 4 - 3 - 8 - 11 - 2 * 7) // 4, 8)
        table.add_column("#", width=3)
        for label in ("prompt", "reference", "base", "adapter"):
            table.add_column(label, width=text_width)
        table.add_column("R-L base", width=8)
        table.add_column("R-L adapter", width=11)
        for i, row in enumerate(report.rows, start=1):
            table.add_row(
                str(i),
                _cell(row.prompt, text_width),
                _cell(row.reference, text_width),
                _cell(row.base_answer, text_width),
                _cell(row.adapter_answer, text_width),
                f"{row.base_score:.3f}",
                f"{row.adapter_score:.3f}",
                key=str(i - 1),
            )
        if report.rows:
            self._show_detail(0)

    def show_benchmark(self, result: dict[str, Any]) -> None:
        self.bench = result
        self.query_one("#bench-result", Static).update(format_benchmark(result))

    @on(DataTable.RowHighlighted, "#eval-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._show_detail(int(event.row_key.value))

    def _show_detail(self, index: int) -> None:
        if self.result is None:
            return
        rows = self.result["report"].rows
        if not 0 <= index < len(rows):
            return
        row = rows[index]
        text = Text()
        for label, value in (
            ("prompt", row.prompt),
            ("reference", row.reference),
            (f"base {row.base_score:.3f}", row.base_answer),
            (f"adapter {row.adapter_score:.3f}", row.adapter_answer),
        ):
            text.append(f"{label}: ", style="bold")
            text.append(" ".join(value.split()) + "\n")
        self.query_one("#eval-detail", Static).update(text)
