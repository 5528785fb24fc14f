"""The engine's jobs: what can be submitted, and one module per kind that runs it.

    load.py       load a model (and adapter) into the engine's slot
    train.py      validate the data, load, tokenize, run the training loop
    evaluate.py   test loss and before/after answers, base vs adapter
    generate.py   a chat answer, and the base-vs-adapter comparison
    benchmark.py  generation speed, base vs adapter
    export.py     fuse an adapter into its base, export GGUF
    estimate.py   the memory estimate of a configuration

Each module's `run(ctx)` is a plain function over a `JobContext` (the engine's model slot,
a phase reporter, the job's cancel token); it runs on the engine thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlxtui.core.config import TrainConfig


@dataclass
class Job:
    kind: str = field(init=False, default="job")
    # set by Engine.cancel_generation(), whether the job is still queued or already running
    cancel: threading.Event = field(
        init=False, default_factory=threading.Event, repr=False, compare=False
    )


@dataclass
class LoadModel(Job):
    spec: str | None = None
    dequantize: bool | None = None
    adapter_path: str | None = None
    kind: str = field(init=False, default="load")


@dataclass
class FreeModel(Job):
    """Let go of the slot's model (the dashboard's copy while ranks of its own run train it
    in other processes); the next job that needs it loads the same model and adapter again."""

    kind: str = field(init=False, default="free")


@dataclass
class UseAdapter(Job):
    """Chat, compare and evaluate with this adapter (a folder or .safetensors file) from now on:
    loaded in place, or with the model when a freed slot loads it again."""

    path: str = ""
    kind: str = field(init=False, default="use_adapter")


@dataclass
class Train(Job):
    config: TrainConfig = field(default_factory=TrainConfig.quick_start)
    kind: str = field(init=False, default="train")


@dataclass
class Generate(Job):
    messages: list[dict[str, str]] = field(default_factory=list)
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    weights: str = "adapter"  # "adapter" | "base" | path to a .safetensors file
    slot: str = ""
    min_p: float = 0.0  # 0: off (mlx-lm's make_sampler)
    top_k: int = 0  # 0: off
    ignore_chat_template: bool = False  # the one user message's text, without the template
    repetition_penalty: float = 1.0  # 1: off (mlx-lm's make_logits_processors)
    repetition_context_size: int = 20
    kind: str = field(init=False, default="generate")


@dataclass
class Compare(Job):
    """One prompt answered by the base (slot A) and by the adapter (slot B), no reload."""

    messages: list[dict[str, str]] = field(default_factory=list)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    repetition_penalty: float = 1.0  # both answers alike
    kind: str = field(init=False, default="compare")


@dataclass
class Evaluate(Job):
    """Test loss/perplexity and before/after answers, base vs the current adapter.

    With `model` set (the CLI), that model is loaded first with `adapter_path` (a folder or
    one .safetensors checkpoint); without it, the loaded model and adapter are evaluated.
    """

    data: str | None = None
    n: int = 20
    max_tokens: int = 128
    batch_size: int = 4
    max_seq_length: int = 2048
    test_batches: int = -1  # batches of the test loss; -1: all
    model: str | None = None
    dequantize: bool | None = None  # None: the back-end's default (models.wants_dequantize)
    adapter_path: str | None = None
    kind: str = field(init=False, default="evaluate")


@dataclass
class Benchmark(Job):
    """Generation speed of the base and the adapter.

    With `model` set (the CLI), that model is loaded first; then the adapter is measured only
    if `adapter_path` is given (else the base alone). Without it: the loaded model and adapter.
    """

    prompt: str | None = None
    runs: int = 5
    max_tokens: int = 128
    model: str | None = None
    dequantize: bool | None = None
    adapter_path: str | None = None
    kind: str = field(init=False, default="benchmark")


@dataclass
class Fuse(Job):
    """Fuse the current (or given) adapter into its base; optionally also write a GGUF file.

    The base is `model` if set, else the loaded model's, else (nothing loaded: the CLI) the
    one named in the adapter's adapter_config.json.
    """

    save_path: str = "fused_model"
    adapter_path: str | None = None
    model: str | None = None
    dequantize: bool = False
    gguf_path: str | None = None
    gguf_type: str = "f16"  # "f16" | "q8_0"
    force: bool = False
    kind: str = field(init=False, default="fuse")


@dataclass
class ExportGGUF(Job):
    """A GGUF file (float16 or Q8_0) of a base with an adapter fused in.

    Without `model`: the loaded model with the given or current adapter (one is required).
    With `model` (the CLI): that model, with `adapter_path` fused in if given, else the base alone.
    """

    out_file: str = "model.gguf"
    adapter_path: str | None = None
    model: str | None = None
    gguf_type: str = "f16"  # "f16" | "q8_0"
    force: bool = False
    kind: str = field(init=False, default="export")


@dataclass
class Estimate(Job):
    """Estimate the peak memory of training `config` on the loaded model (emits MemoryEstimated)."""

    config: TrainConfig = field(default_factory=TrainConfig.quick_start)
    kind: str = field(init=False, default="estimate")


@dataclass
class Call(Job):
    """Run `fn(engine)` on the MLX thread; its return value is the job's result."""

    fn: Callable[[Any], Any] = lambda engine: None
    description: str = ""
    kind: str = field(init=False, default="call")


__all__ = [
    "Benchmark",
    "Call",
    "Compare",
    "Estimate",
    "Evaluate",
    "ExportGGUF",
    "FreeModel",
    "Fuse",
    "Generate",
    "Job",
    "LoadModel",
    "Train",
    "UseAdapter",
]
