"""What every job function receives: the engine's model slot, a phase reporter, the cancel
token; and the engine's one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.progress import Reporter


class EngineError(RuntimeError):
    """A job failed in a way the user can act on; `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class ModelSlot:
    """The model the engine holds between jobs (engine thread only)."""

    model: Any = None
    tokenizer: Any = None
    info: Any = None  # models.ModelInfo
    spec: str | None = None  # what the user asked for ("demo", a path, a hub id)
    adapter_path: str | None = None
    last_run_dir: str | None = None
    # real token lengths of the last training set, for the memory estimate
    train_lengths: list[int] = field(default_factory=list)
    train_lengths_for: tuple[str, int] | None = None

    def clear(self) -> None:
        self.model = self.tokenizer = self.info = None


@dataclass
class JobContext:
    engine: Any  # mlxtui.core.engine.Engine: the slot and the scheduler's services
    job_id: int
    job: Any  # the jobs.Job being run
    reporter: Reporter

    @property
    def slot(self) -> ModelSlot:
        return self.engine.slot  # type: ignore[no-any-return]

    def emit(self, event: ev.Event) -> None:
        self.engine.emit(event)

    @property
    def cancelled(self) -> bool:
        return self.job.cancel.is_set()  # type: ignore[no-any-return]
