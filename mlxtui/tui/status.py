"""The dashboard's run status: a frozen value and a pure function that folds engine events into it.

`apply_event` looks the event's type up in a table: one small function per event kind that
changes the status; every other kind leaves it as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mlxtui.core import events as ev
from mlxtui.tui.errors import failure_text

USER_PAUSE_MESSAGE = "p continues · s stops (the adapter is saved)"
STOPPING_MESSAGE = "saving the adapter…"
LOAD_KINDS = ("load", "load_model", "LoadModel")


@dataclass(frozen=True)
class Phase:
    """A long stretch of work inside a job (PhaseStarted … PhaseFinished)."""

    job_id: int
    kind: str  # the job kind it belongs to ("train", "load", …)
    key: str
    label: str
    started_at: float
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class Status:
    state: str = "idle"  # idle | loading | training | paused | stopping | done | error
    model: str = ""
    iteration: int = 0
    total_iters: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    phases: tuple[Phase, ...] = ()  # running phases, outermost first (a load inside a train job)
    outcome: str = ""  # how the last run ended (TrainFinished.status): "stopped" shows as DONE (stopped)

    @property
    def busy_training(self) -> bool:
        return self.state in ("training", "paused", "stopping")

    @property
    def phase(self) -> Phase | None:
        """The innermost running phase: the one the status line names."""
        return self.phases[-1] if self.phases else None


Fold = Callable[[Status, Any], Status]
_FOLDS: dict[type[ev.Event], Fold] = {}


def folds(event_type: type[ev.Event]) -> Callable[[Fold], Fold]:
    def register(fn: Fold) -> Fold:
        _FOLDS[event_type] = fn
        return fn

    return register


def apply_event(status: Status, event: ev.Event) -> Status:
    """Return the status after `event`; events that do not change it return it unchanged."""
    fold = _FOLDS.get(type(event))
    return fold(status, event) if fold is not None else status


# A load of the dashboard's own model never takes the state from a training. Its events can
# come after the training's start: `t` pressed while the model loads launches a run across
# ranks at once (the ranks load their own), and the engine's JobStarted of that load may be
# folded after rank 0's TrainStarted; "loading" then, and the load's end then, read "idle"
# while the ranks train. An in-process training waits for that load on the engine's queue.


@folds(ev.JobStarted)
def _job_started(status: Status, event: ev.JobStarted) -> Status:
    if event.kind in LOAD_KINDS and not status.busy_training:
        return replace(status, state="loading", message=event.description)
    return status


@folds(ev.ModelLoaded)
def _model_loaded(status: Status, event: ev.ModelLoaded) -> Status:
    if status.busy_training:
        return replace(status, model=event.name)  # the training's own words stay
    state = "idle" if status.state == "loading" else status.state
    return replace(status, state=state, model=event.name, message="")


@folds(ev.TrainStarted)
def _train_started(status: Status, event: ev.TrainStarted) -> Status:
    return replace(
        status,
        state="stopping" if status.state == "stopping" else "training",  # a stop asked early holds
        iteration=event.start_iter,
        total_iters=event.total_iters,
        loss=None,
        val_loss=None,
        eta_seconds=None,
        message="",
        outcome="",
    )


@folds(ev.TrainStep)
def _train_step(status: Status, event: ev.TrainStep) -> Status:
    return replace(
        status,
        iteration=event.iteration,
        total_iters=event.total_iters,
        loss=event.loss,
        tokens_per_second=event.tokens_per_second,
        eta_seconds=event.eta_seconds,
    )


@folds(ev.TrainReport)
def _train_report(status: Status, event: ev.TrainReport) -> Status:
    return replace(
        status,
        iteration=event.iteration,
        total_iters=event.total_iters,
        loss=event.train_loss,
        tokens_per_second=event.tokens_per_second,
    )


@folds(ev.ValReport)
def _val_report(status: Status, event: ev.ValReport) -> Status:
    return replace(status, val_loss=event.val_loss)


@folds(ev.TrainPaused)
def _train_paused(status: Status, event: ev.TrainPaused) -> Status:
    if status.state == "stopping":
        return status  # a stop already asked for wins: the pause is on its way out
    # The engine's user-pause sentence is too long for one line; the keys are what matter.
    message = USER_PAUSE_MESSAGE if event.reason == "user" else event.message
    return replace(status, state="paused", message=message or f"paused ({event.reason})")


@folds(ev.TrainResumed)
def _train_resumed(status: Status, event: ev.TrainResumed) -> Status:
    if status.state == "stopping":
        return status
    return replace(status, state="training", message="")


@folds(ev.TrainFinished)
def _train_finished(status: Status, event: ev.TrainFinished) -> Status:
    return replace(
        status,
        state="done",
        iteration=event.final_iteration,
        eta_seconds=None,
        message=event.message or event.status,
        outcome=event.status,
        phases=tuple(p for p in status.phases if p.kind != "train"),  # the run's phases end with it
    )


@folds(ev.JobProgress)
def _job_progress(status: Status, event: ev.JobProgress) -> Status:
    if any(p.job_id == event.job_id and p.label == event.message for p in status.phases):
        # a phase's own progress: the phase already shows it, with its count and time
        return replace(status, message="") if status.message else status
    counts = f" ({event.done}/{event.total})" if event.total else ""
    return replace(status, message=f"{event.message}{counts}")


@folds(ev.JobFinished)
def _job_finished(status: Status, event: ev.JobFinished) -> Status:
    # A job's phases end with it, even if a PhaseFinished went missing.
    phases = tuple(p for p in status.phases if p.job_id != event.job_id)
    if status.state == "loading" and event.kind in LOAD_KINDS:
        return replace(status, state="idle", message="", phases=phases)
    return replace(status, phases=phases)


@folds(ev.JobFailed)
def _job_failed(status: Status, event: ev.JobFailed) -> Status:
    phases = tuple(p for p in status.phases if p.job_id != event.job_id)
    if event.kind == "estimate":
        return replace(status, phases=phases)  # the Config pane shows it, under its field
    # A failed chat reply, or a failed load of the dashboard's own model (its modal says so),
    # must not make a running training look failed.
    kind = event.kind.lower()
    fatal = "train" in kind or ("load" in kind and not status.busy_training)
    state = "error" if fatal else status.state
    return replace(status, state=state, message=failure_text(event)[0], phases=phases)


@folds(ev.PhaseStarted)
def _phase_started(status: Status, event: ev.PhaseStarted) -> Status:
    phase = Phase(
        event.job_id, event.kind, event.phase, event.label, event.started_at, 0, event.total
    )
    others = tuple(p for p in status.phases if (p.job_id, p.key) != (event.job_id, event.phase))
    return replace(status, phases=(*others, phase))


@folds(ev.PhaseProgress)
def _phase_progress(status: Status, event: ev.PhaseProgress) -> Status:
    phases = list(status.phases)
    for i, p in enumerate(phases):
        if (p.job_id, p.key) == (event.job_id, event.phase):
            phases[i] = replace(p, label=event.label or p.label, done=event.done, total=event.total)
            return replace(status, phases=tuple(phases))
    # A progress whose start was missed still names the phase (elapsed counts from now).
    started = Phase(
        event.job_id, event.kind, event.phase, event.label, time.time(), event.done, event.total
    )
    return replace(status, phases=(*phases, started))


@folds(ev.PhaseFinished)
def _phase_finished(status: Status, event: ev.PhaseFinished) -> Status:
    phases = tuple(p for p in status.phases if (p.job_id, p.key) != (event.job_id, event.phase))
    return replace(status, phases=phases)


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def phase_text(phase: Phase, now: float) -> str:
    """'validation 3/4 · 12 s': what runs, how far along, for how long (seconds under a minute)."""
    counts = (
        f" {phase.done}/{phase.total}" if phase.total else (f" {phase.done}" if phase.done else "")
    )
    elapsed = max(0.0, now - phase.started_at)
    took = f"{int(elapsed)} s" if elapsed < 60 else format_duration(elapsed)
    return f"{phase.label}{counts} · {took}"


def status_text(status: Status, now: float | None = None) -> str:
    """One line: state, the running phase, iteration/total, loss, tokens/s, ETA, then the model.

    What to do next (paused: which key continues; error: what failed) and what is running now
    come right after the state, so a narrow terminal cuts the figures, not the instructions.
    """
    now = time.time() if now is None else now
    phase = status.phase
    running = phase_text(phase, now) if phase is not None else ""
    if status.state == "stopping":
        parts = [f"STOPPING: {running or status.message or STOPPING_MESSAGE}"]
        running = ""
    elif status.state == "done" and status.outcome not in ("", "completed"):
        # a stopped or failed run must not read as finished, however narrow the terminal
        parts = [f"DONE ({status.outcome.replace('_', ' ')})"]
    else:
        parts = [status.state.upper()]
    urgent = status.state in ("paused", "error")
    if urgent and status.message:
        parts.append(status.message)
    if running:
        parts.append(running)
    if status.total_iters:
        parts.append(f"it {status.iteration}/{status.total_iters}")
    if status.loss is not None:
        parts.append(f"loss {status.loss:.3f}")
    if status.val_loss is not None:
        parts.append(f"val {status.val_loss:.3f}")
    if status.tokens_per_second and status.state not in ("paused", "stopping"):
        parts.append(f"{status.tokens_per_second:.0f} tok/s")
    if status.state == "training" and status.total_iters:  # none while paused or loading
        parts.append(f"ETA {format_duration(status.eta_seconds)}")
    if status.message and not urgent and status.state != "stopping":
        parts.append(status.message)
    if status.model:  # it does not change: last, where an 80-column line cuts
        parts.append(status.model)
    return "  │  ".join(parts)
