"""The app's after-training tools: chat jobs, sample answers, evaluate, export and runs screens.

A mixin for `MlxtuiApp`, kept apart from app.py so the main screen's code stays short: app.py
adds `WORKBENCH_BINDINGS`/`WORKBENCH_HELP`, calls `workbench_init()` in `__init__` and
`workbench_mount()` in `on_mount`; its engine-message handlers call `samples_changed`,
`training_finished` and `close_open_replies` here. Screens get the app's `submit_job`, which
posts that job's progress, result and failure back to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.screen import Screen

from mlxtui.core.config import TrainConfig
from mlxtui.tui.status import Status
from mlxtui.tui.widgets.chat import ChatPane, short_label
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.samples import LossWithSamples, SampleHistory, SamplesScreen

WORKBENCH_BINDINGS = [
    Binding("a", "samples", "Answers"),
    Binding("e", "evaluate", "Evaluate"),
    Binding("x", "export", "Export"),
    Binding("r", "runs", "Runs"),
]

WORKBENCH_HELP = [
    ("a", "sample answers to held-out prompts (updated at each evaluation)"),
    ("e", "evaluate: test loss, base vs adapter answers (ROUGE-L), benchmark"),
    ("x", "export: fuse, GGUF, upload to Hugging Face"),
    ("r", "runs: history; chat with a run's adapter; continue a run"),
    ("ctrl+l (chat)", "new conversation"),
    ("ctrl+y (chat)", "copy the last reply (OSC 52)"),
    ("weights (chat)", "adapter, base, A/B side by side, or any run checkpoint"),
]

CHAT_PANE_INDEX = 4


class WorkbenchMixin:
    """Mixed into `MlxtuiApp` (an `App`): everything here runs on the UI thread."""

    # Provided by MlxtuiApp / App.
    engine: Any
    status: Any
    query_one: Any
    notify: Any
    push_screen: Any
    pop_screen: Any
    screen: Any
    screen_stack: Any
    submit_job: Any
    show_status: Any
    training_loads: Any
    launch_train: Any

    def workbench_init(self) -> None:
        self.samples = SampleHistory()
        self._tool_screens: dict[str, Screen[Any]] = {}

    def workbench_mount(self) -> None:
        self.refresh_adapter_choices()

    # ------------------------------------------------------------ config and adapters

    def form_config(self) -> TrainConfig:
        return self.query_one(ConfigForm).config  # type: ignore[no-any-return]

    def refresh_adapter_choices(self) -> None:
        from mlxtui.core.runs import adapter_choices

        try:
            choices = adapter_choices(self.form_config().runs_dir)
        except OSError as e:  # an unreadable runs folder must not break the chat
            self.notify(f"cannot list adapters: {e}", severity="warning")
            return
        self.query_one(ChatPane).set_adapters(choices)

    # ------------------------------------------------------------ called by the app's handlers

    def samples_changed(self) -> None:
        self.query_one(LossWithSamples).show_samples(self.samples)
        screen = self._tool_screens.get("samples")
        if screen is not None and screen.is_mounted:
            screen.refresh_samples()  # type: ignore[attr-defined]

    def training_finished(self) -> None:
        self.refresh_adapter_choices()
        runs = self._tool_screens.get("runs")
        if runs is not None and runs.is_mounted:
            runs.action_reload()  # type: ignore[attr-defined]

    def close_open_replies(self) -> None:
        """A compare stopped after A never streams B: close what is still open."""
        chat = self.query_one(ChatPane)
        for slot in list(chat.streaming):
            chat.finish("", slot, stopped=True)

    def send_chat(self, message: ChatPane.Send) -> None:
        if self.engine is None:
            self.query_one(ChatPane).fail("the engine is not running")
            return
        self.submit_job(message.job())

    # ------------------------------------------------------------ screens

    def _open_tool(self, name: str, make: Callable[[], Screen[Any]]) -> Screen[Any]:
        screen = self._tool_screens.get(name)
        if screen is None:
            screen = make()
            self._tool_screens[name] = screen
            self.install_screen(screen, name=f"workbench-{name}")  # type: ignore[attr-defined]
        if self.screen is screen:
            return screen
        if self.screen in self._tool_screens.values():
            self.pop_screen()  # one tool screen at a time: switch, do not stack
        self.push_screen(screen)
        return screen

    def action_samples(self) -> None:
        screen = self._open_tool("samples", lambda: SamplesScreen(self.samples))
        if screen.is_mounted:
            screen.refresh_samples()  # type: ignore[attr-defined]

    def action_evaluate(self) -> None:
        from mlxtui.tui.screens.evaluate import EvaluateScreen

        data = self.form_config().data
        self._open_tool("evaluate", lambda: EvaluateScreen(self.submit_job, data))

    def action_export(self) -> None:
        from mlxtui.tui.screens.export import ExportScreen

        self._open_tool("export", lambda: ExportScreen(self.submit_job))

    def action_runs(self) -> None:
        from mlxtui.tui.screens.runs import RunsScreen

        runs_dir = self.form_config().runs_dir
        screen = self._open_tool(
            "runs", lambda: RunsScreen(runs_dir, self.use_adapter, self.resume_run)
        )
        if screen.is_mounted:
            screen.action_reload()  # type: ignore[attr-defined]

    def _close_tools(self) -> None:
        while self.screen in self._tool_screens.values():
            self.pop_screen()

    # ------------------------------------------------------------ actions from the runs screen

    def use_adapter(self, path: Path, label: str) -> None:
        """Answer in the chat with this adapter file (loaded in place by the next Generate)."""
        self._close_tools()
        self.refresh_adapter_choices()
        self.query_one(ChatPane).select_weights(str(path), label)
        self._select_pane(CHAT_PANE_INDEX)  # type: ignore[attr-defined]
        self.notify(f"chat answers with {short_label(label)}")

    def resume_config(self, run_path: Path) -> TrainConfig:
        """The run's own saved config (same shapes, schedule and data) set to resume that run."""
        from mlxtui.core.config import ConfigError, load_config

        try:
            config = load_config(run_path / "config.yaml")
        except (ConfigError, OSError, ValueError) as e:
            self.notify(
                f"{run_path / 'config.yaml'}: {e}; continuing with the Config pane's settings",
                severity="warning",
            )
            config = self.form_config()
        return config.with_values(resume_run=str(run_path))

    def resume_run(self, run_path: Path) -> bool:
        """Continue `run_path` where it stopped, as `mlxtui train --resume` does."""
        from mlxtui.core.engine import Train

        if self.engine is None:
            self.notify("The engine is not running.", severity="error")
            return False
        if self.status.busy_training:
            self.notify("Training is already running (p pauses, s stops).", severity="warning")
            return False
        config = self.resume_config(Path(run_path))
        self._close_tools()
        if self.launch_train(config, "resuming…"):  # a run across ranks resumes across them
            self.notify(f"continuing {Path(run_path).name} across its ranks")
            return True
        self._saw_steps = False
        self.training_loads(config)
        self.submit_job(Train(config))
        self.show_status(Status(state="training", model=self.status.model, message="resuming…"))
        self.notify(f"continuing {Path(run_path).name}")
        return True
