"""`mlxtui generate`: answer one prompt, streamed, with mlx_lm.generate's flags and defaults.

It runs on the engine like the chat: a LoadModel job (with the adapter), then a Generate job
whose GenerationToken events are written to stdout as they arrive. `--seed` and
`--extra-eos-token` act through Call jobs on the engine thread (the random state and the
loaded tokenizer live there). The mlx-lm-style statistics go to stderr, so stdout is the answer.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# mlx_lm.generate's defaults (mlx-lm 0.32.2), repeated so `--help` imports nothing heavy
DEFAULT_PROMPT = "hello"
DEFAULT_MAX_TOKENS = 100
DEFAULT_TEMP = 0.0
DEFAULT_TOP_P = 1.0
DEFAULT_MIN_P = 0.0
DEFAULT_TOP_K = 0


def _bool_text(text: str) -> bool:
    """mlx_lm.generate's --verbose: 'True'/'T' or 'False'/'F' (any case)."""
    low = text.strip().lower()
    if low in ("true", "t", "yes", "1"):
        return True
    if low in ("false", "f", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected True/T or False/F, not {text!r}")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "generate",
        help="answer one prompt with a model (and adapter), streamed (mlx_lm.generate's flags)",
        description="Answer one prompt, streamed to stdout; statistics go to stderr. "
        "Flags and defaults are mlx_lm.generate's.",
    )
    p.add_argument(
        "--model",
        default=None,
        help="MLX folder, .gguf file, Hugging Face id, or 'demo' (default: the base model named "
        "in the adapter's adapter_config.json, else demo)",
    )
    p.add_argument(
        "--adapter-path",
        default=None,
        help="adapter folder (adapters.safetensors + adapter_config.json)",
    )
    p.add_argument(
        "--prompt",
        "-p",
        default=DEFAULT_PROMPT,
        help=f"the message to answer ('-' reads it from stdin; default: {DEFAULT_PROMPT!r})",
    )
    p.add_argument("--system-prompt", default=None, help="system prompt for the chat template")
    p.add_argument(
        "--max-tokens",
        "-m",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"most tokens to generate (default {DEFAULT_MAX_TOKENS})",
    )
    p.add_argument(
        "--temp",
        type=float,
        default=DEFAULT_TEMP,
        help=f"sampling temperature; 0 is greedy (default {DEFAULT_TEMP})",
    )
    p.add_argument(
        "--top-p",
        type=float,
        default=DEFAULT_TOP_P,
        help=f"sampling top-p (default {DEFAULT_TOP_P})",
    )
    p.add_argument(
        "--min-p",
        type=float,
        default=DEFAULT_MIN_P,
        help=f"sampling min-p: drop tokens below this share of the likeliest one's probability "
        f"(default {DEFAULT_MIN_P}: off)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"sample only among the k likeliest tokens (default {DEFAULT_TOP_K}: off; 1 is greedy)",
    )
    p.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="divide the scores of tokens among the last --repetition-context-size by this, "
        "1-2 (default 1: off; 1.1-1.3 calms an adapter that repeats itself; mlx-lm server's "
        "repetition_penalty)",
    )
    p.add_argument(
        "--repetition-context-size",
        type=int,
        default=20,
        help="how many of the last tokens the repetition penalty looks at (default 20)",
    )
    p.add_argument(
        "--ignore-chat-template",
        action="store_true",
        help="send the prompt as it is, without the tokenizer's chat template",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="PRNG seed (same seed, same sampled answer)"
    )
    p.add_argument(
        "--extra-eos-token",
        nargs="+",
        default=(),
        help="more tokens that end the answer",
    )
    p.add_argument(
        "--verbose",
        type=_bool_text,
        default=True,
        help="'True' (default): statistics on stderr after the answer; 'False': only the answer",
    )
    p.set_defaults(func=run)
    return p


def read_prompt(prompt: str) -> str:
    """As mlx_lm.generate: literal \\n and \\t become newline and tab; '-' reads stdin."""
    prompt = prompt.replace("\\n", "\n").replace("\\t", "\t")
    return sys.stdin.read() if prompt == "-" else prompt


def format_stats(done: Any) -> str:
    """mlx_lm.generate's closing lines, from a GenerationDone event."""
    return (
        f"Prompt: {done.prompt_tokens} tokens, {done.prompt_tps:.3f} tokens-per-sec\n"
        f"Generation: {done.generation_tokens} tokens, {done.generation_tps:.3f} tokens-per-sec\n"
        f"Peak memory: {done.peak_memory:.3f} GB"
    )


def _check(args: argparse.Namespace) -> str | None:
    if args.max_tokens < 1:
        return f"--max-tokens must be at least 1, not {args.max_tokens}"
    if args.temp < 0:
        return f"--temp must be 0 (greedy) or more, not {args.temp}"
    if not 0 < args.top_p <= 1:
        return f"--top-p must be in (0, 1], not {args.top_p}"
    if not 0 <= args.min_p <= 1:
        return f"--min-p must be in [0, 1] (0: off), not {args.min_p}"
    if args.top_k < 0:
        return f"--top-k must be 0 (off) or more, not {args.top_k}"
    from mlxtui.core.generation import repetition_problem

    flags = ("--repetition-penalty", "--repetition-context-size")
    problem = repetition_problem(args.repetition_penalty, args.repetition_context_size, flags)
    if problem:
        return problem
    if args.ignore_chat_template and args.system_prompt is not None:
        return (
            "--system-prompt needs the chat template: leave out --ignore-chat-template, "
            "or write the system text into --prompt"
        )
    return None


def run(args: argparse.Namespace) -> int:
    from mlxtui.cli.progress import ProgressPrinter
    from mlxtui.core import events as ev
    from mlxtui.core.engine import Call, Engine, EngineError, Generate, LoadModel
    from mlxtui.core.evaluation import default_model_for

    problem = _check(args)
    if problem:
        print(f"mlxtui generate: error: {problem}", file=sys.stderr)
        return 2
    prompt = read_prompt(args.prompt)
    model = args.model or default_model_for(args.adapter_path)
    messages = (
        [{"role": "system", "content": args.system_prompt}]
        if args.system_prompt is not None
        else []
    )
    messages.append({"role": "user", "content": prompt})

    printer = ProgressPrinter(sys.stderr, steps_out=sys.stderr)
    finished: list[Any] = []

    def sink(e: Any) -> None:
        if isinstance(e, ev.GenerationToken):
            sys.stdout.write(e.text)
            sys.stdout.flush()
        elif isinstance(e, ev.GenerationDone):
            finished.append(e)
        else:
            printer(e)

    engine = Engine(sink)
    engine.start()
    try:
        engine.run_sync(LoadModel(spec=model, adapter_path=args.adapter_path))
        if args.extra_eos_token:
            tokens = list(args.extra_eos_token)
            engine.run_sync(Call(fn=lambda eng: _add_eos(eng, tokens), description="extra eos"))
        if args.seed is not None:
            engine.run_sync(Call(fn=lambda eng: _seed(args.seed), description="seed"))
        printer.close()  # the answer owns stdout from here; no progress line redrawn over it
        engine.run_sync(
            Generate(
                messages=messages,
                temperature=args.temp,
                top_p=args.top_p,
                max_tokens=args.max_tokens,
                weights="adapter" if args.adapter_path else "base",
                min_p=args.min_p,
                top_k=args.top_k,
                ignore_chat_template=args.ignore_chat_template,
                repetition_penalty=args.repetition_penalty,
                repetition_context_size=args.repetition_context_size,
            )
        )
    except EngineError as e:
        sys.stdout.flush()
        # the message names what and where; the engine's hint speaks of the dashboard's fields
        print(f"mlxtui generate: error: {e}", file=sys.stderr)
        return 1
    finally:
        printer.close()
        engine.shutdown()
    sys.stdout.write("\n")
    sys.stdout.flush()
    if args.verbose and finished:
        print("=" * 10, file=sys.stderr)
        print(format_stats(finished[-1]), file=sys.stderr)
    return 0


def _add_eos(engine: Any, tokens: list[str]) -> None:
    """mlx-lm's add_eos_token on the loaded tokenizer (engine thread); an unknown token is refused."""
    from mlxtui.core.engine import EngineError

    for token in tokens:
        try:
            engine.tokenizer.add_eos_token(token)
        except (ValueError, KeyError) as e:
            raise EngineError(
                f"--extra-eos-token {token!r} is not a token of this model's tokenizer ({e}); "
                "give a token as the vocabulary spells it, or its id"
            ) from None


def _seed(seed: int) -> None:
    from mlxtui.core.generation import seed_random

    seed_random(seed)
