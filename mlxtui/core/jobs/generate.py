"""A chat answer streamed token by token, and the same prompt answered by base and adapter."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.jobs.context import EngineError, JobContext
from mlxtui.core.jobs.load import ensure_model, use_adapter_file


def run(ctx: JobContext) -> dict[str, Any]:
    from mlxtui.core import generation

    job = ctx.job
    ensure_model(ctx)
    weights = job.weights
    if weights not in ("adapter", "base"):
        use_adapter_file(ctx, Path(weights))
    has_adapter = generation.has_adapter(ctx.slot.model)
    if weights == "adapter" and not has_adapter:
        ctx.emit(ev.Log("info", "no adapter is loaded yet: the base model answers"))
    use_base = weights == "base" and has_adapter
    return stream(ctx, job.slot, base=use_base)


def run_compare(ctx: JobContext) -> dict[str, Any]:
    from mlxtui.core import generation

    if ctx.slot.adapter_path:
        ensure_model(ctx)  # freed while ranks trained: the model and its adapter come back
    if ctx.slot.model is None or not generation.has_adapter(ctx.slot.model):
        raise EngineError(
            "there is no adapter to compare with",
            "train first, or pick a run's adapter in the chat",
        )
    a = stream(ctx, "A", base=True)
    b = stream(ctx, "B", base=False) if not ctx.cancelled else {}
    return {"A": a, "B": b}


def stream(ctx: JobContext, slot_name: str, base: bool) -> dict[str, Any]:
    """Answer the job's messages, one GenerationToken per piece; esc (cancel) ends it."""
    from mlxtui.core import generation

    job = ctx.job
    model = ctx.slot.model
    text = ""
    last = None
    # cancelled while it waited in the queue: answer nothing, but say it is done
    ctx_mgr = (
        generation.adapter_disabled(model)
        if base and not ctx.cancelled
        else contextlib.nullcontext()
    )
    with ctx_mgr:
        chunks = (
            ()
            if ctx.cancelled
            else generation.stream_reply(
                model,
                ctx.slot.tokenizer,
                job.messages,
                temperature=job.temperature,
                top_p=job.top_p,
                max_tokens=job.max_tokens,
                should_stop=job.cancel.is_set,
                repetition_penalty=job.repetition_penalty,
                # Compare has none of these: its answers use the defaults (off, the template)
                min_p=getattr(job, "min_p", 0.0),
                top_k=getattr(job, "top_k", 0),
                ignore_chat_template=getattr(job, "ignore_chat_template", False),
                repetition_context_size=getattr(job, "repetition_context_size", 20),
            )
        )
        for chunk in chunks:
            text += chunk.text
            last = chunk
            if chunk.text:
                ctx.emit(ev.GenerationToken(id(job), chunk.text, slot_name))
    done = ev.GenerationDone(
        request_id=id(job),
        text=text,
        slot=slot_name,
        prompt_tokens=getattr(last, "prompt_tokens", 0),
        generation_tokens=getattr(last, "generation_tokens", 0),
        prompt_tps=getattr(last, "prompt_tps", 0.0),
        generation_tps=getattr(last, "generation_tps", 0.0),
        peak_memory=getattr(last, "peak_memory", 0.0),
        stopped=job.cancel.is_set(),
    )
    ctx.emit(done)
    return done.to_dict()
