"""`mlxtui train`: train headless with mlx_lm.lora's flags, a progress line, Ctrl-C that saves.

The flags, YAML keys and defaults are mlx_lm.lora's (a user's command line means what it
meant there); precedence is defaults < YAML (--config) < flags.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, TextIO

from mlxtui.cli.progress import ProgressPrinter

__all__ = ["ProgressPrinter", "add_parser", "add_train_arguments", "config_from_args", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train headless with a progress bar (mlx_lm.lora compatible flags)")
    add_train_arguments(p)
    p.set_defaults(func=run)
    return p


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """mlx_lm.lora's flags with its names (defaults None: YAML and defaults fill in), plus ours."""
    a = p.add_argument
    a("--model", help="local MLX model folder, .gguf file, Hugging Face id, or 'demo' (default)")
    a("--train", action="store_true", default=None, help="train (the default of `mlxtui train`; accepted for mlx_lm.lora compatibility)")
    a("--data", help="folder with train.jsonl, valid.jsonl, test.jsonl (default: the demo dataset)")
    a("--fine-tune-type", choices=["lora", "dora", "full"], help="lora (QLoRA when the base is quantized), dora or full")
    a("--optimizer", choices=["adam", "adamw", "muon", "sgd", "adafactor"], help="default adam")
    a("--mask-prompt", action="store_true", default=None, help="mask the prompt in the loss")
    a("--num-layers", "--lora-layers", dest="num_layers", type=int, help="last N blocks to fine-tune, -1 = all (mlx-lm default 16; quick start 8)")
    a("--batch-size", type=int, help="examples per step (default 4)")
    a("--iters", type=int, help="optimizer steps (mlx-lm default 1000; quick start 80)")
    a("--epochs", type=int, help="passes over the training set; iterations = ceil(epochs x examples / batch)")
    a("--val-batches", type=int, help="validation batches, -1 = all (default 25; quick start 4)")
    a("--learning-rate", type=float, help="step size (mlx-lm default 1e-5; quick start 2e-4 for a 4-bit base)")
    a("--steps-per-report", type=int, help="report the mean train loss every N steps (default 10)")
    a("--steps-per-eval", type=int, help="validation loss every N steps (default 200)")
    a("--grad-accumulation-steps", type=int, help="steps per optimizer update (default 1)")
    a("--resume-adapter-file", help="start from these adapter weights (as mlx_lm.lora)")
    a("--adapter-path", help="where the final adapter is also written (mlx_lm.lora's folder)")
    a("--save-every", type=int, help="checkpoint every N steps (default 100)")
    a("--test", action="store_true", default=None, help="evaluate on the test set (after training, or alone without --train)")
    a("--test-batches", type=int, help="test batches, -1 = all (default 500)")
    a("--max-seq-length", type=int, help="longer examples are truncated (default 2048; quick start 512)")
    a("-c", "--config", help="a YAML file with the options (mlx_lm.lora --config compatible)")
    a("--grad-checkpoint", action="store_true", default=None, help="recompute activations: less memory, slower")
    a("--clear-cache-threshold", help="clear MLX's cache between steps above this size (e.g. 2GB)")
    a("--report-to", help="accepted for compatibility; mlxtui logs to metrics.jsonl")
    a("--project-name", help="accepted for compatibility")
    a("--seed", type=int, help="random seed (default 0)")
    a("--trust-remote-code", action="store_true", default=None)
    # the seeds' aliases
    a("--lora-rank", type=int, help="LoRA rank (lora_parameters.rank)")
    a("--lora-alpha", type=float, help="PEFT-style alpha: mlx-lm's scale = alpha / rank")
    a("--lora-scale", type=float, help="mlx-lm's LoRA scale (lora_parameters.scale)")
    a("--lora-dropout", type=float, help="LoRA dropout (lora_parameters.dropout)")
    a("--warmup", type=int, help="linear learning-rate warmup steps")
    # mlxtui's own
    a("--lr-phases", help="multi-phase schedule ITERS:LR,... e.g. 400:2e-5,400:1e-5,200:2e-6")
    a("--dequantize", choices=["auto", "yes", "no"], help="train a float copy of a quantized base (auto: yes on CPU)")
    a("--early-stopping-patience", type=int, help="evaluations without improvement before stopping (0 = off)")
    a("--early-stopping-min-delta", type=float, help="smallest val-loss drop that counts")
    a("--memory-guard", choices=["pause", "warn", "off"], help="when swap grows or pressure turns red (default pause)")
    a("--memory-limit", help="mx.set_memory_limit, e.g. 12GB")
    a("--cache-limit", help="mx.set_cache_limit, e.g. 2GB")
    a("--sample-prompts", type=int, help="held-out prompts answered at each evaluation (0 = off)")
    a("--runs-dir", help="where run folders go (default ./runs)")
    a("--run-name", help="runs/<timestamp>-<name>")
    a("--resume", dest="resume_run", help="continue a run folder exactly where it stopped")


_FLAG_FIELDS = (
    "model data train fine_tune_type optimizer mask_prompt num_layers batch_size iters epochs val_batches "
    "learning_rate steps_per_report steps_per_eval grad_accumulation_steps resume_adapter_file adapter_path "
    "save_every test test_batches max_seq_length grad_checkpoint clear_cache_threshold report_to project_name "
    "seed trust_remote_code lr_phases dequantize early_stopping_patience early_stopping_min_delta memory_guard "
    "memory_limit cache_limit sample_prompts runs_dir run_name resume_run warmup"
).split()


def given_train_flags(args: argparse.Namespace) -> bool:
    """Whether any train flag (or --config) was given on this command line."""
    extra = ["config", "lora_rank", "lora_alpha", "lora_scale", "lora_dropout"]
    return any(getattr(args, k, None) is not None for k in _FLAG_FIELDS + extra)


def config_from_args(args: argparse.Namespace) -> Any:
    """Defaults < YAML < flags, as in mlx_lm.lora; the demo profile when neither model nor config is given."""
    from mlxtui.core.config import ConfigError, TrainConfig, from_dict, load_config, load_yaml

    yaml_values: dict[str, Any] = load_yaml(args.config) if args.config else {}
    flags = {k: getattr(args, k) for k in _FLAG_FIELDS if getattr(args, k, None) is not None}
    lora: dict[str, Any] = {}
    if args.lora_rank is not None:
        lora["rank"] = args.lora_rank
    if args.lora_scale is not None:
        lora["scale"] = args.lora_scale
    if args.lora_dropout is not None:
        lora["dropout"] = args.lora_dropout
    if args.lora_alpha is not None:
        lora["alpha"] = args.lora_alpha  # becomes scale = alpha / rank in from_dict
    for where, values in (("the command line", flags), (str(args.config), yaml_values)):
        if "epochs" in values and "iters" in values:
            raise ConfigError(
                f"{where}: both epochs and iters are given; epochs would decide the length, "
                "so give only one of them"
            )
    resume = getattr(args, "resume_run", None)
    uses_demo = not args.config and args.model in (None, "demo") and args.data is None
    if resume:
        # a resumed run keeps its own settings; only what is given now changes them
        from pathlib import Path

        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume {resume}: no config.yaml there; give a run folder that `mlxtui runs` lists")
        base = load_config(saved)
    else:
        base = TrainConfig.quick_start() if uses_demo else TrainConfig()
    cfg = from_dict(yaml_values, base=base, where=str(args.config)) if yaml_values else base
    if lora:
        merged = dict(cfg.lora_parameters)
        merged.pop("alpha", None)
        merged.update(lora)
        flags["lora_parameters"] = merged
    return from_dict(flags, base=cfg, where="the command line")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from mlxtui.core.config import ConfigError
    from mlxtui.core.engine import EngineError
    from mlxtui.pipeline import TrainPipeline

    try:
        config = config_from_args(args)
    except ConfigError as e:
        print(f"mlxtui train: {e}", file=sys.stderr)
        return 2
    if config.test and args.train is None and (not args.config or not config.train):
        if args.train is None and args.iters is None and args.epochs is None and not _yaml_says_train(args):
            return _test_only(config, out)
    printer = ProgressPrinter(out)
    _say_blas(out)
    pipeline = TrainPipeline(config, on_event=printer)
    interrupted = {"n": 0, "at": 0.0}

    def on_signal(signum: int, frame: Any) -> None:
        now = time.monotonic()
        # `uv run` forwards the terminal's SIGINT to us as well: one press can arrive twice
        if interrupted["n"] and now - interrupted["at"] < 1.0:
            return
        interrupted["n"] += 1
        interrupted["at"] = now
        if interrupted["n"] > 1:
            print("\nsecond Ctrl-C: exiting without waiting (the last checkpoint is kept)", file=sys.stderr)
            os._exit(130)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\n{name}: stopping after step {printer.iteration} and saving the adapter (Ctrl-C again to quit now)",
            file=sys.stderr,
        )
        pipeline.stop()

    handled = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        result = pipeline.execute()
    except (EngineError, ConfigError) as e:
        print(f"mlxtui train: {e}", file=sys.stderr)
        hint = getattr(e, "hint", "")
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return 1
    finally:
        printer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interrupted["n"]:
        print(f"saved: {result.adapter_path}; resume with: mlxtui train --resume {result.run_dir}", file=out)
        return 130
    return 0 if result.status in ("completed", "early_stopped", "stopped") else 1


def _say_blas(out: TextIO) -> None:
    """Linux CPU: say which BLAS MLX uses (the reference one is ~20x slower)."""
    if sys.platform != "linux":
        return
    from mlxtui.core.blas import blas_status

    status = blas_status()
    if status.kind == "cuBLAS":
        return
    line = f"MLX CPU back-end with {status.kind}"
    if status.path and "openblas" in status.kind:
        line += f" ({status.path})"
    print(line + (f"; {status.advice}" if status.advice else ""), file=out)


def _yaml_says_train(args: argparse.Namespace) -> bool:
    if not args.config:
        return False
    from mlxtui.core.config import load_yaml

    return bool(load_yaml(args.config).get("train", False))


def _test_only(config: Any, out: TextIO) -> int:
    """`--test` without `--train`: evaluate the adapter in --adapter-path (mlx_lm.lora's behaviour)."""
    from mlxtui.core.engine import EngineError
    from mlxtui.pipeline import evaluate_test_set

    try:
        loss, ppl = evaluate_test_set(config)
    except EngineError as e:
        print(f"mlxtui train --test: {e}", file=sys.stderr)
        return 1
    print(f"Test loss {loss:.3f}, Test ppl {ppl:.3f}.", file=out)
    return 0


