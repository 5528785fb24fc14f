"""The mlxtui dashboard: five panes on one screen around one MLX engine.

The engine runs every MLX call on its own thread and reports `mlxtui.core.events` through the
`EventBridge`, which posts them as typed messages (`mlxtui.tui.messages`); the `@on` handlers
here show them in the widgets, on the UI thread. Every job goes to the engine through
`submit_job`. Nothing here calls MLX.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from mlxtui.core import events as ev
from mlxtui.core.config import FORM_FIELDS, FieldSpec, TrainConfig, suggestions
from mlxtui.tui import messages as msg
from mlxtui.tui.cockpit import COCKPIT_BINDINGS, COCKPIT_HELP, CockpitMixin
from mlxtui.tui.data_folder import data_folder
from mlxtui.tui.errors import failure_text
from mlxtui.tui.hangup import HangupHandlers
from mlxtui.tui.heap import freeze_long_lived, thaw
from mlxtui.tui.launching import LaunchMixin
from mlxtui.tui.messages import EventBridge
from mlxtui.tui.restyle import restyle_alone, set_own_class
from mlxtui.tui.screens.modals import ConfirmScreen, ErrorModal, HelpScreen
from mlxtui.tui.screens.runs import RunsScreen
from mlxtui.tui.status import STOPPING_MESSAGE, Status, apply_event, status_text
from mlxtui.tui.themes import DEFAULT_THEME, discover_themes
from mlxtui.tui.widgets.chat import REMEMBERED, ChatPane
from mlxtui.tui.widgets.chat import SETTINGS as CHAT_SETTINGS
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.dataset_browser import DatasetBrowser
from mlxtui.tui.widgets.footer import Footer
from mlxtui.tui.widgets.loss_plot import LossPlot
from mlxtui.tui.widgets.lr_preview import LossPane
from mlxtui.tui.widgets.memory_estimate import EstimateView
from mlxtui.tui.widgets.memory_gauge import MemoryGauge
from mlxtui.tui.widgets.samples import LossWithSamples
from mlxtui.tui.widgets.status_line import StatusLine
from mlxtui.tui.workbench import WORKBENCH_BINDINGS, WORKBENCH_HELP, WorkbenchMixin

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

EngineFactory = Callable[[Callable[[ev.Event], None]], Any]

# (pane id, title) in key order: F1..F5 and 1..5 select them.
PANES = (
    ("pane-config", "Config"),
    ("pane-loss", "Loss"),
    ("pane-memory", "Memory"),
    ("pane-data", "Dataset"),
    ("pane-chat", "Chat"),
)
# Jobs a person asked for and waits on: while training runs they are queued behind it (say so).
WAITS_FOR_TRAINING = frozenset({"generate", "compare", "evaluate", "benchmark", "fuse", "export"})
# A committed Model field loads that model this long after the last commit (Enter, then leaving
# the field, commits twice).
MODEL_DEBOUNCE_S = 0.3
# The session (form, chat options, theme) is looked at this often and written once it has
# settled for one look: a burst of edits is one write (core/session_memory.SessionKeeper).
SESSION_TICK_S = 0.5
# How long quitting waits for the engine: a training's stop saves within one step; a load is
# only waited for up to its next safe point (the process then exits without it).
QUIT_WAIT = 10.0
QUIT_WAIT_LOADING = 1.0
LOAD_PHASES = frozenset({"load", "gguf_import", "adapters", "dequantize"})
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
    ("ctrl+r", "back to the quick-start settings (forgets the last session's)"),
    ("w", "sweep: run a sweep file's runs one after another; skip, reorder, stop; best → form"),
    ("?", "this help"),
    ("q / ctrl+q / ctrl+c", "quit (asks first while training; again: yes)"),
    ("ctrl+z", "suspend to the shell (fg continues; training halts meanwhile)"),
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


def _dequantize_flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _model_key(spec: str | None) -> str:
    """Specs naming the same model compare equal (empty and "demo" both mean the demo model)."""
    return "demo" if spec in (None, "", "demo") else str(spec).strip()


class Pane(Vertical):
    """A bordered pane; focusable so panes without inputs can still be selected by key."""

    can_focus = True

    def __init__(self, child: Widget, *, id: str, title: str, focus: str | None = None) -> None:
        super().__init__(child, id=id, classes="pane")
        self.title = title
        self.border_title = title
        self.focus_selector = focus

    def light(self, active: bool) -> None:
        """The active pane: its border in the theme's primary colour (`.pane.-active`) and its
        title in bold primary. The title is styled in its own text, not by a rule: Textual
        repaints every descendant of a node whose colour or text-style rules change (~290 in
        the Config pane), the border title's colour included."""
        set_own_class(self, active, "-active")
        self.border_title = Content.styled(self.title, "bold $primary") if active else self.title

    def watch_has_focus(self, _has_focus: bool) -> None:
        # `.pane:focus` styles the pane alone: not its descendants (~290 in the Config pane)
        restyle_alone(self)

    def _in_view(self) -> bool:
        # In the compact layout the other panes stand beside the shown one, off screen (app.tcss):
        # they stay out of the focus chain, so Tab keeps to the pane on screen.
        return not getattr(self.app, "compact", False) or self.has_class("-active")

    def allow_focus(self) -> bool:
        return self._in_view() and super().allow_focus()

    def allow_focus_children(self) -> bool:
        return self._in_view() and super().allow_focus_children()

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


class PaneRow(Container):
    """#panes. In the compact layout its panes stand in a row scrolled to the active one
    (app.tcss); when its size changes (the terminal's did) the scroll follows the new widths."""

    def on_resize(self, _event: Resize) -> None:
        show = getattr(self.app, "_show_active_pane", None)
        if show is not None:
            show()


class MlxtuiApp(LaunchMixin, CockpitMixin, WorkbenchMixin, App[int]):
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
        # Ctrl+C quits as q does, from every screen (Textual's default only says "press ^q");
        # a second Ctrl+C while it asks answers yes. Ctrl+Z suspends (SIGTSTP) where it can.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+z", "suspend", "Suspend", show=False, priority=True),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("ctrl+r", "quick_start_defaults", "Quick-start settings", show=False),
        *WORKBENCH_BINDINGS,
        *COCKPIT_BINDINGS,
        Binding("w", "sweep", "Sweep", show=False),
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
        # The last session's settings when the dashboard opens without flags (session_memory)
        self.session_notes: list[str] = []
        self.remembered = self._restore_session(restore_form=config is None, theme=theme)
        theme = theme or (self.remembered.theme if self.remembered else None)
        self.engine_factory = engine_factory or default_engine_factory
        self.engine: Any = None
        self.bridge = EventBridge(self)
        self.status = Status()
        self.model_info: ev.ModelLoaded | None = None
        self.active_pane = 0
        self.compact = False
        self._saw_steps = False
        self._quit_when_stopped = False
        self._quit_question: ConfirmScreen | None = None  # the "stop and quit?" modal, when open
        self._hangup = HangupHandlers()  # SIGHUP/SIGTERM handlers, while the app runs
        # set when quitting left the engine thread inside a native call (see on_unmount)
        self.engine_left_running = False
        self._accepted_warnings: set[str] = set()  # data folders whose warnings the user accepted
        # job id -> who submitted it (SubmitJob.reply_to), to get that job's messages
        self._replies: dict[int, MessagePump] = {}
        # The model the engine holds or is loading (a spec as typed; None/""/"demo": the demo).
        self._model_spec: str | None = self.config.model
        self._model_job: int | None = None  # the LoadModel job in flight, one at a time
        self._wanted_model: str | None = self.config.model
        self._model_timer: Any = None
        self.events_seen = 0
        self._status_line: StatusLine | None = None  # found in on_mount
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
        with PaneRow(id="panes"):
            children: dict[str, Widget] = {
                "pane-config": ConfigForm(self.form_fields, self.config, id="config-form"),
                "pane-loss": LossPane(LossWithSamples(id="loss-box"), id="loss-pane"),
                "pane-memory": MemoryGauge(id="memory-gauge"),
                "pane-data": DatasetBrowser(id="dataset"),
                "pane-chat": ChatPane(id="chat"),
            }
            # the memory figures scroll (the sparklines sit below the fold at 120x40): 3, then
            # the arrow and page keys, as in the dataset list
            focus = {"pane-memory": "#memory-gauge", "pane-data": "#ds-table", "pane-chat": "#chat-input"}
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
        self._status_line = self.query_one(StatusLine)
        self._status_line.show(self.status)
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
        self._refresh_suggestions()
        self._restore_widgets()
        self.cockpit_mount()
        # A running phase's elapsed seconds move on even when no event comes.
        self.set_interval(1.0, self._tick_phase)
        self._keep_session_from_now()
        # The engine's thread (importing MLX, loading the model) and the dataset indexer hold
        # the GIL much of the time: start them once the first frame is on screen, so the
        # dashboard appears at once (0.6 s sooner here, benchmarks/bench_first_frame.py).
        self.call_after_refresh(self._after_first_frame)
        try:
            self.engine = self.engine_factory(self.bridge)
        except Exception as exc:
            self._engine_failed(exc)
            return
        self.workbench_mount()
        self._load_model(self.config.model)  # queued until the engine's thread starts
        self.query_one(MemoryGauge).request_device_info()
        self._catch_hangup()

    def _catch_hangup(self) -> None:
        """SIGHUP (the SSH session closed) and SIGTERM stop a training at its next step, save the
        adapter and quit (mlxtui/tui/hangup.py); by default either ends the process mid-step."""
        import asyncio

        self._hangup.install(asyncio.get_running_loop(), self.hang_up, self._driver)

    def hang_up(self, signum: int = 1) -> None:
        """Nobody is there to answer a question: save what trains, then quit."""
        self.log.warning(f"signal {signum}: stopping (a training saves first)")
        if not self.status.busy_training or self.engine is None:
            self.exit(0)
            return
        self._stop_then_quit()

    @property
    def hangup_signals(self) -> list[int]:
        return self._hangup.signals

    def _stop_then_quit(self) -> None:
        # Quit once the engine has saved the adapter: leaving mid-step would lose the step
        # and kill the MLX thread inside a computation.
        self._quit_when_stopped = True
        if self.launched_running():  # a run across ranks: every rank stops, rank 0 saves
            self.launched_stop()
            return
        self.engine.stop()
        self.show_status(replace(self.status, state="stopping", message=STOPPING_MESSAGE))

    def _after_first_frame(self) -> None:
        freeze_long_lived()  # the widgets and imports: out of the collector's full passes
        self.query_one(DatasetBrowser).set_data_dir(data_folder(self.config))
        if self.engine is None:
            return
        try:
            self.engine.start()
        except Exception as exc:
            self._engine_failed(exc)

    def _engine_failed(self, exc: Exception) -> None:
        self.engine = None
        self.push_screen(
            ErrorModal("The MLX engine did not start", str(exc), "run `mlxtui doctor`")
        )

    def on_unmount(self) -> None:
        self._hangup.restore()
        thaw()
        self.launched_shutdown(QUIT_WAIT)
        if self.engine is None:
            return
        phase = self.status.phase
        loading = self.engine.current_job == "load" or (
            phase is not None and phase.key in LOAD_PHASES
        )
        try:
            # A training gets the time to save its adapter; a load has nothing to save, and
            # one native call of it (importing mlx_lm, reading the weights) cannot be cut.
            ended = self.engine.shutdown(timeout=QUIT_WAIT_LOADING if loading else QUIT_WAIT)
        except Exception as exc:  # quitting must always work
            self.log.error(f"engine shutdown failed: {exc}")
            return
        self.engine_left_running = ended is False

    def on_resize(self, event: Resize) -> None:
        self._apply_layout(event.size.width, event.size.height)

    def _apply_layout(self, width: int, height: int) -> None:
        self.compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        self.screen.set_class(self.compact, "-compact")
        self._draw_tabbar()
        # now, and again once laid out at the new size (PaneRow.on_resize)
        self._show_active_pane(width)

    def _show_active_pane(self, width: int | None = None) -> None:
        """Compact layout: scroll the row of panes (each as wide as the screen) to the active one.

        The panes that are not shown stay laid out beside it (app.tcss): showing one costs a
        repaint, where `display: none` cost a layout of the pane and a Hide, Show and Resize
        message to each of its widgets (~290 in the Config pane) on every key."""
        panes = self.query_one("#panes")
        if width is None:
            width = panes.size.width
        x = self.active_pane * width if self.compact else 0
        panes.scroll_to(x=x, animate=False, force=True, immediate=True)

    def _draw_tabbar(self) -> None:
        from rich.text import Text

        bar = Text()
        for i, (_pane, title) in enumerate(PANES):
            style = "reverse bold" if i == self.active_pane else ""
            bar.append(f" {i + 1} {title} ", style=style)
            bar.append(" ")
        self.query_one("#tabbar", Static).update(bar, layout=False)  # one row (app.tcss)

    def _select_pane(self, index: int, focus: bool = True) -> None:
        self.active_pane = index
        for i, (pane_id, _title) in enumerate(PANES):
            self.query_one(f"#{pane_id}", Pane).light(i == index)
        self._draw_tabbar()
        self._show_active_pane()
        if focus:
            # at once: every pane stays laid out, shown or not, so it can take focus now
            self.query_one(f"#{PANES[index][0]}", Pane).focus_inside()

    def on_descendant_focus(self, event: Any) -> None:
        # Track the pane the focus went to, so its border (and tab) light up.
        node = event.widget
        while node is not None and not isinstance(node, Pane):
            node = node.parent
        if isinstance(node, Pane):
            index = next(i for i, (pid, _t) in enumerate(PANES) if pid == node.id)
            if index != self.active_pane:
                self._select_pane(index, focus=False)

    # ------------------------------------------------------------ engine jobs

    def submit_job(self, job: Any, reply_to: MessagePump | None = None) -> int | None:
        """The one way to send `job` to the engine; `reply_to` also gets the job's messages
        (JobProgress, PhaseStarted/Progress/Finished, then JobFinished or JobFailed)."""
        if self.engine is None:
            self.notify("The engine is not running (see `mlxtui doctor`).", severity="error")
            return None
        if self.status.state in ("training", "stopping") and job.kind in WAITS_FOR_TRAINING:
            self.notify(
                "Training is running: this starts when it ends (press p to pause for chat).",
                severity="warning",
            )
        job_id = int(self.engine.submit(job))
        if reply_to is not None:
            self._replies[job_id] = reply_to
        return job_id

    @on(msg.SubmitJob)
    def _submit_requested(self, request: msg.SubmitJob) -> None:
        request.stop()
        self.submit_job(request.job, request.reply_to)

    def _reply(self, message: msg.EngineMessage, job_id: int, last: bool = False) -> bool:
        """Post the job's message to whoever submitted it; False when nobody asked."""
        target = self._replies.pop(job_id, None) if last else self._replies.get(job_id)
        if target is None:
            return False
        if target.is_attached:
            target.post_message(message.copy())
        return True

    # ------------------------------------------------------------ status line

    def show_status(self, status: Status) -> None:
        self.status = status
        # the engine's last events may come after the main screen is gone (quitting). The line
        # is found once: a query of the whole DOM on each engine message cost ~10% of the UI's time.
        line = self._status_line
        if line is not None and line.is_attached:
            line.show(status)

    def _tick_phase(self) -> None:
        if self.status.phases:
            self.show_status(self.status)

    async def _on_message(self, message: Message) -> None:
        # Engine events still in the queue when the app quits are dispatched after the screens
        # are gone (a ValReport then found no LossPlot and printed a traceback on exit): drop them.
        if isinstance(message, msg.EngineMessage) and not self.is_running:
            return
        await super()._on_message(message)

    @on(msg.EngineMessage)
    def _fold_status(self, message: msg.EngineMessage) -> None:
        # Runs after the kind's own handler (Textual calls a subclass's handlers first).
        events = message.events
        self.events_seen += len(events)
        status = self.status
        for event in events:
            try:
                new_status = apply_event(status, event)
                status_text(new_status)  # a malformed field fails here, not in the status line
                status = new_status
            except Exception as exc:  # a bad event is logged, never fatal
                self.log.error(f"cannot show {type(event).__name__}: {exc!r}")
                self.notify(
                    f"{type(event).__name__}: {exc}", title="Display error", severity="error"
                )
        self.show_status(status)

    # ------------------------------------------------------------ engine messages

    @on(msg.TrainStep)
    def _train_steps(self, message: msg.TrainStep) -> None:
        steps = message.events
        self._saw_steps = True
        plot, estimate = self.query_one(LossPlot), self.query_one(EstimateView)
        for step in steps:
            plot.add_train(step.iteration, step.loss)
            estimate.run_peak(step.peak_memory)
        norms = [step.grad_norm for step in steps if step.grad_norm is not None]
        self.query_one(LossPane).train_step(steps[-1], norms[-1] if norms else None)

    @on(msg.TrainReport)
    def _train_report(self, message: msg.TrainReport) -> None:
        report = message.event
        if not self._saw_steps:  # an engine that only reports means still gets a curve
            self.query_one(LossPlot).add_train(report.iteration, report.train_loss)
        self.query_one(EstimateView).run_peak(report.peak_memory)

    @on(msg.ValReport)
    def _val_report(self, message: msg.ValReport) -> None:
        self.query_one(LossPlot).add_val(message.event.iteration, message.event.val_loss)

    @on(msg.RankReport)
    def _rank_report(self, message: msg.RankReport) -> None:
        self.rank_report(message.event)

    @on(msg.Diagnosis)
    def _diagnosis(self, message: msg.Diagnosis) -> None:
        advice = message.event
        self.query_one(LossPane).show_diagnosis(advice)
        said = "Advice before the resume" if advice.earlier else "Training advice"
        self.notify(advice.message, title=f"{said}: {advice.kind}", severity="warning", timeout=20)

    @on(msg.MemorySampled)
    def _memory_sampled(self, message: msg.MemorySampled) -> None:
        gauge = self.query_one(MemoryGauge)
        for sampled in message.events:
            gauge.update_sample(sampled.sample, sampled.swap_growth_per_min)
        pane = self.query_one("#pane-memory", Pane)
        for level in ("yellow", "red"):
            pane.set_class(gauge.pressure == level, f"-pressure-{level}")

    @on(msg.GenerationToken)
    def _tokens(self, message: msg.GenerationToken) -> None:
        chat = self.query_one(ChatPane)
        for token in message.events:
            chat.add_token(token.text, token.slot)

    @on(msg.GenerationDone)
    def _reply_done(self, message: msg.GenerationDone) -> None:
        done = message.event
        note = f"{done.generation_tokens} tokens, {done.generation_tps:.1f} tok/s"
        self.query_one(ChatPane).finish(done.text, done.slot, done.stopped, note)

    @on(msg.TrainStarted)
    def _train_started(self, message: msg.TrainStarted) -> None:
        started = message.event
        plot = self.query_one(LossPlot)
        plot.reset()
        if started.start_iter > 0:  # a resumed run: its curve so far, from metrics.jsonl
            plot.load_history(started.run_dir, started.start_iter)
        self.query_one(ConfigForm).disabled = True
        self.query_one(LossPane).train_started()
        self.query_one(MemoryGauge).clear_alert()
        self.query_one(EstimateView).run_started(started.estimated_peak_bytes)
        self.samples.clear()
        self.samples_changed()

    @on(msg.SamplePredictions)
    def _sample_answers(self, message: msg.SamplePredictions) -> None:
        self.samples.record(message.event)
        self.samples_changed()

    @on(msg.TrainPaused)
    def _train_paused(self, message: msg.TrainPaused) -> None:
        paused = message.event
        if paused.reason == "memory":
            self.query_one(MemoryGauge).show_memory_pause(paused)
        elif paused.reason == "nan":
            self.query_one(LossPane).show_nan(paused)
        if paused.reason != "user":
            self.notify(
                paused.message or f"paused: {paused.reason}",
                title="Training paused (p continues)",
                severity="warning",
                timeout=15,
            )

    @on(msg.TrainResumed)
    def _train_resumed(self) -> None:
        self.query_one(MemoryGauge).clear_alert()
        self.query_one(LossPane).clear_banner()

    @on(msg.TrainFinished)
    def _train_finished(self, message: msg.TrainFinished) -> None:
        finished = message.event
        self.query_one(LossPane).clear_banner()
        self.query_one(LossPane).train_finished()
        self.query_one(EstimateView).run_finished()
        self.launched_finished(finished)
        self.training_finished()
        if self._quit_when_stopped:
            self.exit(0)
            return
        self.query_one(ConfigForm).disabled = False
        best = (
            f"; best val {finished.best_val_loss:.3f} at it {finished.best_iteration}"
            if finished.best_val_loss is not None
            else ""
        )
        self.notify(
            f"{finished.status} at iteration {finished.final_iteration}{best}\n"
            f"{finished.adapter_path}",
            title="Training finished",
            severity="error" if finished.status == "failed" else "information",
            timeout=10,
        )

    @on(msg.ModelLoaded)
    def _model_loaded(self, message: msg.ModelLoaded) -> None:
        self.model_info = message.event
        freeze_long_lived()  # mlx-lm's imports and the model's modules, loaded by now
        self._refresh_suggestions()
        self._update_tokenizer()
        self.query_one(ConfigForm).model_loaded()

    @on(msg.MemoryEstimated)
    def _estimated(self, message: msg.MemoryEstimated) -> None:
        # an estimate may land after the main screen is gone (quitting): nothing to show then
        for view in self.query(EstimateView):
            view.show_estimate(message.event)

    @on(msg.MemoryAlert)
    def _memory_alert(self, message: msg.MemoryAlert) -> None:
        alert = message.event
        self.query_one(MemoryGauge).show_memory_alert(alert)
        advice = "\n".join(f"• {s}" for s in alert.suggestions)
        self.notify(
            alert.message + ("\n" + advice if advice else ""),
            title=f"Memory pressure {alert.level}",
            severity="error" if alert.level == "red" else "warning",
            timeout=15,
        )

    @on(msg.JobProgress)
    @on(msg.PhaseStarted)
    @on(msg.PhaseProgress)
    @on(msg.PhaseFinished)
    def _job_update(
        self, message: msg.JobProgress | msg.PhaseStarted | msg.PhaseProgress | msg.PhaseFinished
    ) -> None:
        self._reply(message, message.event.job_id)

    @on(msg.JobFinished)
    def _job_finished(self, message: msg.JobFinished) -> None:
        finished = message.event
        self._model_job_ended(finished.job_id)
        if not self._reply(message, finished.job_id, last=True) and finished.kind in (
            "generate",
            "compare",
        ):
            self.close_open_replies()

    @on(msg.JobFailed)
    def _job_failed(self, message: msg.JobFailed) -> None:
        failed = message.event
        self._model_job_ended(failed.job_id)
        self._reply(message, failed.job_id, last=True)
        if failed.kind == "estimate":
            # Shown in the Config pane, under the field that caused it, not as a modal per key.
            self.query_one(EstimateView).show_error(failed.message)
            return
        kind = failed.kind.lower()
        if "gen" in kind or "compare" in kind:
            self.query_one(ChatPane).fail(failed.message)
        if "train" in kind:
            if self._quit_when_stopped:
                self.exit(1)
                return
            self.query_one(ConfigForm).disabled = False
        title = JOB_TITLES.get(failed.kind, failed.kind.capitalize())
        self.push_screen(ErrorModal(f"{title} failed", *failure_text(failed)))

    @on(msg.Log)
    def _engine_log(self, message: msg.Log) -> None:
        log = message.event
        if log.level in ("warning", "error"):
            self.notify(log.message, severity=log.level)  # type: ignore[arg-type]
        else:
            self.log.info(log.message)

    @on(msg.CheckpointSaved)
    def _checkpoint(self, message: msg.CheckpointSaved) -> None:
        saved = message.event
        self.log.info(f"checkpoint ({saved.kind}) at {saved.iteration}: {saved.path}")

    @on(msg.OtherEvent)
    def _unknown_event(self, message: msg.OtherEvent) -> None:
        self.log.info(f"engine event not shown: {message.event!r}")

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

    def _load_model(self, spec: str | None) -> None:
        from mlxtui.core.engine import LoadModel

        self.show_status(apply_event(self.status, ev.JobStarted(0, "load", "loading model…")))
        dequantize = _dequantize_flag(self.query_one(ConfigForm).config.dequantize)
        self._model_spec = spec
        self._model_job = self.submit_job(LoadModel(spec, dequantize=dequantize))

    def _want_model(self, spec: str | None) -> None:
        """Load `spec` unless the engine holds it or loads it; a load in flight finishes first."""
        self._wanted_model = spec
        if self._model_job is None and _model_key(spec) != _model_key(self._model_spec):
            self._load_model(spec)

    def training_loads(self, config: TrainConfig) -> None:
        """A train job loads the model it trains: the engine holds that one afterwards."""
        self._model_spec = self._wanted_model = config.model

    def _model_job_ended(self, job_id: int) -> None:
        if job_id == self._model_job:
            self._model_job = None
            self._want_model(self._wanted_model)  # the field may have changed meanwhile

    # ------------------------------------------------------------ widget messages

    @on(ConfigForm.Changed)
    def _config_changed(self, event: ConfigForm.Changed) -> None:
        self._refresh_suggestions()
        self.cockpit_config_changed(event.name)
        if event.name == "mask_prompt":
            self._update_tokenizer()

    @on(ConfigForm.Committed)
    def _field_committed(self, event: ConfigForm.Committed) -> None:
        # The estimate, the chat and the next run use the model the field names: load it.
        if event.name != "model" or self.engine is None or self.status.busy_training:
            return  # a run loads the model it trains itself
        if self._model_timer is not None:
            self._model_timer.stop()
        spec = event.value
        self._model_timer = self.set_timer(MODEL_DEBOUNCE_S, lambda: self._want_model(spec))

    @on(DatasetBrowser.Indexed)
    def _dataset_indexed(self) -> None:
        # The training set's size shapes the iteration hints and an epochs-long schedule.
        self._refresh_suggestions()
        self.refresh_schedule()

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
        self.show_status(
            Status(state="training", model=self.status.model, message="checking the dataset…")
        )
        self._check_data_then_train(form.config)

    @work(thread=True, exclusive=True, group="pre-train", exit_on_error=False)
    def _check_data_then_train(self, config: TrainConfig) -> None:
        """Validate the data (plain Python, off the UI thread); warnings are for the user to accept."""
        from mlxtui.core.data import keys_from, validate_dataset

        data_dir = data_folder(config)
        report = None
        if data_dir.is_dir():
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

    def _after_data_check(self, config: TrainConfig, data_dir: Path, report: Any) -> None:
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
                self.show_status(
                    Status(state="idle", model=self.status.model, message="training not started")
                )

        self.push_screen(ConfirmScreen(question), answered)

    def _submit_train(self, config: TrainConfig) -> None:
        from mlxtui.core.engine import Train

        if self.launch_train(config):  # nproc > 1 or a host file: ranks through mlx.launch
            return
        self._saw_steps = False
        self.training_loads(config)
        self.submit_job(Train(config))
        self.show_status(Status(state="training", model=self.status.model, message="starting…"))

    def action_pause(self) -> None:
        if self.launched_running():
            self.launched_pause()
            return
        if self.status.state == "training":
            self.engine.pause()
            self.notify("Pausing at the next step (p continues).")
        elif self.status.state == "paused":
            self.engine.resume()
        else:
            self.notify("Nothing is training.", severity="warning")

    def action_stop(self) -> None:
        if self.launched_stop():
            return
        if self.status.state in ("training", "paused"):
            self.engine.stop()
            self.show_status(replace(self.status, state="stopping", message=STOPPING_MESSAGE))
            self.notify("Stopping at the next step; the adapter will be saved.")
        else:
            self.notify("Nothing is training.", severity="warning")

    def action_sweep(self) -> None:
        from mlxtui.tui.screens.sweep import open_sweep_screen

        open_sweep_screen(self)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(HELP_KEYS))

    def action_suspend(self) -> None:
        """Ctrl+Z: the shell's job control (fg continues); a training halts with the process."""
        driver = self._driver
        if driver is None or not driver.can_suspend:
            self.notify(
                "This terminal cannot suspend mlxtui (no job control); q quits.",
                title="Ctrl+Z",
                severity="warning",
            )
            return
        self.action_suspend_process()

    async def action_quit(self) -> None:
        if self._quit_question is not None and self.screen is self._quit_question:
            self._quit_question.dismiss(True)  # q or Ctrl+C again while asked: yes
            return
        if not self.status.busy_training or self._quit_when_stopped:
            self.exit(0)
            return

        def answered(yes: bool | None) -> None:
            self._quit_question = None
            if not yes:
                return
            if self.engine is None:
                self.exit(0)
                return
            self._stop_then_quit()
            self.notify(
                "Stopping: the adapter is saved after this step, then mlxtui quits. "
                "Press q again to quit at once.",
                title="Quitting",
                timeout=30,
            )

        self._quit_question = ConfirmScreen(
            "Training is running. Stop it (the adapter is saved) and quit?"
        )
        self.push_screen(self._quit_question, answered)

    # ------------------------------------------------------------ the session remembered

    def _restore_session(self, restore_form: bool, theme: str | None) -> Any:
        """Read the last session; its form values replace the quick-start ones when no flags
        were given. Refused values and a damaged file become notes shown once mounted."""
        from mlxtui.core.session_memory import apply_form, load_session

        session, problem = load_session()
        if problem:
            self.session_notes.append(problem)
        if session is None:
            return None
        if restore_form and session.form:
            names = {spec.name for spec in self.form_fields}
            wanted = {k: v for k, v in session.form.items() if k in names}
            self.config, rejected = apply_form(self.config, wanted)
            for name, why in rejected.items():
                self.session_notes.append(f"{name}: the remembered value was not used ({why})")
        return session

    def _restore_widgets(self) -> None:
        for note in self.session_notes:
            # after the first frame: a notification posted during mount is not kept
            self.call_after_refresh(self.notify, note, title="Last session", severity="warning", timeout=10)
        session = self.remembered
        if session is None:
            return
        chat = self.query_one(ChatPane)
        for key, input_id in REMEMBERED:
            if key in session.chat:
                chat.query_one(input_id).value = session.chat[key]  # type: ignore[attr-defined]
        weights = session.chat.get("weights")
        if weights in ("adapter", "base", "compare") or (weights and Path(weights).is_file()):
            chat.select_weights(weights, session.chat.get("weights_label"))
        if session.dataset_split in ("train", "valid", "test"):
            self.query_one(DatasetBrowser).split = session.dataset_split

    def session_now(self) -> Any:
        """This session's settings as they are on screen."""
        from mlxtui.core.session_memory import Session

        chat = self.query_one(ChatPane)
        values = {
            key: chat.query_one(input_id).value  # type: ignore[attr-defined]
            for key, input_id in REMEMBERED
        }
        values |= {"weights": chat.weights, "weights_label": chat.weights_label()}
        return Session(
            form=self.query_one(ConfigForm).values_text(),
            chat=values,
            theme=self.theme,
            dataset_split=self.query_one(DatasetBrowser).split,
        )

    def _keep_session_from_now(self) -> None:
        """Save the session soon after it changes, not only at quit: a killed dashboard keeps it."""
        from mlxtui.core.session_memory import SessionKeeper

        self.session_keeper = SessionKeeper(self.remembered)
        self.set_interval(SESSION_TICK_S, self._keep_session)

    def _keep_session(self) -> None:
        if not self.screen_stack:
            return  # quitting: the screens are gone before the last timers stop
        if self.screen is not self.screen_stack[0]:
            return  # a tool screen or a question is up: the main screen's widgets wait for it
        try:
            self.session_keeper.offer(self.session_now())
        except Exception as exc:  # noqa: BLE001 - the session must never stop the dashboard
            self.log.warning(f"session not saved: {exc!r}")

    def save_session(self) -> None:
        from mlxtui.core.session_memory import save_session

        try:
            save_session(self.session_now())
        except Exception as exc:  # noqa: BLE001 - quitting must always work
            self.log.warning(f"session not saved: {exc!r}")

    def exit(self, result: Any = None, return_code: int = 0, message: Any = None) -> None:
        # Every way out (q, ctrl+q, ctrl+c, the quit after a stop) passes here: keep the session.
        if self.is_running and self.screen_stack:
            self.save_session()
        super().exit(result, return_code, message)

    def action_quick_start_defaults(self) -> None:
        def answered(yes: bool | None) -> None:
            if not yes:
                return
            self.session_keeper.forget()
            self.remembered = None
            self.query_one(ConfigForm).load_config(TrainConfig.quick_start())
            chat = self.query_one(ChatPane)
            chat.query_one("#chat-system").value = ""  # type: ignore[attr-defined]
            for input_id, _label, default, _validator, _what in CHAT_SETTINGS:
                chat.query_one(f"#{input_id}").value = default  # type: ignore[attr-defined]
            chat.select_weights("adapter")
            if DEFAULT_THEME in self.available_themes:
                self.theme = DEFAULT_THEME
            self.notify("Back to the quick-start settings.")

        self.push_screen(
            ConfirmScreen(
                "Go back to the quick-start settings? The form, the chat options and the theme "
                "are reset (runs and data are untouched)."
            ),
            answered,
        )

    def get_system_commands(self, screen: Any) -> Any:
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Quick-start settings",
            "Go back to the quick-start defaults (forget the last session's settings)",
            self.action_quick_start_defaults,
        )
        yield SystemCommand("Runs", "The run history: open, compare, rename, delete runs", self.action_runs)

    # ------------------------------------------------------------ from the runs screen

    @on(RunsScreen.LoadSettings)
    def _load_run_settings(self, message: RunsScreen.LoadSettings) -> None:
        message.stop()
        self._close_tools()
        self.query_one(ConfigForm).load_config(message.config)
        self._select_pane(0, focus=False)
        self.notify(f"settings of {message.run_path.name} loaded: t trains a new run with them")

    @on(RunsScreen.ExportAdapter)
    def _export_run_adapter(self, message: RunsScreen.ExportAdapter) -> None:
        from textual.widgets import Input

        message.stop()
        self.action_export()
        screen = self._tool_screens.get("export")
        if screen is None:
            return
        screen.adapter = str(message.adapter)  # type: ignore[attr-defined]
        if screen.is_mounted:
            screen.query_one("#ex-adapter", Input).value = str(message.adapter)
