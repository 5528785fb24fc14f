"""The status line while the dashboard's own model loads and a training has started.

`t` on a multi-rank config launches the ranks at once, while the dashboard's engine may still
be loading its own model; that load's events can be folded after rank 0's TrainStarted. They
must not turn the status to loading, idle or error while the ranks train.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.tui.status import Status, apply_event

sys.path.insert(0, str(Path(__file__).parent))

LOAD = (
    ev.JobStarted(7, "load", "loading model…"),
    ev.ModelLoaded("fake-model", "/m", 4, 10, None, "float32"),
    ev.JobFinished(7, "load", None),
)


def fold(status: Status, *events: ev.Event) -> Status:
    for event in events:
        status = apply_event(status, event)
    return status


def test_a_load_folded_after_a_trainings_start_leaves_it_training() -> None:
    started = ev.TrainStarted("runs/r", 400, 0, 1, 2, "lora", started_at=1.0, pid=1)
    training = fold(Status(state="training", message="launching the ranks…"), started)
    after = fold(training, *LOAD)
    assert (after.state, after.model, after.total_iters) == ("training", "fake-model", 400)
    # a failed load of the dashboard's model says so (its modal too), the training goes on
    failed = fold(training, LOAD[0], ev.JobFailed(7, "load", "no such model", "check the path"))
    assert failed.state == "training" and "no such model" in failed.message
    for state in ("paused", "stopping"):
        assert fold(Status(state=state), *LOAD).state == state


def test_without_a_training_a_load_still_shows_loading_then_idle_or_error() -> None:
    loading = fold(Status(), LOAD[0])
    assert (loading.state, loading.message) == ("loading", "loading model…")
    assert fold(loading, *LOAD[1:]) == Status(state="idle", model="fake-model")
    after_run = fold(Status(state="done", outcome="stopped"), LOAD[0])
    assert after_run.state == "loading"
    failed = fold(loading, ev.JobFailed(7, "load", "no such model", "check the path"))
    assert failed.state == "error"


async def test_t_before_the_dashboards_model_loaded_keeps_training_shown(tmp_path: Path) -> None:
    """The race as it happened: `t` on a multi-rank config while the dashboard's load had not
    yet begun on the engine thread; its start and end came after the ranks' first step."""
    from test_distributed_dashboard import _stand_in, _wait
    from test_tui_fakes import FakeEngine

    from mlxtui.core.distributed import EVENT_PREFIX
    from mlxtui.core.event_wire import encode
    from mlxtui.tui.app import MlxtuiApp

    class LateLoad(FakeEngine):
        """The fake engine, holding a model load before its JobStarted until `begin` is set."""

        def __init__(self, on_event: Any) -> None:
            super().__init__(on_event)
            self.begin = threading.Event()

        def _run(self, job_id: int, job: Any) -> None:
            if type(job).__name__ == "LoadModel":
                self.begin.wait(60)
            super()._run(job_id, job)

    box: dict[str, LateLoad] = {}

    def factory(on_event: Any) -> LateLoad:
        box["engine"] = LateLoad(on_event)
        return box["engine"]

    finished = ev.TrainFinished("runs/r", "runs/r/adapters", 1, 400, "stopped")
    ranks_wait_for_stop = (
        "if sys.stdin.readline().strip() == 'stop':\n"
        f"    print({EVENT_PREFIX + encode(finished)!r}, flush=True)\n"
    )
    app = MlxtuiApp(TrainConfig.quick_start(nproc=2, backend="ring"), engine_factory=factory)
    app.launch_command = _stand_in(tmp_path, ranks_wait_for_stop)
    async with app.run_test(size=(140, 44)) as pilot:
        engine = box["engine"]
        assert await _wait(
            pilot, lambda: any(type(j).__name__ == "LoadModel" for j in engine.jobs), 20
        )
        assert app.status.state == "loading" and not app.status.model
        await pilot.press("t")
        assert await _wait(pilot, lambda: app.status.iteration == 1, 40), app.status
        assert app.status.state == "training"
        engine.begin.set()  # the dashboard's load starts and ends now, after the ranks' step
        assert await _wait(pilot, lambda: app.status.model == "fake-model", 20), app.status
        deadline = time.monotonic() + 1.0  # and whatever the engine still sends
        while time.monotonic() < deadline:
            await pilot.pause(0.1)
            assert app.status.state == "training", app.status
        await pilot.press("s")
        assert await _wait(
            pilot, lambda: not app.launched.running and app.status.state == "done", 40
        ), app.status
        assert app.status.outcome == "stopped" and app.status.model == "fake-model"
