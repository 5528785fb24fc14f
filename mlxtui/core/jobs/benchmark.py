"""Generation speed of the base and of the adapter (or of a named base alone)."""

from __future__ import annotations

from typing import Any

from mlxtui.core.jobs.context import JobContext
from mlxtui.core.jobs.load import load_named, require_adapter


def run(ctx: JobContext) -> dict[str, Any]:
    from mlxtui.core import evaluation

    job = ctx.job
    with_adapter = True
    if job.model is not None:
        load_named(ctx, job.model, job.dequantize, job.adapter_path)
        with_adapter = bool(job.adapter_path)
    else:
        require_adapter(ctx, job.adapter_path)
    kwargs: dict[str, Any] = {"runs": job.runs, "max_tokens": job.max_tokens}
    if job.prompt:
        kwargs["prompt"] = job.prompt
    model, tokenizer = ctx.slot.model, ctx.slot.tokenizer
    if not with_adapter:
        with ctx.reporter.phase("benchmark", "measuring generation speed", total=1) as phase:
            base = evaluation.benchmark(model, tokenizer, **kwargs)
            phase.advance()
        return {"base": base}
    with ctx.reporter.phase("benchmark", "measuring generation speed", total=2) as phase:
        base, adapter = evaluation.benchmark_base_and_adapter(
            model, tokenizer, on_done=phase.advance, **kwargs
        )
    return {"base": base, "adapter": adapter}
