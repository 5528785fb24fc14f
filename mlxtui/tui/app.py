"""The mlxtui dashboard: five panes on one screen around one MLX engine.

The engine runs every MLX call on its own thread and reports `mlxtui.core.events` through the
`EventBridge`; this app folds them into widgets on the UI thread. Nothing here calls MLX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Footer, Static

from mlxtui.core import events as ev
from mlxtui.core.config import FORM_FIELDS, FieldSpec, TrainConfig, suggestions
from mlxtui.tui.cockpit import COCKPIT_BINDINGS, COCKPIT_HELP, CockpitMixin
from mlxtui.tui.messages import EventBridge, EventsPending
from mlxtui.tui.screens.modals import ConfirmScreen, ErrorModal, HelpScreen
from mlxtui.tui.status import Status, apply_event, status_text
from mlxtui.tui.themes import DEFAULT_THEME, discover_themes
from mlxtui.tui.widgets.chat import ChatPane
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.dataset_browser import DatasetBrowser
from mlxtui.tui.widgets.loss_plot import LossPlot
from mlxtui.tui.widgets.lr_preview import LossPane
from mlxtui.tui.widgets.memory_gauge import MemoryGauge
from mlxtui.tui.widgets.samples import LossWithSamples
from mlxtui.tui.widgets.status_line import StatusLine
from mlxtui.tui.workbench import WORKBENCH_BINDINGS, WORKBENCH_HELP, WorkbenchMixin

EngineFactory = Callable[[Callable[[ev.Event], None]], Any]

# (pane id, title) in key order: F1..F5 and 1..5 select them.
PANES = (
    ("pane-config", "Config"),
    ("pane-loss", "Loss"),
    ("pane-memory", "Memory"),
    ("pane-data", "Dataset"),
    ("pane-chat", "Chat"),
)
# Below this size the panes are shown one at a time (tabs) instead of in a grid.
COMPACT_WIDTH = 110
COMPACT_HEIGHT = 32

HELP_KEYS = [
    ("t / ctrl+t", "train with the settings in the Config pane"),
    ("p", "pause / continue training"),
    ("s", "stop training (the adapter is saved)"),
    ("F1-F5 / 1-5", "show: Config, Loss, Memory, Dataset, Chat"),
    ("tab / shift+tab", "move between fields"),
    ("escape", "leave a field, so single keys act again"),
    ("enter (chat)", "send the message"),
    ("escape (chat)", "stop the reply being generated"),
    ("ctrl+p", "command palette (themes, …)"),
    *WORKBENCH_HELP,
    *COCKPIT_HELP,
    ("?", "this help"),
    ("q / ctrl+q", "quit (asks first while training)"),
]


# Error titles in words ("Training failed", not "train failed").
JOB_TITLES = {
    "train": "Training",
    "load": "Loading the model",
    "generate": "The chat reply",
    "compare": "The A/B reply",
    "evaluate": "Evaluation",
    "benchmark": "The benchmark",
    "fuse": "Fusing",
    "export": "The GGUF export",
    "estimate": "The memory estimate",
}


def default_engine_factory(on_event: Callable[[ev.Event], None]) -> Any:
    from mlxtui.core.engine import Engine

    return Engine(on_event)


def default_data_dir(config: TrainConfig) -> Path | None:
    if config.data:
        return Path(config.data)
    try:
        from mlxtui.demo_data import demo_data_dir

        return demo_data_dir()
    except ImportError:
        return None


def _dequantize_flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


class Pane(Vertical):
    """A bordered pane; focusable so panes without inputs can still be selected by key."""

    can_focus = True

    def __init__(self, child: Widget, *, id: str, title: str, focus: str | None = None) -> None:
        super().__init__(child, id=id, classes="pane")
        self.border_title = title
        self.focus_selector = focus

    def focus_inside(self) -> None:
        """Focus the pane's main widget (chat input, dataset list) or the pane itself.

        The Config pane takes focus itself so single-letter keys still act; Tab enters the form.
        """
        if self.focus_selector:
            target = self.query_one(self.focus_selector)
            if target.focusable:
                target.focus()
                return
        self.focus()


class MlxtuiApp(CockpitMixin, WorkbenchMixin, App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "mlxtui"
    # Focus starts on the Config pane, not in a field, so single-letter keys work at once.
    AUTO_FOCUS = None

    BINDINGS = [
        Binding("t", "train", "Train"),
        Binding("ctrl+t", "train", "Train", show=False, priority=True),
        Binding("p", "pause", "Pause/Cont."),
        Binding("s", "stop", "Stop"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("escape", "leave_field", "Leave field", show=False),
        *WORKBENCH_BINDINGS,
        *COCKPIT_BINDINGS,
        *[
            Binding(f"f{i},{i}", f"show_pane({i - 1})", title, show=False)
            for i, (_pane, title) in enumerate(PANES, start=1)
        ],
    ]

    def __init__(
        self,
        config: TrainConfig | None = None,
        engine_factory: EngineFactory | None = None,
        theme: str | None = None,
        form_fields: tuple[FieldSpec, ...] | None = None,
    ) -> None:
        super().__init__()
        self.form_fields = FORM_FIELDS if form_fields is None else form_fields
        self.config = config or TrainConfig.quick_start()
        self.engine_factory = engine_factory or default_engine_factory
        self.engine: Any = None
        self.bridge = EventBridge(self)
        self.status = Status()
        self.model_info: ev.ModelLoaded | None = None
        self.active_pane = 0
        self.compact = False
        self._saw_steps = False
        self._quit_when_stopped = False
        self._accepted_warnings: set[str] = set()  # data folders whose warnings the user accepted
        self.events_seen = 0
        self.workbench_init()
        themes, self.theme_errors = discover_themes()
        for found in themes:
            self.register_theme(found)
        self.requested_theme = theme
        wanted = theme if theme in self.available_themes else DEFAULT_THEME
        if wanted in self.available_themes:
            self.theme = wanted

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static("", id="tabbar")
        with Container(id="panes"):
            children: dict[str, Widget] = {
                "pane-config": ConfigForm(self.form_fields, self.config, id="config-form"),
                "pane-loss": LossPane(LossWithSamples(id="loss-box"), id="loss-pane"),
                "pane-memory": MemoryGauge(id="memory-gauge"),
                "pane-data": DatasetBrowser(id="dataset"),
                "pane-chat": ChatPane(id="chat"),
            }
            focus = {"pane-data": "#ds-table", "pane-chat": "#chat-input"}
            for i, (pane_id, title) in enumerate(PANES, start=1):
                yield Pane(
                    children[pane_id], id=pane_id, title=f"{i} {title}", focus=focus.get(pane_id)
                )
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._apply_layout(self.size.width, self.size.height)
        self._select_pane(0, focus=False)
        self.query_one("#pane-config", Pane).focus()
        self.query_one(StatusLine).show(self.status)
        if self.requested_theme and self.requested_theme not in self.available_themes:
            names = ", ".join(sorted(self.available_themes))
            self.notify(
                f"no theme named '{self.requested_theme}'; available: {names}",
                title="Theme not found",
                severity="warning",
                timeout=10,
            )
        for error in self.theme_errors:
            self.notify(str(error), title="Theme file skipped", severity="warning", timeout=10)
        self.query_one(DatasetBrowser).set_data_dir(default_data_dir(self.config))
        self._refresh_suggestions()
        self.cockpit_mount()
        try:
            self.engine = self.engine_factory(self.bridge)
            self.engine.start()
        except Exception as exc:
            self.engine = None
            self.push_screen(
                ErrorModal("The MLX engine did not start", str(exc), "run `mlxtui doctor`")
            )
            return
        self.workbench_mount()
        self._load_model()

    def on_unmount(self) -> None:
        if self.engine is not None:
            try:
                self.engine.shutdown()
            except Exception as exc:  # quitting must always work
                self.log.error(f"engine shutdown failed: {exc}")

    def on_resize(self, event: Resize) -> None:
        self._apply_layout(event.size.width, event.size.height)

    def _apply_layout(self, width: int, height: int) -> None:
        self.compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        self.screen.set_class(self.compact, "-compact")
        self._draw_tabbar()

    def _draw_tabbar(self) -> None:
        from rich.text import Text

        bar = Text()
        for i, (_pane, title) in enumerate(PANES):
            style = "reverse bold" if i == self.active_pane else ""
            bar.append(f" {i + 1} {title} ", style=style)
            bar.append(" ")
        self.query_one("#tabbar", Static).update(bar)

    def _select_pane(self, index: int, focus: bool = True) -> None:
        self.active_pane = index
        for i, (pane_id, _title) in enumerate(PANES):
            self.query_one(f"#{pane_id}", Pane).set_class(i == index, "-active")
        self._draw_tabbar()
        if focus:
            # After the refresh, so a pane just made visible can take focus.
            self.call_after_refresh(self.query_one(f"#{PANES[index][0]}", Pane).focus_inside)

    def on_descendant_focus(self, event: Any) -> None:
        # Track the pane the focus went to, so its border (and tab) light up.
        node = event.widget
        while node is not None and not isinstance(node, Pane):
            node = node.parent
        if isinstance(node, Pane):
            index = next(i for i, (pid, _t) in enumerate(PANES) if pid == node.id)
            if index != self.active_pane:
                self._select_pane(index, focus=False)

    # ------------------------------------------------------------ engine events

    @on(EventsPending)
    def _drain_events(self) -> None:
        events = self.bridge.drain()
        for event in events:
            self.events_seen += 1
            try:
                new_status = apply_event(self.status, event)
                status_text(new_status)  # a malformed field fails here, not in the status line
                self.status = new_status
                self._handle(event)
            except Exception as exc:  # a bad event is logged, never fatal
                self.log.error(f"cannot show {type(event).__name__}: {exc!r}")
                self.notify(
                    f"{type(event).__name__}: {exc}", title="Display error", severity="error"
                )
        if events:
            self.query_one(StatusLine).show(self.status)

    def _handle(self, event: ev.Event) -> None:
        if self.cockpit_event(event):
            return
        self.workbench_event(event)
        if isinstance(event, ev.TrainStep):
            self._saw_steps = True
            self.query_one(LossPlot).add_train(event.iteration, event.loss)
        elif isinstance(event, ev.MemorySampled):
            gauge = self.query_one(MemoryGauge)
            gauge.update_sample(event.sample)
            pane = self.query_one("#pane-memory", Pane)
            for level in ("yellow", "red"):
                pane.set_class(gauge.pressure == level, f"-pressure-{level}")
        elif isinstance(event, ev.GenerationToken):
            self.query_one(ChatPane).add_token(event.text, event.slot)
        elif isinstance(event, ev.GenerationDone):
            note = f"{event.generation_tokens} tokens, {event.generation_tps:.1f} tok/s"
            self.query_one(ChatPane).finish(event.text, event.slot, event.stopped, note)
        elif isinstance(event, ev.TrainReport):
            if not self._saw_steps:  # an engine that only reports means still gets a curve
                self.query_one(LossPlot).add_train(event.iteration, event.train_loss)
        elif isinstance(event, ev.ValReport):
            self.query_one(LossPlot).add_val(event.iteration, event.val_loss)
        elif isinstance(event, ev.TrainStarted):
            plot = self.query_one(LossPlot)
            plot.reset()
            if event.start_iter > 0:  # a resumed run: its curve so far, from metrics.jsonl
                plot.load_history(event.run_dir, event.start_iter)
            self.query_one(ConfigForm).disabled = True
        elif isinstance(event, ev.TrainPaused):
            if event.reason != "user":
                self.notify(
                    event.message or f"paused: {event.reason}",
                    title="Training paused (p continues)",
                    severity="warning",
                    timeout=15,
                )
        elif isinstance(event, ev.TrainFinished):
            if self._quit_when_stopped:
                self.exit(0)
                return
            self.query_one(ConfigForm).disabled = False
            best = (
                f"; best val {event.best_val_loss:.3f} at it {event.best_iteration}"
                if event.best_val_loss is not None
                else ""
            )
            self.notify(
                f"{event.status} at iteration {event.final_iteration}{best}\n{event.adapter_path}",
                title="Training finished",
                severity="error" if event.status == "failed" else "information",
                timeout=10,
            )
        elif isinstance(event, ev.ModelLoaded):
            self.model_info = event
            self._refresh_suggestions()
            self._update_tokenizer()
        elif isinstance(event, ev.MemoryAlert):
            advice = "\n".join(f"• {s}" for s in event.suggestions)
            self.notify(
                event.message + ("\n" + advice if advice else ""),
                title=f"Memory pressure {event.level}",
                severity="error" if event.level == "red" else "warning",
                timeout=15,
            )
        elif isinstance(event, ev.JobFailed):
            self._job_failed(event)
        elif isinstance(event, ev.Log):
            if event.level in ("warning", "error"):
                self.notify(event.message, severity=event.level)  # type: ignore[arg-type]
            else:
                self.log.info(event.message)
        elif isinstance(event, ev.CheckpointSaved):
            self.log.info(f"checkpoint ({event.kind}) at {event.iteration}: {event.path}")

    def _job_failed(self, event: ev.JobFailed) -> None:
        kind = event.kind.lower()
        if "gen" in kind or "compare" in kind:
            self.query_one(ChatPane).fail(event.message)
        if "train" in kind:
            if self._quit_when_stopped:
                self.exit(1)
                return
            self.query_one(ConfigForm).disabled = False
        title = JOB_TITLES.get(event.kind, event.kind.capitalize())
        self.push_screen(ErrorModal(f"{title} failed", event.message, event.hint))

    def _refresh_suggestions(self) -> None:
        form = self.query_one(ConfigForm)
        info = self.model_info
        bits = (info.source_quantization_bits or info.quantization_bits) if info else None
        params = info.num_parameters if info else None
        browser = self.query_one(DatasetBrowser)
        n_train = (
            len(browser.index)
            if browser.index is not None and browser.split == "train" and browser.index.is_complete
            else None
        )
        try:
            form.show_suggestions(suggestions(form.config, bits, n_train, params))
        except Exception as exc:
            self.log.warning(f"no suggestions: {exc!r}")

    def _update_tokenizer(self) -> None:
        tokenizer = getattr(self.engine, "tokenizer", None)
        if tokenizer is not None:
            form = self.query_one(ConfigForm)
            self.query_one(DatasetBrowser).set_tokenizer(tokenizer, form.config.mask_prompt)

    def _load_model(self) -> None:
        from mlxtui.core.engine import LoadModel

        self.status = apply_event(self.status, ev.JobStarted(0, "load", "loading model…"))
        self.query_one(StatusLine).show(self.status)
        self.engine.submit(
            LoadModel(self.config.model, dequantize=_dequantize_flag(self.config.dequantize))
        )

    # ------------------------------------------------------------ widget messages

    @on(ConfigForm.Changed)
    def _config_changed(self, event: ConfigForm.Changed) -> None:
        self._refresh_suggestions()
        self.cockpit_config_changed(event.name)
        if event.name == "mask_prompt":
            self._update_tokenizer()

    @on(ChatPane.Send)
    def _chat_send(self, event: ChatPane.Send) -> None:
        self.send_chat(event)

    @on(ChatPane.StopRequested)
    def _chat_stop(self) -> None:
        if self.query_one(ChatPane).generating:
            if self.engine is not None:
                self.engine.cancel_generation()
        else:
            self.action_leave_field()

    # ------------------------------------------------------------ actions

    def action_leave_field(self) -> None:
        """Move focus from a field to its pane, so single-letter keys act again."""
        self.query_one(f"#{PANES[self.active_pane][0]}", Pane).focus()

    def action_show_pane(self, index: int) -> None:
        self._select_pane(index)

    def action_train(self) -> None:
        if self.engine is None:
            self.notify("The engine is not running.", severity="error")
            return
        if self.status.busy_training:
            self.notify("Training is already running (p pauses, s stops).", severity="warning")
            return
        form = self.query_one(ConfigForm)
        if form.errors:
            fields = "\n".join(f"{form.label_of(name)}: {msg}" for name, msg in form.errors.items())
            self.notify(f"Fix these first:\n{fields}", title="Cannot train", severity="error")
            self._select_pane(0, focus=False)
            # Into the first refused field, so the user can type the fix at once.
            self.call_after_refresh(form.focus_field, next(iter(form.errors)))
            return
        self.status = Status(state="training", model=self.status.model, message="checking the dataset…")
        self.query_one(StatusLine).show(self.status)
        self._check_data_then_train(form.config)

    @work(thread=True, exclusive=True, group="pre-train", exit_on_error=False)
    def _check_data_then_train(self, config: TrainConfig) -> None:
        """Validate the data (plain Python, off the UI thread); warnings are for the user to accept."""
        from mlxtui.core.data import keys_from, validate_dataset

        data_dir = default_data_dir(config)
        report = None
        if data_dir is not None and data_dir.is_dir():
            try:
                report = validate_dataset(
                    data_dir,
                    tokenizer=None,
                    max_seq_length=config.max_seq_length,
                    keys=keys_from(config),
                    batch_size=config.batch_size,
                )
            except Exception:  # noqa: BLE001 - the engine validates again and reports
                report = None
        self.call_from_thread(self._after_data_check, config, data_dir, report)

    def _after_data_check(self, config: TrainConfig, data_dir: Path | None, report: Any) -> None:
        # Errors go on to the engine, which refuses with the file:line list in one place.
        warnings = list(report.warnings) if report is not None and not report.errors else []
        key = str(data_dir)
        if not warnings or key in self._accepted_warnings:
            self._submit_train(config)
            return
        shown = "\n".join(f.format() for f in warnings[:6])
        more = f"\n… and {len(warnings) - 6} more (v lists them all)" if len(warnings) > 6 else ""
        question = f"The dataset has {len(warnings)} warning(s):\n{shown}{more}\n\nTrain anyway?"

        def answered(yes: bool | None) -> None:
            if yes:
                self._accepted_warnings.add(key)
                self._submit_train(config)
            else:
                self.status = Status(state="idle", model=self.status.model, message="training not started")
                self.query_one(StatusLine).show(self.status)

        self.push_screen(ConfirmScreen(question), answered)

    def _submit_train(self, config: TrainConfig) -> None:
        from mlxtui.core.engine import Train

        self._saw_steps = False
        self.engine.submit(Train(config))
        self.status = Status(state="training", model=self.status.model, message="starting…")
        self.query_one(StatusLine).show(self.status)

    def action_pause(self) -> None:
        if self.status.state == "training":
            self.engine.pause()
            self.notify("Pausing at the next step (p continues).")
        elif self.status.state == "paused":
            self.engine.resume()
        else:
            self.notify("Nothing is training.", severity="warning")

    def action_stop(self) -> None:
        if self.status.state in ("training", "paused"):
            self.engine.stop()
            self.status = replace(self.status, state="stopping")
            self.query_one(StatusLine).show(self.status)
            self.notify("Stopping at the next step; the adapter will be saved.")
        else:
            self.notify("Nothing is training.", severity="warning")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(HELP_KEYS))

    async def action_quit(self) -> None:
        if not self.status.busy_training or self._quit_when_stopped:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if self.engine is None:
                self.exit(0)
                return
            # Quit once the engine has saved the adapter: leaving mid-step would lose the step
            # and kill the MLX thread inside a computation.
            self._quit_when_stopped = True
            self.engine.stop()
            self.status = replace(self.status, state="stopping")
            self.query_one(StatusLine).show(self.status)
            self.notify(
                "Stopping: the adapter is saved after this step, then mlxtui quits. "
                "Press q again to quit at once.",
                title="Quitting",
                timeout=30,
            )

        self.push_screen(
            ConfirmScreen("Training is running. Stop it (the adapter is saved) and quit?"),
            answered,
        )
