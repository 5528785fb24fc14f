"""Run one job on a fresh engine from the command line and wait for its result.

The CLI never calls MLX itself (DESIGN.md, the one-thread rule): it submits a job to the
engine's MLX thread, and the engine's events go to a printer. `run_job` submits one of the
engine's typed jobs (the same the dashboard submits: their phases print as progress lines);
`run_call` runs a core function that takes a `progress(message, done, total)` callback, whose
calls arrive as JobProgress events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlxtui.core import events as ev

Progress = Callable[[str, int, int], None]
EventSink = Callable[[ev.Event], None]


def run_job(job: Any, on_event: EventSink) -> Any:
    """Run `job` (a `mlxtui.core.jobs` job) on a fresh engine; its result, or EngineError."""
    from mlxtui.core.engine import Engine

    engine = Engine(on_event)
    engine.start()
    try:
        return engine.run_sync(job)
    finally:
        engine.shutdown()


def run_call(
    fn: Callable[[Any, Progress], Any],
    kind: str,
    on_event: EventSink,
    errors: tuple[type[BaseException], ...] = (),
) -> Any:
    """`fn(engine, progress)` on the engine thread; its return value, or EngineError.

    `errors` are the core's own user-facing error types: their message becomes the
    EngineError's as it is (no type name, no traceback), as the commands printed it before.
    """
    from mlxtui.core.engine import Call, Engine, EngineError

    job_ids: list[int] = []

    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.JobStarted) and event.kind == "call" and not job_ids:
            job_ids.append(event.job_id)
        on_event(event)

    engine = Engine(sink)

    def progress(message: str, done: int = 0, total: int = 0) -> None:
        engine.emit(ev.JobProgress(job_ids[0] if job_ids else 0, kind, message, done, total))

    def job(engine_: Any) -> Any:
        try:
            return fn(engine_, progress)
        except errors as e:
            raise EngineError(str(e)) from None

    engine.start()
    try:
        return engine.run_sync(Call(fn=job, description=kind))
    finally:
        engine.shutdown()
