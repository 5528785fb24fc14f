"""Dataset tools: validate (every finding as file:line), stats (counts, token-length histogram) and
split/convert, each in a modal screen with its work in a thread worker.

`mlxtui.core.data` is pure Python (no MLX), so it runs in Textual thread workers; the tokenizer the
engine loaded may be used there too. Progress comes back through attributes a timer reads, results
through `call_from_thread`. Nothing here overwrites a file unless the Overwrite switch is on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Select, Static, Switch
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from mlxtui.core.data import (
    SPLITS,
    DatasetStats,
    Finding,
    FormatKeys,
    PrepareError,
    ValidationReport,
    convert_file,
    dataset_stats,
    histogram,
    split_file,
    validate_dataset,
)
from mlxtui.core.data.validate import FindingGroup
from mlxtui.tui.palette import HISTOGRAM, LIMIT_LINE, plot_color
from mlxtui.tui.widgets.loss_plot import integer_ticks
from mlxtui.tui.widgets.word_switch import WordSwitch

SEVERITY_STYLE = {"error": "bold $error", "warning": "$warning"}
HISTOGRAM_BINS = 20
# how the prepare form names the settings a PrepareError refers to
PREPARE_LABELS = {"out": "Output folder", "force": "switch Overwrite files on"}


class ProgressBox:
    """Progress written by a worker thread, read by a UI timer (a tuple swap needs no lock)."""

    def __init__(self) -> None:
        self.value = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self.value = (done, total)


def finding_split_line(finding: Finding) -> tuple[str, int] | None:
    """(split, 1-based line) a finding points at, when it is a line of train/valid/test.jsonl."""
    name = Path(finding.file)
    if finding.line > 0 and name.suffix == ".jsonl" and name.stem in SPLITS:
        return name.stem, finding.line
    return None


def finding_text(finding: Finding, data_dir: Path | None = None) -> Content:
    """`file:line: severity: message`, the file relative to the data folder when inside it."""
    path = Path(finding.file)
    try:
        shown = str(path.relative_to(data_dir)) if data_dir else str(path)
    except ValueError:
        shown = str(path)
    where = f"{shown}:{finding.line}" if finding.line else shown
    text = Content(f"{where}: ")
    text = text.append_text(finding.severity, SEVERITY_STYLE.get(finding.severity, "bold"))
    text = text.append_text(f": {finding.message}")
    return text


class DataToolScreen(ModalScreen[Any]):
    DEFAULT_CSS = """
    DataToolScreen { align: center middle; }
    DataToolScreen .tool-box {
        width: 110; max-width: 96%; height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    DataToolScreen .tool-title { text-style: bold; height: 1; }
    DataToolScreen .tool-hint { color: $text-muted; height: 1; }
    DataToolScreen ProgressBar { height: 1; }
    DataToolScreen .tool-summary { height: auto; }
    """
    BINDINGS = [Binding("escape", "close", "Close", show=True)]

    def __init__(self) -> None:
        super().__init__()
        self.progress = ProgressBox()
        self.cancel = threading.Event()

    def on_mount(self) -> None:
        self.set_interval(0.1, self._show_progress)

    def _show_progress(self) -> None:
        bars = self.query(ProgressBar)
        if not bars:
            return
        done, total = self.progress.value
        if total:
            bars.first().update(total=total, progress=done)

    def action_close(self) -> None:
        self.cancel.set()
        self.dismiss(None)


# ---------------------------------------------------------------- validate


def group_text(group: FindingGroup, data_dir: Path | None, expanded: bool) -> Content:
    """The head line of a kind seen more than once: `▸ warning duplicate x474: places`."""
    text = Content("▾ " if expanded else "▸ ")
    text = text.append_text(group.severity, SEVERITY_STYLE.get(group.severity, "bold"))
    return text.append_text(f" {group.code} x{group.count}: {group.places(3, data_dir)}")


class ValidateScreen(DataToolScreen):
    """Validate a data folder; Enter on a finding shows that line in the dataset browser.

    Findings are grouped by kind (a kind seen once is its line; more often, a head line with
    the count and its first places, Enter on it expands the kind); `a` lists every finding.
    Dismisses with (split, line) for the selected finding, or None.
    """

    SHOWN_PER_GROUP = 3
    BINDINGS = [Binding("a", "toggle_all", "All findings", show=True)]

    def __init__(
        self,
        data_dir: Path,
        tokenizer: Any = None,
        max_seq_length: int = 2048,
        keys: FormatKeys | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.keys = keys
        self.batch_size = batch_size
        self.report: ValidationReport | None = None
        self.show_all = False
        self.expanded: set[int] = set()

    def compose(self) -> ComposeResult:
        with Vertical(classes="tool-box"):
            yield Label(Content(f"Validate {self.data_dir}"), classes="tool-title")
            yield ProgressBar(show_eta=False, id="validate-progress")
            yield Static("checking…", id="validate-summary", classes="tool-summary")
            yield OptionList(id="findings")
            yield Label(
                "Enter shows the line in the Dataset pane (on ▸ expands the kind) · a all findings · Esc closes",
                classes="tool-hint",
            )

    def on_mount(self) -> None:
        super().on_mount()
        self.run_validation()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def run_validation(self) -> None:
        try:
            kwargs: dict[str, Any] = {}
            if self.keys is not None:
                kwargs["keys"] = self.keys
            report = validate_dataset(
                self.data_dir,
                tokenizer=self.tokenizer,
                max_seq_length=self.max_seq_length,
                progress=self.progress,
                batch_size=self.batch_size,
                **kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - shown in the screen
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self.show_report, report)

    def _failed(self, exc: Exception) -> None:
        summary = self.query_one("#validate-summary", Static)
        summary.update(
            Content.styled(f"validation failed: {type(exc).__name__}: {exc}", "bold $error")
        )

    def show_report(self, report: ValidationReport) -> None:
        self.report = report
        bar = self.query_one(ProgressBar)
        bar.update(total=1, progress=1)
        style = "bold $success" if report.ok else "bold $error"
        summary = Content.styled(report.summary(), style)
        if self.tokenizer is None:
            summary = summary.append_text(
                "\n(no model loaded yet: lengths and the chat template are not checked)",
                style="dim",
            )
        self.query_one("#validate-summary", Static).update(summary)
        options = self.query_one(OptionList)
        options.display = bool(report.findings)
        if not report.findings:
            summary = summary.append_text("\nNo problems found.", "$success")
            self.query_one("#validate-summary", Static).update(summary)
        self._fill_findings()
        if report.findings:
            options.highlighted = 0
            options.focus()

    def _fill_findings(self, keep: str | None = None) -> None:
        """The options: every finding (show_all), or one group per kind (see the class)."""
        report = self.report
        if report is None:
            return
        options = self.query_one(OptionList)
        position = {id(f): i for i, f in enumerate(report.findings)}
        items: list[Option] = []
        if self.show_all:
            items = [
                Option(finding_text(f, self.data_dir), id=str(i))
                for i, f in enumerate(report.findings)
            ]
        else:
            for k, group in enumerate(report.groups()):
                if group.count == 1 and group.findings:
                    f = group.findings[0]
                    items.append(Option(finding_text(f, self.data_dir), id=str(position[id(f)])))
                    continue
                open_ = k in self.expanded
                items.append(Option(group_text(group, self.data_dir, open_), id=f"g{k}"))
                members = group.findings if open_ else group.findings[: self.SHOWN_PER_GROUP]
                for f in members:
                    items.append(
                        Option(
                            Content("    ") + finding_text(f, self.data_dir),
                            id=str(position[id(f)]),
                        )
                    )
        options.clear_options()
        options.add_options(items)
        if keep is not None:
            for i in range(options.option_count):
                if options.get_option_at_index(i).id == keep:
                    options.highlighted = i
                    break

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self._fill_findings()
        if self.query_one(OptionList).option_count:
            self.query_one(OptionList).highlighted = 0

    def finding_lines(self) -> list[str]:
        options = self.query_one(OptionList)
        return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]

    @on(OptionList.OptionSelected, "#findings")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if self.report is None or event.option.id is None:
            return
        if event.option.id.startswith("g"):  # a kind's head line: expand or fold it
            k = int(event.option.id[1:])
            self.expanded ^= {k}
            self._fill_findings(keep=event.option.id)
            return
        target = finding_split_line(self.report.findings[int(event.option.id)])
        if target is None:
            self.app.notify("This finding is about a whole file, not one line.")
            return
        self.dismiss(target)


# ---------------------------------------------------------------- stats


def stats_text(stats: DatasetStats) -> Content:
    """Counts per split, token figures, roles and iterations per epoch."""
    unit = " (estimated: bytes/4, no model loaded)" if stats.approximate else ""
    text = Content(f"format {stats.format or '?'} · token lengths{unit}\n\n")
    header = (
        f"{'split':<6} {'examples':>8} {'skipped':>7} {'mean':>7} {'max':>6} "
        f"{'prompt':>7} {'answer':>7} {'>max':>6}\n"
    )
    text = text.append_text(header, "bold")
    for s in stats.splits:
        line = (
            f"{s.name:<6} {s.examples:>8} {s.skipped:>7} {s.mean_tokens:>7.1f} {s.max_tokens:>6} "
            f"{s.mean_prompt_tokens:>7.1f} {s.mean_completion_tokens:>7.1f} "
        )
        text = text.append_text(line)
        text = text.append_text(f"{s.over_max:>6}\n", "bold $error" if s.over_max else "")
    if not stats.splits:
        text = text.append_text("(no train/valid/test.jsonl here)\n", "bold $error")
    train = stats.split("train")
    if train is not None:
        if train.over_max:
            text = text.append_text(
                f"\n{train.over_max} training example(s) exceed max_seq_length "
                f"{stats.max_seq_length} and will be truncated\n",
                style="$warning",
            )
        if train.role_counts:
            roles = ", ".join(f"{r} {n}" for r, n in sorted(train.role_counts.items()))
            text = text.append_text(f"\nroles (train): {roles}")
        text = text.append_text(
            f"\n{stats.iterations_per_epoch} "
            f"iteration{'' if stats.iterations_per_epoch == 1 else 's'} per epoch "
            f"at batch size {stats.batch_size}"
        )
    return text


class StatsScreen(DataToolScreen):
    """Dataset statistics, computed in the background, with a token-length histogram."""

    def __init__(
        self,
        data_dir: Path,
        tokenizer: Any = None,
        max_seq_length: int = 2048,
        batch_size: int = 4,
        keys: FormatKeys | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.keys = keys
        self.stats: DatasetStats | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="tool-box"):
            yield Label(Content(f"Dataset stats {self.data_dir}"), classes="tool-title")
            yield ProgressBar(show_eta=False, id="stats-progress")
            with VerticalScroll():
                yield Static("counting…", id="stats-text", classes="tool-summary")
                yield PlotextPlot(id="stats-histogram")
            yield Label("Esc closes", classes="tool-hint")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#stats-histogram").styles.height = 16
        self.run_stats()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def run_stats(self) -> None:
        try:
            kwargs: dict[str, Any] = {}
            if self.keys is not None:
                kwargs["keys"] = self.keys
            stats = dataset_stats(
                self.data_dir,
                tokenizer=self.tokenizer,
                max_seq_length=self.max_seq_length,
                batch_size=self.batch_size,
                progress=self.progress,
                **kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - shown in the screen
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self.show_stats, stats)

    def _failed(self, exc: Exception) -> None:
        self.query_one("#stats-text", Static).update(
            Content.styled(f"stats failed: {type(exc).__name__}: {exc}", "bold $error")
        )

    def show_stats(self, stats: DatasetStats) -> None:
        self.stats = stats
        self.query_one(ProgressBar).update(total=1, progress=1)
        self.query_one("#stats-text", Static).update(stats_text(stats))
        train = stats.split("train")
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        rows = histogram(train.token_lengths, HISTOGRAM_BINS) if train else []
        if train is not None and rows:
            centers = [(low + high - 1) / 2 for low, high, _ in rows]
            counts = [count for _, _, count in rows]
            plt.bar(centers, counts, color=plot_color(self.app, HISTOGRAM))
            plt.yticks(cast(Any, integer_ticks(0, max(counts))))  # counts, not 0.33 examples
            plt.title(f"train token lengths ({len(train.token_lengths)} examples)")
            plt.xlabel("tokens")
            if rows[-1][1] > stats.max_seq_length:
                plt.vline(stats.max_seq_length, plot_color(self.app, LIMIT_LINE))
        else:
            plt.title("no training examples")
        plot.refresh()

    def histogram_rows(self) -> list[tuple[int, int, int]]:
        train = self.stats.split("train") if self.stats else None
        return histogram(train.token_lengths, HISTOGRAM_BINS) if train else []


# ---------------------------------------------------------------- split / convert


class PrepareScreen(DataToolScreen):
    """Split a JSONL file into train/valid(/test), or convert CSV/TSV/JSON/JSONL rows to chat or
    completions JSONL. Existing files are kept unless Overwrite is on. Dismisses with the folder
    written (when the user asks to use it) or None."""

    DEFAULT_CSS = """
    PrepareScreen .row { height: 1; margin-bottom: 1; }
    PrepareScreen .row Label { width: 18; }
    PrepareScreen .row Input { width: 1fr; }
    PrepareScreen .row Select { width: 44; }
    PrepareScreen .row Switch { border: none; height: 1; padding: 0; width: 10; }
    PrepareScreen .convert-only, PrepareScreen .split-only { height: auto; }
    PrepareScreen #prep-buttons { height: 3; }
    PrepareScreen #prep-result { height: auto; margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close", show=True),
        Binding("ctrl+r", "run", "Run", show=True),
    ]

    def __init__(self, start_file: str = "", out_dir: str = "") -> None:
        super().__init__()
        self.start_file = start_file
        self.start_out = out_dir
        self.result_dir: Path | None = None

    def compose(self) -> ComposeResult:
        def row(label: str, widget: Any, classes: str = "row") -> Horizontal:
            return Horizontal(Label(label), widget, classes=classes)

        with Vertical(classes="tool-box"):
            yield Label("Split or convert a data file", classes="tool-title")
            with VerticalScroll():
                yield row(
                    "Action",
                    Select(
                        [
                            ("split into train/valid(/test)", "split"),
                            ("convert to JSONL", "convert"),
                        ],
                        value="split",
                        allow_blank=False,
                        compact=True,
                        id="prep-mode",
                    ),
                )
                yield row(
                    "Input file",
                    Input(
                        self.start_file,
                        placeholder="path of a .jsonl (split) or .csv/.tsv/.json/.jsonl (convert)",
                        id="prep-input",
                        compact=True,
                    ),
                )
                yield row(
                    "Output folder",
                    Input(
                        self.start_out,
                        placeholder="empty = the input file's folder",
                        id="prep-out",
                        compact=True,
                    ),
                )
                with Vertical(classes="split-only"):
                    yield row(
                        "Ratios",
                        Input(
                            "0.9,0.1",
                            placeholder="train,valid[,test]",
                            id="prep-ratios",
                            compact=True,
                        ),
                    )
                    yield row("Seed", Input("42", id="prep-seed", compact=True))
                with Vertical(classes="convert-only"):
                    yield row(
                        "Format",
                        Select(
                            [
                                ("chat (messages)", "chat"),
                                ("completions (prompt/completion)", "completions"),
                            ],
                            value="chat",
                            allow_blank=False,
                            compact=True,
                            id="prep-to",
                        ),
                    )
                    yield row(
                        "Prompt column",
                        Input(
                            placeholder="empty = guess (prompt, instruction, question…)",
                            id="prep-prompt",
                            compact=True,
                        ),
                    )
                    yield row(
                        "Response column",
                        Input(
                            placeholder="empty = guess (response, output, answer…)",
                            id="prep-response",
                            compact=True,
                        ),
                    )
                    yield row(
                        "System prompt",
                        Input(placeholder="optional (chat only)", id="prep-system", compact=True),
                    )
                yield row("Overwrite files", WordSwitch(value=False, id="prep-force"))
                with Horizontal(id="prep-buttons"):
                    yield Button("Run (ctrl+r)", id="prep-run", variant="primary")
                    yield Button("Use as data folder", id="prep-use", disabled=True)
                yield Static("", id="prep-result")
            yield Label(
                "Esc closes · existing files are kept unless Overwrite is on", classes="tool-hint"
            )

    def on_mount(self) -> None:
        self._show_mode("split")
        self.query_one("#prep-input", Input).focus()

    @on(Select.Changed, "#prep-mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._show_mode(str(event.value))

    def _show_mode(self, mode: str) -> None:
        self.query_one(".split-only").display = mode == "split"
        self.query_one(".convert-only").display = mode == "convert"

    @on(Button.Pressed, "#prep-run")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#prep-use")
    def _use_pressed(self) -> None:
        if self.result_dir is not None:
            self.dismiss(self.result_dir)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_run()

    def value(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value.strip()

    def action_run(self) -> None:
        mode = str(self.query_one("#prep-mode", Select).value)
        source = self.value("prep-input")
        if not source:
            self.show_result(
                Content.styled("Input file: give the path of the file to " + mode, "bold $error")
            )
            return
        options = {
            "mode": mode,
            "source": source,
            "out": self.value("prep-out") or None,
            "force": self.query_one("#prep-force", Switch).value,
            "ratios": self.value("prep-ratios"),
            "seed": self.value("prep-seed"),
            "to": str(self.query_one("#prep-to", Select).value),
            "prompt": self.value("prep-prompt") or None,
            "response": self.value("prep-response") or None,
            "system": self.value("prep-system") or None,
        }
        self.show_result(Content.styled("working…", "italic"))
        self.prepare(options)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def prepare(self, o: dict[str, Any]) -> None:
        try:
            text, folder = run_prepare(o)
        except PrepareError as exc:
            text, folder = Content.styled(exc.worded(PREPARE_LABELS), "bold $error"), None
        except Exception as exc:  # noqa: BLE001 - shown in the screen
            text, folder = Content.styled(f"{type(exc).__name__}: {exc}", "bold $error"), None
        self.app.call_from_thread(self.show_result, text, folder)

    def show_result(self, text: Content, folder: Path | None = None) -> None:
        self.result_dir = folder
        self.query_one("#prep-result", Static).update(text)
        self.query_one("#prep-use", Button).disabled = folder is None

    def result_text(self) -> str:
        return str(self.query_one("#prep-result", Static).render())


def run_prepare(o: dict[str, Any]) -> tuple[Content, Path | None]:
    """Run a split or convert described by the form's values; PrepareError says what is wrong."""
    if o["mode"] == "split":
        try:
            seed = int(o["seed"] or 42)
        except ValueError:
            raise PrepareError(f"Seed must be a whole number, got {o['seed']!r}") from None
        result = split_file(o["source"], o["ratios"] or "0.9,0.1", seed, o["out"], o["force"])
        parts = ", ".join(f"{p.name} ({result.counts[name]})" for name, p in result.paths.items())
        folder = next(iter(result.paths.values())).parent
        text = Content.styled(f"wrote {parts} in {folder}", "bold $success")
        if result.skipped_blank:
            text = text.append_text(f"\n{result.skipped_blank} blank line(s) left out", "$warning")
        return text, folder
    conv = convert_file(
        o["source"], o["to"], o["out"], o["prompt"], o["response"], o["system"], o["force"]
    )
    text = Content.styled(
        f"wrote {conv.count} example(s) to {conv.path} (prompt column '{conv.prompt_column}', "
        f"response column '{conv.response_column}')",
        style="bold $success",
    )
    if conv.skipped:
        text = text.append_text(f"\n{len(conv.skipped)} row(s) not written:", "$warning")
        for why in conv.skipped[:20]:
            text = text.append_text(f"\n  {why}", "$warning")
        if len(conv.skipped) > 20:
            text = text.append_text(f"\n  … and {len(conv.skipped) - 20} more", "$warning")
    text = text.append_text("\nsplit it next (Action: split) to make train/valid files", "dim")
    return text, None
