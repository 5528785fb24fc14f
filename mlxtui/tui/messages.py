"""Engine events as typed Textual messages, and the bridge that posts them onto the UI thread.

The engine (and its telemetry thread) call `EventBridge` with `mlxtui.core.events` objects. The
bridge wraps each in the message class that `MESSAGES` names for its type and posts it to the
app (`post_message` is thread-safe), where handlers pick them with `@on(messages.TrainStep)`.
A message's `events` are the core events it carries; most carry one.

Floods (training steps, generated tokens, memory samples) are batched: while the last posted
message is of the same kind and nobody has read it yet, a new event joins it instead of being
posted again. One UI wake-up then shows many events, none is lost, and their order is kept
(only a message still last in line may grow).

Widgets ask for engine work with `SubmitJob`; the app submits it in one place
(`MlxtuiApp.submit_job`) and posts that job's progress, phases and end back to `reply_to`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from textual.message import Message

from mlxtui.core import events as ev

if TYPE_CHECKING:
    from textual.message_pump import MessagePump


class EngineMessage(Message, bubble=False):
    """One engine event. It does not bubble: a screen given a job's messages keeps them."""

    def __init_subclass__(cls, bubble: bool | None = False, **kwargs: Any) -> None:
        # Textual's default would make every subclass bubble again.
        super().__init_subclass__(bubble=bubble, **kwargs)

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event

    @property
    def events(self) -> tuple[ev.Event, ...]:
        return (self.event,)

    def copy(self) -> EngineMessage:
        """A fresh message with the same events (a posted message belongs to one target)."""
        return type(self)(self.event)


E = TypeVar("E", bound=ev.Event)


class Batched(EngineMessage, Generic[E]):
    """A run of consecutive events of one frequent kind; `events` closes the run."""

    def __init__(self, event: ev.Event, lock: threading.Lock | None = None) -> None:
        super().__init__(event)
        self._lock = lock or threading.Lock()
        self._open: list[Any] | None = [event]
        self._closed: tuple[E, ...] = ()

    def absorb(self, event: ev.Event) -> bool:
        """Join `event` to this run unless it has been read (the bridge holds the lock)."""
        if self._open is None:
            return False
        self._open.append(event)
        return True

    @property
    def events(self) -> tuple[E, ...]:
        with self._lock:
            if self._open is not None:
                self._closed, self._open = tuple(self._open), None
        return self._closed

    def copy(self) -> EngineMessage:
        events = self.events
        message = type(self)(events[0])
        message._open, message._closed = None, events
        return message


# One message class per event kind; handler names follow (`on_train_step`, `on_job_failed`, …).
class JobStarted(EngineMessage):
    event: ev.JobStarted


class JobProgress(EngineMessage):
    event: ev.JobProgress


class JobFinished(EngineMessage):
    event: ev.JobFinished


class JobFailed(EngineMessage):
    event: ev.JobFailed


class PhaseStarted(EngineMessage):
    event: ev.PhaseStarted


class PhaseProgress(EngineMessage):
    event: ev.PhaseProgress


class PhaseFinished(EngineMessage):
    event: ev.PhaseFinished


class Log(EngineMessage):
    event: ev.Log


class ModelLoaded(EngineMessage):
    event: ev.ModelLoaded


class TrainStarted(EngineMessage):
    event: ev.TrainStarted


class TrainStep(Batched[ev.TrainStep]):
    event: ev.TrainStep


class TrainReport(EngineMessage):
    event: ev.TrainReport


class ValReport(EngineMessage):
    event: ev.ValReport


class SamplePredictions(EngineMessage):
    event: ev.SamplePredictions


class CheckpointSaved(EngineMessage):
    event: ev.CheckpointSaved


class TrainPaused(EngineMessage):
    event: ev.TrainPaused


class TrainResumed(EngineMessage):
    event: ev.TrainResumed


class TrainFinished(EngineMessage):
    event: ev.TrainFinished


class TestResult(EngineMessage):
    event: ev.TestResult


class Diagnosis(EngineMessage):
    event: ev.Diagnosis


class MemorySampled(Batched[ev.MemorySampled]):
    event: ev.MemorySampled


class MemoryEstimated(EngineMessage):
    event: ev.MemoryEstimated


class MemoryAlert(EngineMessage):
    event: ev.MemoryAlert


class GenerationToken(Batched[ev.GenerationToken]):
    event: ev.GenerationToken


class GenerationDone(EngineMessage):
    event: ev.GenerationDone


class RankReport(EngineMessage):
    """Per-rank figures of a run across ranks (the rank table under the loss plot)."""

    event: ev.RankReport


class OtherEvent(EngineMessage):
    """An event kind this dashboard does not know (a newer engine): logged, otherwise ignored."""


MESSAGES: dict[type[ev.Event], type[EngineMessage]] = {
    ev.JobStarted: JobStarted,
    ev.JobProgress: JobProgress,
    ev.JobFinished: JobFinished,
    ev.JobFailed: JobFailed,
    ev.PhaseStarted: PhaseStarted,
    ev.PhaseProgress: PhaseProgress,
    ev.PhaseFinished: PhaseFinished,
    ev.Log: Log,
    ev.ModelLoaded: ModelLoaded,
    ev.TrainStarted: TrainStarted,
    ev.TrainStep: TrainStep,
    ev.TrainReport: TrainReport,
    ev.RankReport: RankReport,
    ev.ValReport: ValReport,
    ev.SamplePredictions: SamplePredictions,
    ev.CheckpointSaved: CheckpointSaved,
    ev.TrainPaused: TrainPaused,
    ev.TrainResumed: TrainResumed,
    ev.TrainFinished: TrainFinished,
    ev.TestResult: TestResult,
    ev.Diagnosis: Diagnosis,
    ev.MemorySampled: MemorySampled,
    ev.MemoryEstimated: MemoryEstimated,
    ev.MemoryAlert: MemoryAlert,
    ev.GenerationToken: GenerationToken,
    ev.GenerationDone: GenerationDone,
}


def message_class(event: ev.Event) -> type[EngineMessage]:
    for cls in type(event).__mro__:
        found = MESSAGES.get(cls)  # type: ignore[call-overload]
        if found is not None:
            return found
    return OtherEvent


class EventBridge:
    """Callable given to the engine as `on_event`; safe to call from any thread."""

    def __init__(self, target: MessagePump) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._open_batch: Batched[Any] | None = None

    def __call__(self, event: ev.Event) -> None:
        cls = message_class(event)
        with self._lock:
            batch = self._open_batch
            if batch is not None and type(batch) is cls and batch.absorb(event):
                return
            if issubclass(cls, Batched):
                batch = cls(event, self._lock)
                message: EngineMessage = batch
                self._open_batch = batch
            else:
                message = cls(event)
                self._open_batch = None
            # Posted under the lock, so the queue's order is the order events arrived in.
            # After the app has closed post_message returns False and the event is dropped.
            self._target.post_message(message)


class SubmitJob(Message):
    """A widget asks the app to send `job` to the engine.

    `reply_to` (a widget or screen) then also receives that job's JobProgress, Phase* messages
    and its JobFinished or JobFailed.
    """

    def __init__(self, job: Any, reply_to: MessagePump | None = None) -> None:
        super().__init__()
        self.job = job
        self.reply_to = reply_to
