"""Phases of a job and the safe points between their units of work.

A long job (train, evaluate, fuse…) is a sequence of phases: loading the model, a
validation, the sample answers, saving. Each phase reports PhaseStarted, PhaseProgress k/n
and PhaseFinished(seconds, outcome), so every subscriber (dashboard, progress bar, metrics
file) can say what is happening and for how long. Between units of work (a batch, a generated
token) the phase calls the job's safe point: the one place where a stop request becomes an
`Interrupted`, a pause waits, and the memory guard acts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mlxtui.core import events as ev

Emit = Callable[[ev.Event], None]
Progress = Callable[[str, int, int], None]


class Interrupted(BaseException):
    """A stop or cancel reached a safe point: the work in progress is abandoned between units,
    never half-way through one (nothing was half-written).

    A BaseException, like KeyboardInterrupt, so that the `except Exception` of code it passes
    through (a loader that rewords errors) does not turn a stop into a failure.
    """


def _no_safe_point() -> None:
    return None


class Phase:
    """The running phase: `advance()` after each unit, `check()` where no unit ended."""

    def __init__(self, reporter: Reporter, phase: str, label: str, total: int) -> None:
        self.reporter = reporter
        self.phase = phase
        self.label = label
        self.total = total
        self.done = 0

    def advance(
        self, done: int | None = None, total: int | None = None, message: str | None = None
    ) -> None:
        self.done = self.done + 1 if done is None else done
        if total is not None:
            self.total = total
        r = self.reporter
        r.emit(ev.PhaseProgress(r.job_id, r.kind, self.phase, self.label, self.done, self.total))
        r.job_progress(message or self.label, self.done, self.total)
        r.safe_point()

    def check(self) -> None:
        self.reporter.safe_point()


class Reporter:
    """Where a job's phases go (`emit`) and what runs between their units (`safe_point`).

    `safe_point` raises `Interrupted` to stop the job; it may also block (a pause) and it runs
    on the engine thread, so it may do MLX work such as answering a chat message.
    """

    def __init__(
        self,
        emit: Emit,
        job_id: int = 0,
        kind: str = "",
        safe_point: Callable[[], None] | None = None,
    ) -> None:
        self.emit = emit
        self.job_id = job_id
        self.kind = kind
        self.safe_point = safe_point or _no_safe_point

    def job_progress(self, message: str, done: int, total: int) -> None:
        # The older, free-text progress event, for front ends that show a line of text.
        self.emit(ev.JobProgress(self.job_id, self.kind, message, done, total))

    @contextmanager
    def phase(self, phase: str, label: str, total: int = 0) -> Iterator[Phase]:
        started = time.time()
        tic = time.perf_counter()
        self.emit(ev.PhaseStarted(self.job_id, self.kind, phase, label, total, started))
        self.job_progress(label, 0, total)
        running = Phase(self, phase, label, total)
        outcome = "failed"
        try:
            yield running
            outcome = "done"
        except Interrupted:
            outcome = "stopped"
            raise
        finally:
            self.emit(
                ev.PhaseFinished(
                    self.job_id,
                    self.kind,
                    phase,
                    running.label,
                    time.perf_counter() - tic,
                    outcome,
                )
            )

    def stage_callback(
        self, phase: Phase, also: Progress | None = None
    ) -> Callable[[str, int, int], None]:
        """Adapt a `progress(message, done, total)` callback (models, export, GGUF import) to
        a phase: each call is a stage (its message also goes out as JobProgress, which the
        dashboard shows as text) and a safe point. `also` is called too (a CLI's printer)."""

        def progress(message: str, done: int = 0, total: int = 0) -> None:
            if also is not None:
                also(message, done, total)
            phase.advance(done, total or None, message)

        return progress


@contextmanager
def optional_phase(
    reporter: Reporter | None, phase: str, label: str, total: int = 0
) -> Iterator[Phase | None]:
    """`reporter.phase(...)`, or None (and nothing emitted) when there is no reporter."""
    if reporter is None:
        yield None
        return
    with reporter.phase(phase, label, total) as running:
        yield running


@contextmanager
def staged(
    reporter: Reporter | None, phase: str, label: str, total: int, progress: Progress | None
) -> Iterator[Progress]:
    """A phase whose stages are reported through a `progress(message, done, total)` callback:
    yields the callback to hand to the staged function. Without a reporter it is `progress`
    itself (or a no-op), and nothing else is emitted."""
    if reporter is None:
        yield progress or _ignore_progress
        return
    with reporter.phase(phase, label, total) as running:
        yield reporter.stage_callback(running, progress)


def _ignore_progress(message: str, done: int = 0, total: int = 0) -> None:
    return None
