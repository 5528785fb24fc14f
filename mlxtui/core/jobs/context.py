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
    # (spec, dequantized) of a model as a load job left it, nothing applied or trained since:
    # a train job of the same model takes it instead of loading it again (`t` pressed while
    # the dashboard's start-up load was still running loaded the model twice).
    fresh: tuple[str, bool] | None = None

    def clear(self) -> None:
        self.model = self.tokenizer = self.info = None
        self.fresh = None

    def take_fresh(self, spec: str | None, dequantize: bool) -> tuple[Any, Any, Any] | None:
        """(model, tokenizer, info) when the slot holds `spec` untouched since its load, once."""
        wanted = (_spec_key(spec), bool(dequantize))
        fresh, self.fresh = self.fresh, None
        if fresh != wanted or self.model is None or has_adapter_layers(self.model):
            return None
        return self.model, self.tokenizer, self.info


def _spec_key(spec: str | None) -> str:
    return "demo" if spec in (None, "", "demo") else str(spec).strip()


def mark_fresh(slot: ModelSlot, spec: str | None, dequantize: bool) -> None:
    slot.fresh = (_spec_key(spec), bool(dequantize))


def has_adapter_layers(model: Any) -> bool:
    """Whether any LoRA/DoRA layer was ever put into `model` (then it is no base model)."""
    named = getattr(model, "named_modules", None)
    if named is None:
        return True  # not an MLX model: do not reuse it
    return any(type(module).__name__.startswith(("LoRA", "DoRA")) for _name, module in named())


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
