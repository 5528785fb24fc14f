"""`mlxtui eval` (an adapter against its base: test loss, answers, ROUGE-L) and `mlxtui bench`
(prompt and generation speed). Both load the model and run on the engine thread."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from mlxtui.cli.data import positive_int


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="MLX folder, .gguf file, Hugging Face id, or 'demo' (default: the base model named "
        "in the adapter's adapter_config.json, else demo)",
    )
    p.add_argument(
        "--dequantize",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run a float copy of a quantized model: auto = yes on the CPU back-end, where it is much faster",
    )


def add_eval_parser(sub: Any) -> argparse.ArgumentParser:
    """`mlxtui eval`: test loss/perplexity and answers of the base vs the adapter."""
    p = sub.add_parser("eval", help="compare an adapter with its base: test loss, answers, ROUGE-L")
    _add_model_args(p)
    p.add_argument(
        "--adapter-path",
        required=True,
        help="adapter folder (or one .safetensors checkpoint in it)",
    )
    p.add_argument("--data", default=None, help="data folder with test.jsonl (default: the demo dataset)")
    p.add_argument("--n", type=int, default=20, help="how many test prompts to answer (default 20)")
    p.add_argument("--max-tokens", type=int, default=128, help="answer length limit (default 128)")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--test-batches", type=int, default=-1, help="batches for the test loss (-1 = all)")
    p.add_argument("--max-seq-length", type=positive_int, default=2048)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run_eval)
    return p


def add_bench_parser(sub: Any) -> argparse.ArgumentParser:
    """`mlxtui bench`: generation speed of the base (and of an adapter)."""
    p = sub.add_parser("bench", help="measure prompt and generation speed (tokens/s) and peak memory")
    _add_model_args(p)
    p.add_argument("--adapter-path", default=None, help="also measure with this adapter")
    p.add_argument("--prompt", default=None, help="the prompt to answer (default: a short question about plants)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run_bench)
    return p


# ------------------------------------------------------------------ text tables


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def format_losses(losses: dict[str, tuple[float, float]]) -> str:
    """losses: label -> (loss, ppl)."""
    lines = [f"{'weights':<10} {'test loss':>10} {'test ppl':>10}"]
    for label, (loss, ppl) in losses.items():
        lines.append(f"{label:<10} {loss:>10.4f} {ppl:>10.3f}")
    return "\n".join(lines)


def format_compare(report: Any, width: int = 36) -> str:
    head = f"{'#':>3}  {'prompt':<{width}}  {'base':<{width}} {'R-L':>5}  {'adapter':<{width}} {'R-L':>5}"
    lines = [head, "-" * len(head)]
    for i, r in enumerate(report.rows, start=1):
        lines.append(
            f"{i:>3}  {_cut(r.prompt, width):<{width}}  {_cut(r.base_answer, width):<{width}} {r.base_score:>5.2f}"
            f"  {_cut(r.adapter_answer, width):<{width}} {r.adapter_score:>5.2f}"
        )
    lines.append("-" * len(head))
    pad = 3 + 2 + width + 2 + width
    lines.append(
        f"{'mean ROUGE-L F1':<{pad}} {report.base_mean:>5.3f}  {'':<{width}} {report.adapter_mean:>5.3f}"
    )
    return "\n".join(lines)


def format_bench(results: dict[str, Any]) -> str:
    lines = [f"{'weights':<10} {'prompt tok/s':>18} {'gen tok/s':>18} {'peak GB':>8} {'runs':>5}"]
    for label, r in results.items():
        p = f"{r.prompt_tps_mean:.1f} ± {r.prompt_tps_std:.1f}"
        g = f"{r.gen_tps_mean:.1f} ± {r.gen_tps_std:.1f}"
        lines.append(f"{label:<10} {p:>18} {g:>18} {r.peak_memory_gb:>8.3f} {r.runs:>5}")
    return "\n".join(lines)


# ------------------------------------------------------------------ running


def _errors() -> tuple[type[BaseException], ...]:
    from mlxtui.core.evaluation import EvalError
    from mlxtui.core.models import ModelError
    from mlxtui.core.training import TrainingError

    return (EvalError, ModelError, TrainingError, ValueError, FileNotFoundError, OSError)


def _printer() -> Any:
    from mlxtui.cli.progress import ProgressPrinter

    return ProgressPrinter(sys.stderr, steps_out=sys.stderr)


def _dequantize(args: argparse.Namespace) -> bool:
    from mlxtui.core.models import wants_dequantize

    return wants_dequantize(args.dequantize)


def run_eval(args: argparse.Namespace) -> int:
    from mlxtui.cli.headless import run_job
    from mlxtui.core import evaluation
    from mlxtui.core.engine import EngineError, Evaluate

    printer = _printer()
    failures: tuple[type[BaseException], ...] = (EngineError, *_errors())
    try:
        if args.n < 1 or args.max_tokens < 1:
            raise evaluation.EvalError("--n and --max-tokens must be at least 1")
        if args.data is None:
            from mlxtui.demo_data import demo_data_dir

            args.data = str(demo_data_dir())
        evaluation.load_records(args.data)  # fail on a bad data folder before loading a model
        if args.model is None:
            args.model = evaluation.default_model_for(args.adapter_path)
        t0 = time.perf_counter()
        job = Evaluate(
            data=args.data,
            n=args.n,
            max_tokens=args.max_tokens,
            batch_size=args.batch_size,
            test_batches=args.test_batches,
            max_seq_length=args.max_seq_length,
            model=args.model,
            dequantize=_dequantize(args),
            adapter_path=args.adapter_path,
        )
        result = run_job(job, printer)
        base, tuned = result["losses"]["base"], result["losses"]["adapter"]
        report = result["report"]
    except failures as e:
        print(f"mlxtui eval: error: {e}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    if args.json:
        import json

        out = {
            "model": args.model,
            "adapter_path": args.adapter_path,
            "data": args.data,
            "base": {"test_loss": base[0], "test_ppl": base[1]},
            "adapter": {"test_loss": tuned[0], "test_ppl": tuned[1]},
            "compare": report.to_dict(),
            "seconds": time.perf_counter() - t0,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_losses({"base": base, "adapter": tuned}))
        print()
        print(format_compare(report))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from mlxtui.cli.headless import run_job
    from mlxtui.core import evaluation
    from mlxtui.core.engine import Benchmark, EngineError

    printer = _printer()
    failures: tuple[type[BaseException], ...] = (EngineError, *_errors())
    try:
        if args.runs < 1 or args.max_tokens < 1:
            raise evaluation.EvalError("--runs and --max-tokens must be at least 1")
        if args.model is None:
            args.model = evaluation.default_model_for(args.adapter_path)
        job = Benchmark(
            prompt=args.prompt or evaluation.DEFAULT_BENCH_PROMPT,
            runs=args.runs,
            max_tokens=args.max_tokens,
            model=args.model,
            dequantize=_dequantize(args),
            adapter_path=args.adapter_path,
        )
        results = run_job(job, printer)
    except failures as e:
        print(f"mlxtui bench: error: {e}", file=sys.stderr)
        return 1
    finally:
        printer.close()
    if args.json:
        import json
        from dataclasses import asdict

        print(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2))
    else:
        print(format_bench(results))
    return 0
