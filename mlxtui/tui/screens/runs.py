"""Runs screen: the run history with its figures; open a run to see its loss curves, its
checkpoints and its settings; chat with, export, continue, rename, tag, note, delete, compare.

The screen reads run folders (plain files, no MLX) through `core.run_history`, and deletes
them, in worker threads: a runs folder of many long runs takes seconds to read, and the
screen shows "reading runs…" meanwhile instead of freezing the dashboard (MLX never runs
here); deleting a run of many checkpoints takes a while too. It calls back
into the app for chat (`use(path, label)`) and resume (`resume(run_path)`), and posts
`LoadSettings` (the run's config into the Config pane) and `ExportAdapter` (the export screen
with that checkpoint) for the app to act on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from mlxtui.core.config import TrainConfig
from mlxtui.core.run_history import RunError, RunSummary, format_date, list_summaries
from mlxtui.core.runs import BEST_FILE, STATE_DIR
from mlxtui.tui.widgets.loss_plot import LossPlot

ADAPTER_FILE = "adapters.safetensors"
READING = "reading runs…"
MARK = "● "
CKPT_COLUMNS = ("checkpoint", "file")
# the figures first: the settings and the date come after them (a narrow terminal scrolls)
COLUMNS = (
    "run", "status", "steps", "best val", "final val", "tok/s", "peak GB", "est GB", "time",
    "lr", "layers", "rank", "method", "model", "date", "tags",
)  # fmt: skip


def resumable(run: RunSummary) -> str | None:
    """Why `run` cannot be resumed, or None when it can."""
    if run.status in ("running", "paused"):
        return f"{run.name} is being trained by process {run.pid}"
    if not (run.path / STATE_DIR / "optimizer.safetensors").is_file():
        return f"{run.name} has no resume state ({STATE_DIR}/optimizer.safetensors)"
    if run.status == "finished" and run.total_iters and run.iteration >= run.total_iters:
        return f"{run.name} is complete ({run.iteration}/{run.total_iters}); nothing to resume"
    return None


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _lr(value: object) -> str:
    return f"{value:.0e}" if isinstance(value, float) else ("–" if value is None else str(value))


def _duration(seconds: float) -> str:
    if not seconds:
        return "–"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}" if h else (f"{m}m{s:02d}" if m else f"{s}s")


def table_row(run: RunSummary, marked: bool = False) -> list[str]:
    st = run.settings
    best = _num(run.best_val_loss, ".4f")
    if run.best_step is not None and run.best_val_loss is not None:
        best += f" @{run.best_step}"
    return [
        (MARK if marked else "") + run.name,
        run.status,
        f"{run.iteration}/{run.total_iters}" if run.total_iters else str(run.iteration),
        best,
        _num(run.final_val_loss, ".4f"),
        _num(run.tokens_per_second, ",.0f"),
        _num(run.peak_memory_gb, ".2f"),
        _num(run.estimated_peak_gb, ".2f"),
        _duration(run.duration_s),
        _lr(st.get("lr")),
        "–" if st.get("layers") is None else str(st["layers"]),
        "–" if st.get("rank") is None else str(st["rank"]),
        run.method,
        run.model or "demo",
        format_date(run.started),
        ",".join(run.tags),
    ]


def fill_table(table: DataTable[Any], headings: tuple[str, ...], rows: list[list[str]], keys: list[str]) -> None:
    """`rows` (with their `keys`) under `headings`, each column as wide as its widest cell,
    set here: a DataTable measures auto-width columns only when its queue is idle, and on a
    loaded machine the runs table was seen (and shot, in CI) with every column cut to its
    heading."""
    from rich.cells import cell_len

    table.clear(columns=True)
    for i, heading in enumerate(headings):
        table.add_column(heading, width=max([cell_len(heading), *(cell_len(row[i]) for row in rows)]))
    for row, key in zip(rows, keys, strict=True):
        table.add_row(*row, key=key)


class TextPrompt(ModalScreen[str | None]):
    """One line of text (a run's name, tags or note); Enter answers, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box", classes="modal-box"):
            yield Label(Text(self.question), classes="modal-title")
            yield Input(self.value, id="prompt-input")
            yield Label("Enter saves, Esc cancels", classes="modal-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Close", show=True),
        Binding("f", "use('final')", "Chat: final", show=True),
        Binding("b", "use('best')", "Chat: best", show=True),
        Binding("c", "resume", "Continue", show=True),
        Binding("l", "load_settings", "Load settings", show=True),
        Binding("x", "export", "Fuse/export", show=True),
        Binding("space", "mark", "Mark", show=True),
        Binding("v", "compare", "Compare", show=True),
        Binding("n", "rename", "Rename", show=False),
        Binding("t", "tag", "Tag", show=False),
        Binding("o", "note", "Note", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("g", "reload", "Refresh", show=False),
    ]

    DEFAULT_CSS = """
    RunsScreen > Vertical { padding: 0 1; }
    RunsScreen .title { text-style: bold; background: $panel; width: 100%; padding: 0 1; }
    RunsScreen #runs-table { height: 1fr; min-height: 4; }
    RunsScreen #runs-open { height: 2fr; min-height: 8; }
    RunsScreen #runs-left { width: 1fr; min-width: 36; }
    RunsScreen #runs-detail { height: auto; color: $text-muted; }
    RunsScreen #runs-ckpts { height: 1fr; min-height: 3; }
    RunsScreen #runs-plot { width: 1fr; }
    RunsScreen #runs-keys { height: 1; color: $text-muted; }
    RunsScreen #runs-buttons { display: none; }
    """

    class LoadSettings(Message):
        """Put this run's settings into the Config pane (to train again, or change them)."""

        def __init__(self, config: TrainConfig, run_path: Path) -> None:
            super().__init__()
            self.config = config
            self.run_path = run_path

    class RunsRead(Message):
        """The worker's read of the runs folder (`generation` tells a stale read from the last)."""

        def __init__(self, generation: int, runs: list[RunSummary], error: str | None) -> None:
            super().__init__()
            self.generation = generation
            self.runs = runs
            self.error = error

    class DeleteChecked(Message):
        """The worker's answer to whether `run` may be deleted (`why` not, or None)."""

        def __init__(self, run: RunSummary, why: str | None) -> None:
            super().__init__()
            self.run = run
            self.why = why

    class RunDeleted(Message):
        """The worker deleted `run`, or could not (`error`)."""

        def __init__(self, run: RunSummary, error: str | None) -> None:
            super().__init__()
            self.run = run
            self.error = error

    class ExportAdapter(Message):
        """Open the export screen (fuse, GGUF) with this adapter file."""

        def __init__(self, adapter: Path) -> None:
            super().__init__()
            self.adapter = adapter

    def __init__(
        self,
        runs_dir: str | Path,
        use: Callable[[Path, str], None],
        resume: Callable[[Path], bool],
    ) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.use = use
        self.resume = resume
        self.runs: list[RunSummary] = []
        self.marked: set[Path] = set()
        self._shown: Path | None = None
        self._reads = 0  # reads asked for; only the last one's answer is shown
        self.deleting: set[Path] = set()  # the runs a worker is deleting now
        self.reading = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Runs in {self.runs_dir}", id="runs-title", classes="title")
            table: DataTable[str] = DataTable(
                id="runs-table", cursor_type="row", zebra_stripes=True
            )
            yield table
            with Horizontal(id="runs-open"):
                with Vertical(id="runs-left"):
                    yield Static("", id="runs-detail")
                    ckpts: DataTable[str] = DataTable(id="runs-ckpts", cursor_type="row")
                    yield ckpts
                yield LossPlot(id="runs-plot")
            yield Static(
                "enter on a checkpoint: chat with it · n rename · t tag · o note · d delete · g refresh",
                id="runs-keys",
            )
            # kept for mouse users and older scripts; the keys above do the same
            with Horizontal(id="runs-buttons"):
                yield Button("Chat with final (f)", id="runs-final")
                yield Button("Chat with best (b)", id="runs-best")
                yield Button("Continue this run (c)", id="runs-resume")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-table", DataTable).add_columns(*COLUMNS)
        self.query_one("#runs-ckpts", DataTable).add_columns(*CKPT_COLUMNS)
        self.action_reload()
        self.query_one("#runs-table", DataTable).focus()

    # ------------------------------------------------------------ the table

    def action_reload(self) -> None:
        """Read the runs folder again, off the UI thread; the table is kept until it is read."""
        self._reads += 1
        self.reading = True
        self.query_one("#runs-title", Label).update(f"Runs in {self.runs_dir} · {READING}")
        if not self.runs:
            self.query_one("#runs-detail", Static).update(f"{READING} ({self.runs_dir})")
        self._read_runs(self._reads)

    @work(thread=True, exclusive=True, exit_on_error=False, group="read-runs")
    def _read_runs(self, generation: int) -> None:
        error: str | None = None
        try:
            runs = list_summaries(self.runs_dir)
        except Exception as e:  # noqa: BLE001 - said on screen; the screen never stays "reading"
            runs, error = [], f"cannot read {self.runs_dir}: {e}"
        self.post_message(self.RunsRead(generation, runs, error))

    @on(RunsRead)
    def _runs_read(self, message: RunsRead) -> None:
        if message.generation != self._reads:
            return  # a newer read is under way: its answer comes next
        self.reading = False
        self.query_one("#runs-title", Label).update(f"Runs in {self.runs_dir}")
        if message.error:
            self.notify(message.error, severity="error")
        table = self.query_one("#runs-table", DataTable)
        keep = self.selected()
        self.runs = message.runs
        paths = {r.path for r in self.runs}
        self.marked &= paths
        self._fill_table()
        self._shown = None
        if not self.runs:
            self.query_one("#runs-detail", Static).update(
                f"No runs yet in {self.runs_dir} (press t on the main screen to train)."
            )
            self.query_one("#runs-ckpts", DataTable).clear()
            self.query_one(LossPlot).reset()
            return
        index = next((i for i, r in enumerate(self.runs) if keep and r.path == keep.path), 0)
        table.move_cursor(row=index)
        self._show_run(index)

    def _fill_table(self) -> None:
        """The runs as rows (fill_table), marks shown."""
        rows = [table_row(run, run.path in self.marked) for run in self.runs]
        fill_table(self.query_one("#runs-table", DataTable), COLUMNS, rows, [str(i) for i in range(len(rows))])

    def selected(self) -> RunSummary | None:
        if not self.is_mounted or not self.runs:
            return None
        table = self.query_one("#runs-table", DataTable)
        if table.cursor_row is None:
            return None
        return self.runs[min(max(table.cursor_row, 0), len(self.runs) - 1)]

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._show_run(int(event.row_key.value))

    def _show_run(self, index: int) -> None:
        if not 0 <= index < len(self.runs):
            return
        run = self.runs[index]
        if self._shown == run.path:
            return
        self._shown = run.path
        text = Text()
        text.append(f"{run.name}", style="bold")
        text.append(f"  {run.status}")
        if run.folder != run.name:
            text.append(f"  ({run.folder})")
        text.append("\n")
        if run.message:
            text.append(run.message + "\n", style="italic")
        if run.note:
            text.append(f"note: {run.note}\n")
        why_not = resumable(run)
        text.append(why_not or "c continues it; l loads its settings into the Config pane")
        self.query_one("#runs-detail", Static).update(text)
        files = run.checkpoint_files()
        fill_table(
            self.query_one("#runs-ckpts", DataTable),
            CKPT_COLUMNS,
            [[label, path.name] for label, path in files],
            [str(path) for _label, path in files],
        )
        plot = self.query_one(LossPlot)
        plot.reset()
        for p in run.train_curve:
            plot.add_train(p.iteration, p.loss)
        for p in run.val_curve:
            plot.add_val(p.iteration, p.loss)

    def _need_run(self, what: str) -> RunSummary | None:
        run = self.selected()
        if run is None:
            self.notify(f"There is no run to {what}.", severity="warning")
        return run

    # ------------------------------------------------------------ checkpoints

    def _adapter(self, run: RunSummary, which: str) -> Path | None:
        file = run.adapters / (ADAPTER_FILE if which == "final" else BEST_FILE)
        if not file.is_file():
            self.notify(f"{run.name} has no {which} adapter ({file.name}).", severity="error")
            return None
        return file

    def action_use(self, which: str) -> None:
        run = self._need_run("chat with")
        if run is None:
            return
        file = self._adapter(run, which)
        if file is not None:
            self.use(file, f"{run.folder} {which}")

    @on(DataTable.RowSelected, "#runs-ckpts")
    def _checkpoint_chosen(self, event: DataTable.RowSelected) -> None:
        run = self.selected()
        if run is None or event.row_key.value is None:
            return
        path = Path(event.row_key.value)
        label = event.data_table.get_row(event.row_key)[0]
        self.use(path, f"{run.folder} {label}")

    def _highlighted_checkpoint(self, run: RunSummary) -> Path | None:
        """The checkpoint row under the cursor when that table has the focus, else the final."""
        ckpts = self.query_one("#runs-ckpts", DataTable)
        if ckpts.has_focus and ckpts.row_count:
            key = ckpts.coordinate_to_cell_key(ckpts.cursor_coordinate).row_key.value
            if key is not None:
                return Path(key)
        return self._adapter(run, "final")

    def action_export(self) -> None:
        run = self._need_run("export")
        if run is None:
            return
        file = self._highlighted_checkpoint(run)
        if file is not None:
            self.post_message(self.ExportAdapter(file))

    # ------------------------------------------------------------ settings and resume

    def action_load_settings(self) -> None:
        from mlxtui.core.config import ConfigError, load_config

        run = self._need_run("load")
        if run is None:
            return
        try:
            config = load_config(run.path / "config.yaml")
        except (ConfigError, OSError, ValueError) as e:
            self.notify(
                f"{run.path / 'config.yaml'}: {e}", title="Settings not loaded", severity="error"
            )
            return
        # A new run from these settings: its own folder, a fresh adapter
        config = config.with_values(
            resume_run=None, resume_adapter_file=None, adapter_path="adapters"
        )
        self.post_message(self.LoadSettings(config, run.path))

    @on(Button.Pressed, "#runs-final")
    def _final(self) -> None:
        self.action_use("final")

    @on(Button.Pressed, "#runs-best")
    def _best(self) -> None:
        self.action_use("best")

    @on(Button.Pressed, "#runs-resume")
    def _resume_pressed(self) -> None:
        self.action_resume()

    def action_resume(self) -> None:
        run = self._need_run("continue")
        if run is None:
            return
        why_not = resumable(run)
        if why_not:
            self.notify(why_not, title="Cannot continue", severity="error")
            return
        self.resume(run.path)

    # ------------------------------------------------------------ name, tags, note, delete

    def _ask(self, question: str, value: str, then: Callable[[RunSummary, str], None]) -> None:
        run = self._need_run("change")
        if run is None:
            return

        def answered(text: str | None) -> None:
            if text is None:
                return
            try:
                then(run, text)
            except (RunError, OSError) as e:
                self.notify(str(e), title="Not changed", severity="error")
                return
            self.action_reload()

        self.app.push_screen(TextPrompt(question, value), answered)

    def action_rename(self) -> None:
        from mlxtui.core.run_history import rename_run

        run = self.selected()
        self._ask("Name of this run:", run.name if run else "", lambda r, t: rename_run(r.path, t))

    def action_tag(self) -> None:
        from mlxtui.core.run_history import set_tags

        def apply(run: RunSummary, text: str) -> None:
            wanted = [t for t in text.replace(",", " ").split() if t]
            set_tags(run.path, add=wanted, remove=[t for t in run.tags if t not in wanted])

        run = self.selected()
        self._ask("Tags (space or comma between them):", " ".join(run.tags) if run else "", apply)

    def action_note(self) -> None:
        from mlxtui.core.run_history import set_note

        run = self.selected()
        self._ask("Note:", run.note if run else "", lambda r, t: set_note(r.path, t.strip()))

    def action_delete(self) -> None:
        """Check, ask, delete: the check and the deletion read and remove a whole folder (every
        checkpoint of a long run), so both run in a worker thread; the question in between."""
        run = self._need_run("delete")
        if run is None:
            return
        if run.path in self.deleting:
            self.notify(f"{run.name} is being deleted.", severity="warning")
            return
        self._check_delete(run)

    @work(thread=True, exit_on_error=False, group="delete-run")
    def _check_delete(self, run: RunSummary) -> None:
        from mlxtui.core.run_history import why_not_delete

        try:
            why = why_not_delete(run.path)
        except OSError as e:
            why = f"cannot read {run.path}: {e}; nothing deleted"
        self.post_message(self.DeleteChecked(run, why))

    @on(DeleteChecked)
    def _delete_checked(self, message: DeleteChecked) -> None:
        from mlxtui.tui.screens.modals import ConfirmScreen

        run = message.run
        if message.why:
            self.notify(message.why, title="Not deleted", severity="error")
            return

        def answered(yes: bool | None) -> None:
            if not yes or run.path in self.deleting:
                return
            self.deleting.add(run.path)
            self.query_one("#runs-title", Label).update(
                f"Runs in {self.runs_dir} · deleting {run.name}…"
            )
            self._delete(run)

        self.app.push_screen(
            ConfirmScreen(f"Delete {run.name} ({run.path}) with its adapters and checkpoints?"),
            answered,
        )

    @work(thread=True, exit_on_error=False, group="delete-run")
    def _delete(self, run: RunSummary) -> None:
        from mlxtui.core.run_history import delete_run

        error: str | None = None
        try:
            delete_run(run.path)  # checks again: a training may have started since the question
        except (RunError, OSError) as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - said on screen, never lost in a worker
            error = f"{type(e).__name__}: {e}"
        self.post_message(self.RunDeleted(run, error))

    @on(RunDeleted)
    def _run_deleted(self, message: RunDeleted) -> None:
        self.deleting.discard(message.run.path)
        if message.error:
            self.notify(message.error, title="Not deleted", severity="error")
        else:
            self.notify(f"deleted {message.run.path}")
        self.action_reload()

    # ------------------------------------------------------------ compare

    def action_mark(self) -> None:
        run = self._need_run("mark")
        if run is None:
            return
        self.marked ^= {run.path}
        table = self.query_one("#runs-table", DataTable)
        row = table.cursor_row
        self._fill_table()  # the mark may widen the run column
        table.move_cursor(row=min(row + 1, table.row_count - 1))

    def action_compare(self) -> None:
        from mlxtui.core.run_compare import compare
        from mlxtui.tui.screens.compare import CompareScreen

        chosen = [r for r in self.runs if r.path in self.marked]
        if len(chosen) < 2:
            self.notify(
                "Mark two runs or more with space, then press v.",
                title="Compare",
                severity="warning",
            )
            return
        self.app.push_screen(CompareScreen(compare(chosen), self.runs_dir))
