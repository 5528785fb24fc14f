"""Evaluate the current adapter against its base: test loss and perplexity of both, then
greedy answers of both to the test prompts, scored. Esc (cancel) stops it between batches or
answers."""

from __future__ import annotations

from typing import Any

from mlxtui.core.datadir import resolve_data_dir
from mlxtui.core.jobs.context import EngineError, JobContext
from mlxtui.core.jobs.load import require_adapter
from mlxtui.core.progress import Interrupted


def run(ctx: JobContext) -> dict[str, Any]:
    try:
        return _evaluate(ctx)
    except Interrupted:
        raise EngineError(
            "evaluation stopped", "press e and run it again when you want it"
        ) from None


def _evaluate(ctx: JobContext) -> dict[str, Any]:
    from mlxtui.core import evaluation, generation

    job = ctx.job
    require_adapter(ctx, None)
    data_dir = resolve_data_dir(job.data)
    model, tokenizer = ctx.slot.model, ctx.slot.tokenizer
    reporter = ctx.reporter
    reporter.safe_point()  # cancelled while it waited in the queue
    losses: dict[str, tuple[float, float]] = {}
    if (data_dir / "test.jsonl").is_file():
        kw: dict[str, Any] = dict(batch_size=job.batch_size, max_seq_length=job.max_seq_length)
        with generation.adapter_disabled(model):
            losses["base"] = evaluation.test_loss_and_ppl(
                model, tokenizer, data_dir, reporter=reporter, label="test loss of the base", **kw
            )
        losses["adapter"] = evaluation.test_loss_and_ppl(
            model, tokenizer, data_dir, reporter=reporter, label="test loss of the adapter", **kw
        )
    records = evaluation.load_records(
        data_dir, "test" if (data_dir / "test.jsonl").is_file() else "valid"
    )
    report = evaluation.before_after(
        model, tokenizer, records, n=job.n, max_tokens=job.max_tokens, reporter=reporter
    )
    return {"losses": losses, "report": report, "data": str(data_dir)}
