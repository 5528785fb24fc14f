"""Evaluate an adapter against its base: test loss and perplexity, answers side by side, speed.

The MLX functions run on the engine thread. The base is the same model with its adapter
switched off (`adapter_disabled`), so no second copy is loaded.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlxtui.core.generation import (
    adapter_disabled,
    generate_reply,
    has_adapter,
    read_adapter_config,
)
from mlxtui.core.progress import Reporter, optional_phase

Progress = Callable[[str, int, int], None]
DEFAULT_BENCH_PROMPT = "Explain in a few sentences how a plant takes up water through its roots."


class EvalError(ValueError):
    """Evaluation cannot run; the message says what is missing and what to do."""


# ------------------------------------------------------------------ data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a bad line is an error naming file:line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise EvalError(f"{path}:{lineno}: expected a JSON object per line")
            records.append(rec)
    return records


def split_file(data_dir: Path | str, split: str = "test") -> Path:
    path = Path(data_dir).expanduser() / f"{split}.jsonl"
    if not path.is_file():
        raise EvalError(
            f"{path} does not exist; a data folder holds train.jsonl, valid.jsonl and test.jsonl"
        )
    return path


def load_records(data_dir: Path | str, split: str = "test") -> list[dict[str, Any]]:
    records = read_jsonl(split_file(data_dir, split))
    if not records:
        raise EvalError(f"{split_file(data_dir, split)} is empty")
    return records


def prompt_and_reference(record: dict[str, Any]) -> tuple[list[dict[str, str]], str] | None:
    """(messages up to the last assistant turn, that turn's text); None for plain text records."""
    if isinstance(record.get("messages"), list):
        msgs = record["messages"]
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            return None
        return [{"role": m["role"], "content": m.get("content") or ""} for m in msgs[:last]], msgs[
            last
        ].get("content") or ""
    if "prompt" in record and "completion" in record:
        return [{"role": "user", "content": str(record["prompt"])}], str(record["completion"])
    return None


# ------------------------------------------------------------------ test loss


def test_loss_and_ppl(
    model: Any,
    tokenizer: Any,
    data_dir: Path | str,
    *,
    batch_size: int = 4,
    num_batches: int = -1,
    max_seq_length: int = 2048,
    mask_prompt: bool = False,
    split: str = "test",
    reporter: Reporter | None = None,
    label: str = "test loss",
) -> tuple[float, float]:
    """Mean token loss and perplexity on `split`.jsonl, computed as mlx-lm's `evaluate` does.

    With a reporter, the batches are the phase "evaluate" (k of n, a safe point after each).
    """
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset

    from mlxtui.core.training.loss import batch_count, test_loss

    path = split_file(data_dir, split)
    records = load_records(data_dir, split)
    keys = SimpleNamespace(mask_prompt=mask_prompt)
    try:
        dataset = CacheDataset(create_dataset(records, tokenizer, keys))
    except (ValueError, KeyError) as e:
        raise EvalError(f"{path}: {e}") from None
    model.eval()
    total = batch_count(dataset, batch_size, num_batches)
    with optional_phase(reporter, "evaluate", label, total) as phase:
        on_batch = phase.advance if phase is not None else None
        return test_loss(model, dataset, batch_size, num_batches, max_seq_length, on_batch)


test_loss_and_ppl.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


# ------------------------------------------------------------------ before / after


@dataclass(frozen=True)
class CompareRow:
    prompt: str
    reference: str
    base_answer: str
    adapter_answer: str
    base_score: float  # ROUGE-L F1 against the reference, 0..1
    adapter_score: float


@dataclass(frozen=True)
class CompareReport:
    rows: tuple[CompareRow, ...]
    base_mean: float
    adapter_mean: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rouge_l(reference: str, answer: str) -> float:
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(scorer.score(reference, answer)["rougeL"].fmeasure)


def before_after(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    n: int = 20,
    max_tokens: int = 128,
    *,
    progress: Progress | None = None,
    reporter: Reporter | None = None,
) -> CompareReport:
    """Greedy answers of the base and of the adapter to the first `n` usable records, scored.

    With a reporter, each set of answers is the phase "evaluate" (answer k of n) and every
    generated token passes a safe point (a cancel stops between two tokens).
    """
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    if not has_adapter(model):
        raise EvalError(
            "the model has no adapter loaded: load one (--adapter-path) before comparing"
        )
    items = [pr for pr in map(prompt_and_reference, records) if pr is not None][: max(n, 0)]
    if not items:
        raise EvalError(
            "no record has a prompt and a reference answer (chat with an assistant turn, or prompt/completion)"
        )
    total = 2 * len(items)

    def answers(label: str, offset: int) -> list[str]:
        out = []
        with optional_phase(reporter, "evaluate", f"{label} answers", len(items)) as phase:

            def safe_point() -> bool:
                if phase is not None:
                    phase.check()  # raises progress.Interrupted on a cancel
                return False

            for i, (msgs, _) in enumerate(items):
                if progress is not None:
                    progress(f"{label} answer {i + 1}/{len(items)}", offset + i, total)
                text, _last = generate_reply(
                    model,
                    tokenizer,
                    msgs,
                    temperature=0.0,
                    max_tokens=max_tokens,
                    should_stop=safe_point,
                )
                out.append(text.strip())
                if phase is not None:
                    phase.advance()
        return out

    with adapter_disabled(model):
        base = answers("base", 0)
    tuned = answers("adapter", len(items))
    if progress is not None:
        progress("scored", total, total)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = []
    for (msgs, ref), a, b in zip(items, base, tuned, strict=True):
        rows.append(
            CompareRow(
                prompt=msgs[-1]["content"],
                reference=ref,
                base_answer=a,
                adapter_answer=b,
                base_score=float(scorer.score(ref, a)["rougeL"].fmeasure),
                adapter_score=float(scorer.score(ref, b)["rougeL"].fmeasure),
            )
        )
    return CompareReport(
        rows=tuple(rows),
        base_mean=statistics.fmean(r.base_score for r in rows),
        adapter_mean=statistics.fmean(r.adapter_score for r in rows),
    )


# ------------------------------------------------------------------ speed


@dataclass(frozen=True)
class BenchResult:
    prompt_tps_mean: float
    prompt_tps_std: float
    gen_tps_mean: float
    gen_tps_std: float
    peak_memory_gb: float
    runs: int
    prompt_tokens: int = 0
    generation_tokens: float = 0.0  # mean per run (a run may stop early at EOS)


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def benchmark(
    model: Any,
    tokenizer: Any,
    prompt: str = DEFAULT_BENCH_PROMPT,
    runs: int = 5,
    max_tokens: int = 128,
    *,
    warmup: int = 1,
) -> BenchResult:
    """Prompt and generation tokens/s over `runs` greedy answers, after `warmup` unmeasured ones."""
    import mlx.core as mx

    if runs < 1:
        raise EvalError(f"runs must be at least 1, not {runs}")
    msgs = [{"role": "user", "content": prompt}]
    for _ in range(warmup):
        generate_reply(model, tokenizer, msgs, temperature=0.0, max_tokens=min(max_tokens, 8))
    mx.reset_peak_memory()
    p_tps, g_tps, g_toks = [], [], []
    prompt_tokens = 0
    for _ in range(runs):
        _, last = generate_reply(model, tokenizer, msgs, temperature=0.0, max_tokens=max_tokens)
        p_tps.append(last.prompt_tps)
        g_tps.append(last.generation_tps)
        g_toks.append(float(last.generation_tokens))
        prompt_tokens = last.prompt_tokens
    return BenchResult(
        prompt_tps_mean=statistics.fmean(p_tps),
        prompt_tps_std=_std(p_tps),
        gen_tps_mean=statistics.fmean(g_tps),
        gen_tps_std=_std(g_tps),
        peak_memory_gb=mx.get_peak_memory() / 1e9,
        runs=runs,
        prompt_tokens=prompt_tokens,
        generation_tokens=statistics.fmean(g_toks),
    )


def benchmark_base_and_adapter(
    model: Any,
    tokenizer: Any,
    prompt: str = DEFAULT_BENCH_PROMPT,
    runs: int = 5,
    max_tokens: int = 128,
    on_done: Callable[[], None] | None = None,
) -> tuple[BenchResult, BenchResult]:
    """(base, adapter) speed on the same model, the base with its adapter switched off.

    `on_done` runs after each of the two measurements (progress, a safe point)."""
    if not has_adapter(model):
        raise EvalError(
            "the model has no adapter loaded: load one before benchmarking base vs adapter"
        )
    with adapter_disabled(model):
        base = benchmark(model, tokenizer, prompt, runs, max_tokens)
    if on_done is not None:
        on_done()
    tuned = benchmark(model, tokenizer, prompt, runs, max_tokens)
    if on_done is not None:
        on_done()
    return base, tuned


def default_model_for(adapter_path: str | Path | None) -> str:
    """The base an adapter was trained on (its adapter_config.json "model"), else "demo".

    As `mlxtui fuse` does: evaluating an adapter on another base only fails with a shape error.
    """
    if adapter_path:
        try:
            model = read_adapter_config(Path(adapter_path).expanduser()).get("model")
        except (OSError, ValueError):
            model = None  # load_adapter_file reports the adapter's problem with its path
        if isinstance(model, str) and model:
            return model
    return "demo"
