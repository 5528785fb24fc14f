"""The app's runs across ranks: start one through mlx.launch, show its ranks, stop it.

A mixin for `MlxtuiApp`, as cockpit.py and workbench.py are. When the settings ask for several
ranks (nproc > 1 or a host file), `launch_train` starts a `LaunchedTrain`
(core/jobs/launched.py): rank 0's events come back through the app's EventBridge as an
in-process training's do, so the loss plot, status line, samples and error modals work as
they are. What is new here is the rank table under the loss plot, the stop that reaches every
rank, and a pause that is refused with the reason. app.py routes `t`, `p`, `s`, quitting and
RankReport messages here (`@on` handlers in a plain mixin would be ignored by Textual).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.runs import ADAPTER_FILE
from mlxtui.tui.rank_table import RankTable
from mlxtui.tui.status import STOPPING_MESSAGE, Status


class LaunchMixin:
    """Mixed into `MlxtuiApp` (an `App`): everything here runs on the UI thread."""

    # Provided by MlxtuiApp / App.
    bridge: Any
    status: Any
    query: Any
    query_one: Any
    notify: Any
    show_status: Any
    submit_job: Any
    set_interval: Any
    _saw_steps: bool

    launched: Any = None  # the LaunchedTrain of the last run across ranks
    launch_command: list[str] | None = None  # instead of mlx.launch's (tests stand a script in)
    _rank_timer: Any = None

    def launch_train(self, config: TrainConfig, message: str = "launching the ranks…") -> bool:
        """Start `config` across ranks if it asks for them; False (nothing done) otherwise."""
        from mlxtui.core.jobs import FreeModel
        from mlxtui.core.jobs.launched import LaunchedTrain, wants_launch

        if not wants_launch(config):
            self._drop_rank_table()  # an in-process run has no ranks to show
            return False
        run = LaunchedTrain(config, self.bridge, command=self.launch_command)
        tables = list(self.query(RankTable))
        if tables:  # the last run's table starts over (a removal would finish after a mount)
            tables[0].reset(run.world_size, config.backend)
        else:
            self.query_one("#pane-loss").mount(RankTable(run.world_size, config.backend))
        self.launched = run
        self._saw_steps = False
        run.start()
        # the ranks load their own copies: the dashboard's would only take memory meanwhile
        # (on the Mac that runs rank 0 too); a chat or an evaluation loads it again
        self.submit_job(FreeModel())
        self.show_status(Status(state="training", model=self.status.model, message=message))
        if self._rank_timer is None:
            self._rank_timer = self.set_interval(1.0, self._refresh_rank_beats)
        return True

    def launched_finished(self, finished: ev.TrainFinished) -> None:
        """Rank 0 saved `finished.adapter_path`: chat and evaluation answer with it (when it is
        on this machine; a host file's rank 0 may have saved it elsewhere)."""
        from mlxtui.core.jobs import UseAdapter

        run = self.launched
        if run is None or run.finished is not finished or not finished.adapter_path:
            return  # an in-process run: its train job left its adapter in the engine
        if (Path(finished.adapter_path) / ADAPTER_FILE).is_file():
            self.submit_job(UseAdapter(finished.adapter_path))

    def launched_running(self) -> bool:
        return self.launched is not None and bool(self.launched.running)

    def launched_pause(self) -> None:
        from mlxtui.core.jobs.launched import PAUSE_REFUSED

        self.notify(PAUSE_REFUSED, title="Cannot pause", severity="warning", timeout=15)

    def launched_stop(self) -> bool:
        """`s`: every rank stops after rank 0 has saved; again while stopping: end them now.
        False when no run across ranks is running (the engine's training, if any, is stopped
        by the caller)."""
        run = self.launched
        if run is None or not run.running:
            return False
        if run.stop_requested:
            run.kill()
            self.notify(
                "Ending every rank now; the last checkpoint rank 0 saved is kept.",
                severity="warning",
            )
            return True
        run.stop()
        self.show_status(replace(self.status, state="stopping", message=STOPPING_MESSAGE))
        self.notify(
            "Every rank stops at the next step; rank 0 saves the adapter (s again ends them now)."
        )
        return True

    def launched_shutdown(self, timeout: float) -> None:
        """Quitting: a run across ranks saves and ends with the dashboard, never orphaned."""
        run = self.launched
        if run is not None and run.running:
            run.shutdown(timeout)

    def rank_report(self, report: ev.RankReport) -> None:
        for table in self.query(RankTable):
            table.show_report(report)

    def _refresh_rank_beats(self) -> None:
        run = self.launched
        if run is not None and run.running:
            beats = run.ranks()
            for table in self.query(RankTable):
                table.show_beats(beats)
            return
        if self._rank_timer is not None:  # ended: the table keeps its last figures
            self._rank_timer.stop()
            self._rank_timer = None

    def _drop_rank_table(self) -> None:
        for table in self.query(RankTable):
            table.remove()
