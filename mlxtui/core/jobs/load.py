"""Load a model (and optionally an adapter) into the engine's slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.jobs.context import EngineError, JobContext, mark_fresh
from mlxtui.core.progress import Reporter

MODEL_HINT = "check the model field: a local MLX folder, a .gguf file, a Hugging Face id, or empty for the demo"


def run(ctx: JobContext) -> Any:
    job = ctx.job
    return load_into_slot(ctx, job.spec, job.dequantize, job.adapter_path)


def load_into_slot(
    ctx: JobContext,
    spec: str | None,
    dequantize: bool | None,
    adapter_path: str | None,
    reporter: Reporter | None = None,
) -> Any:
    """Load `spec` (phases: gguf_import, load, adapters, dequantize) and make it the slot's."""
    from mlxtui.core import models

    reporter = reporter or ctx.reporter
    if dequantize is None:
        dequantize = models.wants_dequantize("auto")
    slot = ctx.slot
    try:
        model, tokenizer, info = models.load_model(
            spec, dequantize=bool(dequantize), adapter_path=adapter_path, reporter=reporter
        )
    except models.ModelError as e:
        raise EngineError(str(e), MODEL_HINT) from None
    slot.model, slot.tokenizer, slot.info = model, tokenizer, info
    slot.spec = spec
    slot.adapter_path = adapter_path
    if adapter_path is None:
        mark_fresh(slot, spec, bool(dequantize))
    ctx.emit(model_loaded(info, adapter_path))
    return info


def load_named(
    ctx: JobContext, spec: str, dequantize: bool | None, adapter_path: str | None
) -> None:
    """Load the model a job names (the CLI's --model) and, if given, an adapter file or folder
    onto it as it is (never switching bases: the user named this one)."""
    from mlxtui.core import generation, models

    load_into_slot(ctx, spec, dequantize, None)
    if not adapter_path:
        return
    with ctx.reporter.phase("adapters", "loading the adapter"):
        try:
            models.check_adapter(Path(adapter_path))  # damaged or pickle files: named, not loaded
            generation.load_adapter_file(ctx.slot.model, Path(adapter_path))
        except (FileNotFoundError, ValueError) as e:
            raise EngineError(str(e), "give an adapter folder or one of its .safetensors files") from None
    ctx.slot.adapter_path = adapter_path


def ensure_model(ctx: JobContext) -> None:
    if ctx.slot.model is None:
        load_into_slot(ctx, ctx.slot.spec, None, ctx.slot.adapter_path)


FREED = (
    "the dashboard's copy of the model is freed while the ranks train; chat, evaluation and "
    "the estimate load it again when asked"
)


def free(ctx: JobContext) -> bool:
    """FreeModel: drop the slot's model and MLX's cached buffers; its spec and adapter stay, so
    `ensure_model` brings the same back. False when nothing was loaded."""
    import gc

    import mlx.core as mx

    slot = ctx.slot
    if slot.model is None:
        return False
    slot.clear()
    gc.collect()
    mx.clear_cache()
    ctx.emit(ev.Log("info", FREED))
    return True


def use_adapter(ctx: JobContext) -> str:
    """UseAdapter: the adapter chat and evaluation answer with from now on (a run across ranks
    saved it). A freed slot only records it: the next load brings the model with it."""
    from mlxtui.core import models

    path = Path(ctx.job.path).expanduser()
    if ctx.slot.model is not None:
        use_adapter_file(ctx, path)
        return str(path)
    if not path.exists():  # check_adapter leaves that to the loaders, and nothing loads now
        raise EngineError(
            f"no adapter weights at {path}", "give an adapter folder or one of its .safetensors files"
        )
    try:
        models.check_adapter(path)  # its config and weights, as a load would read them
    except models.ModelError as e:
        raise EngineError(str(e), "give an adapter folder or one of its .safetensors files") from None
    ctx.slot.adapter_path = str(path)
    ctx.emit(ev.Log("info", f"answering with {path} (loaded with the model when asked)"))
    return str(path)


def use_adapter_file(ctx: JobContext, path: Path) -> None:
    """Load an adapter (any checkpoint of any run) in place; reload the base only if needed."""
    from mlxtui.core import generation

    slot = ctx.slot
    if not path.exists():
        raise EngineError(
            f"no adapter at {path}",
            "pick a checkpoint that exists (the run folder may have moved)",
        )
    wanted = generation.read_adapter_config(path).get("model")
    current = str(slot.info.path) if slot.info is not None else None
    if (
        wanted
        and current
        and Path(str(wanted)).resolve() != Path(current).resolve()
        and Path(str(wanted)).exists()
    ):
        ctx.emit(ev.Log("info", f"this adapter was trained on {wanted}: loading that base"))
        load_into_slot(ctx, str(wanted), None, None)
    try:
        generation.load_adapter_file(slot.model, path)
    except ValueError as e:
        ctx.emit(ev.Log("info", f"{e}: reloading the base model"))
        load_into_slot(ctx, slot.spec, None, None)
        generation.load_adapter_file(slot.model, path)
    slot.adapter_path = str(path)
    ctx.emit(ev.Log("info", f"answering with {path}"))


def require_adapter(ctx: JobContext, adapter_path: str | None) -> None:
    from mlxtui.core import generation

    if adapter_path or ctx.slot.adapter_path:
        ensure_model(ctx)  # freed (FreeModel): the same model and adapter come back
    if adapter_path:
        use_adapter_file(ctx, Path(adapter_path))
    if ctx.slot.model is None or not generation.has_adapter(ctx.slot.model):
        raise EngineError(
            "there is no adapter to evaluate", "train first, or choose a run's adapter"
        )


def model_loaded(info: Any, adapter: str | None) -> ev.ModelLoaded:
    return ev.ModelLoaded(
        name=info.name,
        path=str(info.path),
        num_layers=info.num_layers,
        num_parameters=info.num_parameters,
        quantization_bits=info.quantization_bits,
        dtype=str(info.dtype),
        dequantized=bool(getattr(info, "dequantized", False)),
        adapter=adapter,
        chat_template=bool(getattr(info, "has_chat_template", True)),
        source_quantization_bits=getattr(info, "source_quantization_bits", info.quantization_bits),
        size_bytes=int(getattr(info, "size_bytes", 0)),
    )
