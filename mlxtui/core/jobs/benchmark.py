"""Generation speed of the base and of the adapter on the loaded model."""

from __future__ import annotations

from typing import Any

from mlxtui.core.jobs.context import JobContext
from mlxtui.core.jobs.load import require_adapter


def run(ctx: JobContext) -> dict[str, Any]:
    from mlxtui.core import evaluation

    job = ctx.job
    require_adapter(ctx, None)
    kwargs: dict[str, Any] = {"runs": job.runs, "max_tokens": job.max_tokens}
    if job.prompt:
        kwargs["prompt"] = job.prompt
    with ctx.reporter.phase("benchmark", "measuring generation speed", total=2) as phase:
        base, adapter = evaluation.benchmark_base_and_adapter(
            ctx.slot.model, ctx.slot.tokenizer, on_done=phase.advance, **kwargs
        )
    return {"base": base, "adapter": adapter}
