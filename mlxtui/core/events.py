"""Frozen dataclasses that cross the thread boundary between the MLX engine and its subscribers.

Every event is immutable and holds only plain Python values (no MLX arrays), so the dashboard,
the headless progress bar and the metrics file can read it on any thread.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of every engine event."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["event"] = type(self).__name__
        return d


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobStarted(Event):
    job_id: int
    kind: str
    description: str = ""


@dataclass(frozen=True)
class JobProgress(Event):
    """Progress of a long job that is not a training step (model conversion, evaluation, fuse)."""

    job_id: int
    kind: str
    message: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class PhaseStarted(Event):
    """A long stretch of work inside a job began: loading, tokenizing, validation, saving…

    `phase` is a stable key ("load", "dequantize", "adapters", "tokenize", "validate_data",
    "validate", "samples", "save", "test", "fuse", "export", "gguf_import", "estimate", …);
    `label` is the words a person reads ("validation", "sample answers"). `total` is the number
    of units (batches, answers, tensors) when known, else 0.
    """

    job_id: int
    kind: str  # the job kind the phase belongs to ("train", "load", "evaluate", "fuse", …)
    phase: str
    label: str
    total: int = 0
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class PhaseProgress(Event):
    """Unit `done` of `total` of the running phase is finished (e.g. validation batch 3 of 4)."""

    job_id: int
    kind: str
    phase: str
    label: str
    done: int
    total: int = 0


@dataclass(frozen=True)
class PhaseFinished(Event):
    job_id: int
    kind: str
    phase: str
    label: str
    seconds: float
    outcome: str = "done"  # "done" | "stopped" (a stop/cancel interrupted it) | "failed"


@dataclass(frozen=True)
class JobFinished(Event):
    job_id: int
    kind: str
    result: Any = None


@dataclass(frozen=True)
class JobFailed(Event):
    job_id: int
    kind: str
    message: str  # the plain wording (str() of the error)
    hint: str = ""
    # the core's typed error, when one caused it (a ConfigError names its setting): each front
    # end words it its own way; None for anything else
    error: Exception | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Log(Event):
    level: str  # "info" | "warning" | "error"
    message: str


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelLoaded(Event):
    name: str
    path: str
    num_layers: int
    num_parameters: int
    quantization_bits: int | None
    dtype: str
    dequantized: bool = False
    adapter: str | None = None
    chat_template: bool = True
    source_quantization_bits: int | None = None
    size_bytes: int = 0


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainStarted(Event):
    run_dir: str
    total_iters: int
    start_iter: int
    trainable_parameters: int
    total_parameters: int
    fine_tune_type: str
    estimated_peak_bytes: int | None = None
    started_at: float = field(default_factory=time.time)
    # the process that trains: the run history tells a run going on elsewhere from a crashed one
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class TrainStep(Event):
    """One optimizer step (emitted every step so the plot and the ETA stay live)."""

    iteration: int
    total_iters: int
    loss: float
    learning_rate: float
    tokens_per_second: float
    iterations_per_second: float
    trained_tokens: int
    peak_memory: float  # GB, as mlx-lm reports it
    eta_seconds: float | None
    # The gradient's global norm before clipping; None on a step that only accumulated.
    grad_norm: float | None = None


@dataclass(frozen=True)
class TrainReport(Event):
    """The mean over `steps_per_report` steps: the figure mlx-lm prints and logs."""

    iteration: int
    total_iters: int
    train_loss: float
    learning_rate: float
    tokens_per_second: float
    iterations_per_second: float
    trained_tokens: int
    peak_memory: float
    grad_norm: float | None = None  # the mean over the report's optimizer updates


@dataclass(frozen=True)
class ValReport(Event):
    iteration: int
    val_loss: float
    val_time: float
    is_best: bool


@dataclass(frozen=True)
class SamplePrediction:
    prompt: str
    reference: str
    answer: str


@dataclass(frozen=True)
class SamplePredictions(Event):
    """Answers to fixed held-out prompts, generated at an evaluation during training."""

    iteration: int
    items: tuple[SamplePrediction, ...]


@dataclass(frozen=True)
class CheckpointSaved(Event):
    iteration: int
    path: str
    kind: str  # "periodic" | "best" | "final" | "stop"


@dataclass(frozen=True)
class TrainPaused(Event):
    iteration: int
    reason: str  # "user" | "memory" | "nan"
    message: str = ""


@dataclass(frozen=True)
class TrainResumed(Event):
    iteration: int


@dataclass(frozen=True)
class TrainFinished(Event):
    run_dir: str
    adapter_path: str
    final_iteration: int
    total_iters: int
    status: str  # "completed" | "stopped" | "early_stopped" | "failed"
    best_val_loss: float | None = None
    best_iteration: int | None = None
    test_loss: float | None = None
    test_ppl: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Diagnosis(Event):
    """Advice from watching the losses (mlxtui.core.diagnosis), given once per kind.

    kind: "spike" | "plateau" | "overfitting"; numbers: the figures that triggered it.
    """

    kind: str
    iteration: int
    message: str
    numbers: dict[str, float] = field(default_factory=dict)
    # advice given before the run was stopped and resumed, said again when it resumes
    earlier: bool = False


@dataclass(frozen=True)
class TestResult(Event):
    test_loss: float
    test_ppl: float
    adapter: str | None


# ---------------------------------------------------------------- memory


@dataclass(frozen=True)
class MemorySampled(Event):
    """One telemetry sample. `swap_growth_per_min` (bytes/minute, None until there is a span)
    is computed once in core and is the very figure the memory guard acts on."""

    sample: Any  # mlxtui.core.memory.MemorySample (frozen)
    swap_growth_per_min: float | None = None


@dataclass(frozen=True)
class MemoryEstimated(Event):
    """The pre-flight estimate of a run's peak memory, for the Config pane's current values."""

    total_bytes: int
    breakdown: dict[str, int]
    verdict: str | None  # "fits" | "tight" | "will swap" | None when availability is unknown
    available_bytes: int | None
    note: str = ""
    options: tuple[tuple[str, int], ...] = ()  # (what to change, estimated peak)


@dataclass(frozen=True)
class MemoryAlert(Event):
    level: str  # "yellow" | "red"
    action: str  # "warn" | "pause"
    message: str
    suggestions: tuple[str, ...] = ()


# ---------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerationToken(Event):
    request_id: int
    text: str
    slot: str = ""  # "" for a single answer, "A"/"B" for side-by-side


@dataclass(frozen=True)
class GenerationDone(Event):
    request_id: int
    text: str
    slot: str = ""
    prompt_tokens: int = 0
    generation_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tps: float = 0.0
    peak_memory: float = 0.0
    stopped: bool = False


# ---------------------------------------------------------------- distributed training


@dataclass(frozen=True)
class RankReport(Event):
    """Each rank's own throughput and peak memory over a report window (rank 0 emits it).

    mlx-lm's train report sums the tokens of every rank; this says how they divide.
    """

    iteration: int
    tokens_per_second: tuple[float, ...]  # by rank
    peak_memory: tuple[float, ...]  # GB, by rank
