"""The memory estimate of training a configuration on the loaded model."""

from __future__ import annotations

import traceback
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.jobs.context import JobContext
from mlxtui.core.jobs.load import ensure_model

SAMPLE_LENGTHS = 5000  # the longest batches of a big set show up in a sample this size


def run(ctx: JobContext) -> ev.MemoryEstimated:
    with ctx.reporter.phase("estimate", "estimating memory"):
        return estimate(ctx, ctx.job.config)


def estimate(ctx: JobContext, config: TrainConfig, emit: bool = True) -> ev.MemoryEstimated:
    from mlxtui.core import estimate as est_mod

    ensure_model(ctx)
    profile = est_mod.profile_model(ctx.slot.model)
    inputs = _inputs(ctx, config)
    sample = ctx.engine.sample_memory()  # the telemetry's latest
    available = int(sample.system_available) if sample is not None else None
    est = est_mod.estimate_peak(profile, inputs, available_bytes=available)
    options = tuple(
        (o.label, int(o.estimate_bytes))
        for o in est_mod.suggest_options(profile, inputs, available)
    )
    event = ev.MemoryEstimated(
        total_bytes=int(est.total_bytes),
        breakdown={k: int(v) for k, v in est.breakdown.items()},
        verdict=est.verdict,
        available_bytes=est.available_bytes,
        note=est.note,
        options=options,
    )
    if emit:
        ctx.emit(event)
    return event


def estimated_bytes(ctx: JobContext, config: TrainConfig) -> int | None:
    """The estimated peak, or None when it cannot be estimated (it is advice, never a blocker)."""
    try:
        return estimate(ctx, config).total_bytes
    except Exception:  # noqa: BLE001 - advice only
        traceback.print_exc()
        return None


def suggestions(ctx: JobContext, config: TrainConfig) -> list[str]:
    """What to change to use less memory, each with its estimated peak."""
    from mlxtui.core.memory import format_bytes

    try:
        est = estimate(ctx, config, emit=False)
    except Exception:  # noqa: BLE001 - advice only
        return [
            "halve the batch size",
            "train fewer layers",
            "turn gradient checkpointing on",
            "lower max_seq_length",
        ]
    return [f"{label}: about {format_bytes(b)} peak" for label, b in est.options]


def _inputs(ctx: JobContext, config: TrainConfig) -> Any:
    from mlxtui.core import estimate as est_mod

    keys = config.lora_parameters.get("keys")
    return est_mod.EstimateInputs(
        fine_tune_type=config.fine_tune_type,  # type: ignore[arg-type]
        num_layers=config.num_layers,
        lora_rank=config.lora_rank,
        lora_keys=tuple(keys) if keys else None,
        optimizer=config.optimizer,
        batch_size=config.batch_size,
        token_lengths=tuple(_token_lengths(ctx, config)),
        max_seq_length=config.max_seq_length,
        grad_checkpoint=config.grad_checkpoint,
    )


def _token_lengths(ctx: JobContext, config: TrainConfig) -> list[int]:
    """Real token lengths of the training set (cached per data folder and tokenizer)."""
    from mlxtui.core.datadir import resolve_data_dir
    from mlxtui.core.training import load_datasets

    slot = ctx.slot
    key = (str(config.data), id(slot.tokenizer))
    if slot.train_lengths_for == key and slot.train_lengths:
        return slot.train_lengths
    train, _, _ = load_datasets(config, resolve_data_dir(config.data), slot.tokenizer)
    n = min(len(train), SAMPLE_LENGTHS)
    slot.train_lengths = [len(train[i][0]) for i in range(n)]
    slot.train_lengths_for = key
    return slot.train_lengths
