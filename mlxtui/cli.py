"""Entry points: `mlxtui` (dashboard), `mlxtui train` (headless), and the tool subcommands."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

SUBCOMMANDS = ("train", "doctor", "data", "models", "fuse", "export", "eval", "bench", "runs", "dashboard")


# ------------------------------------------------------------------ train flags


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


# ------------------------------------------------------------------ headless train


class ProgressPrinter:
    """The headless subscriber: a one-line progress bar on a TTY, plain lines otherwise."""

    def __init__(self, out: TextIO = sys.stdout, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.total = 0
        self.last_val: float | None = None
        self.last_line = 0.0
        self.iteration = 0
        self.run_dir = ""

    def __call__(self, e: Any) -> None:
        from mlxtui.core import events as ev

        if isinstance(e, ev.TrainStarted):
            self.total = e.total_iters
            self.run_dir = e.run_dir
            self._line(
                f"training {e.fine_tune_type}: {e.trainable_parameters:,} of {e.total_parameters:,} parameters "
                f"trainable, steps {e.start_iter + 1}..{e.total_iters}, run folder {e.run_dir}"
            )
        elif isinstance(e, ev.TrainStep):
            self.iteration = e.iteration
            if self.tty:
                self._bar(e)
        elif isinstance(e, ev.TrainReport):
            if not self.tty:
                self._line(
                    f"step {e.iteration}/{e.total_iters}: train loss {e.train_loss:.4f}, lr {e.learning_rate:.2e}, "
                    f"{e.tokens_per_second:.0f} tok/s, peak {e.peak_memory:.2f} GB"
                )
        elif isinstance(e, ev.ValReport):
            self.last_val = e.val_loss
            best = " (best)" if e.is_best else ""
            self._line(f"step {e.iteration}: val loss {e.val_loss:.4f}{best} ({e.val_time:.1f} s)")
        elif isinstance(e, ev.SamplePredictions):
            for item in e.items[:1]:
                self._line(f"  sample @ {e.iteration}: {item.prompt!r} -> {item.answer[:100]!r}")
        elif isinstance(e, ev.CheckpointSaved) and e.kind in ("best", "periodic") and not e.path.endswith("/adapters.safetensors"):
            self._line(f"step {e.iteration}: saved {e.kind} checkpoint {e.path}")
        elif isinstance(e, ev.TrainPaused):
            self._line(f"paused at step {e.iteration}: {e.message}")
        elif isinstance(e, ev.TrainResumed):
            self._line(f"continuing at step {e.iteration}")
        elif isinstance(e, ev.MemoryAlert):
            self._line(f"memory {e.level}: {e.message}")
            for s in e.suggestions:
                self._line(f"  - {s}")
        elif isinstance(e, ev.Log):
            self._line(f"{e.level}: {e.message}")
        elif isinstance(e, ev.TestResult):
            self._line(f"test loss {e.test_loss:.4f}, test ppl {e.test_ppl:.3f}")
        elif isinstance(e, ev.JobProgress):
            self._line(e.message)
        elif isinstance(e, ev.TrainFinished):
            self._line(_finish_line(e))

    def _bar(self, e: Any) -> None:
        now = time.monotonic()
        if now - self.last_line < 0.2 and e.iteration != e.total_iters:
            return
        self.last_line = now
        width = 24
        filled = int(width * e.iteration / max(1, e.total_iters))
        eta = _fmt_eta(e.eta_seconds)
        val = f" val {self.last_val:.3f}" if self.last_val is not None else ""
        text = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {e.iteration}/{e.total_iters} loss {e.loss:.3f}{val} "
            f"{e.tokens_per_second:.0f} tok/s ETA {eta} peak {e.peak_memory:.2f} GB"
        )
        self.out.write(text.ljust(100)[:120])
        self.out.flush()
        self._bar_open = True

    def _line(self, text: str) -> None:
        if self.tty and getattr(self, "_bar_open", False):
            self.out.write("\r" + " " * 110 + "\r")
            self._bar_open = False
        self.out.write(text + "\n")
        self.out.flush()


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _finish_line(e: Any) -> str:
    where = f"adapter in {e.adapter_path}"
    if e.status == "completed":
        head = f"done: {e.final_iteration}/{e.total_iters} steps"
    elif e.status == "early_stopped":
        head = f"stopped early at step {e.final_iteration}: {e.message}"
    elif e.status == "stopped":
        head = f"stopped at step {e.final_iteration} of {e.total_iters}; resume with: mlxtui train --resume {e.run_dir}"
    else:
        head = f"failed at step {e.final_iteration}: {e.message}"
    best = f", best val loss {e.best_val_loss:.4f} at step {e.best_iteration}" if e.best_val_loss is not None else ""
    return f"{head}{best}; {where}"


def cmd_train(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
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


# ------------------------------------------------------------------ runs


def cmd_runs(args: argparse.Namespace) -> int:
    from mlxtui.core.runs import list_runs

    runs = list_runs(args.runs_dir)
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    width = max(len(r.name) for r in runs)
    for r in runs:
        best = f"{r.best_val_loss:.4f}" if r.best_val_loss is not None else "-"
        print(f"{r.name:{width}}  {r.status:14} {r.iteration:>6}/{r.total_iters:<6} best val {best}")
    return 0


# ------------------------------------------------------------------ parser


def _optional(module: str, adder: str) -> Callable[[Any], Any] | None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, adder, None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlxtui",
        description="A terminal dashboard for fine-tuning language models with MLX.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    dash = sub.add_parser("dashboard", help="open the dashboard (the default)")
    add_train_arguments(dash)
    dash.add_argument("--theme", help="theme name (see themes/)")
    train = sub.add_parser("train", help="train headless with a progress bar (mlx_lm.lora compatible flags)")
    add_train_arguments(train)
    runs = sub.add_parser("runs", help="list run folders")
    runs.add_argument("--runs-dir", default="runs")
    for module, adder in (
        ("mlxtui.core.doctor", "add_doctor_parser"),
        ("mlxtui.core.data.cli", "add_data_parser"),
        ("mlxtui.core.models", "add_models_parser"),
        ("mlxtui.core.export", "add_fuse_parser"),
        ("mlxtui.core.export", "add_export_parser"),
        ("mlxtui.core.evaluation", "add_eval_parser"),
        ("mlxtui.core.evaluation", "add_bench_parser"),
    ):
        add = _optional(module, adder)
        if add is not None:
            add(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    import importlib

    cmd = args.command
    if cmd == "train":
        return cmd_train(args)
    if cmd == "runs":
        return cmd_runs(args)
    if cmd in (None, "dashboard"):
        return cmd_dashboard(args)
    table = {
        "doctor": ("mlxtui.core.doctor", "cmd_doctor"),
        "data": ("mlxtui.core.data.cli", "cmd_data"),
        "models": ("mlxtui.core.models", "cmd_models"),
        "fuse": ("mlxtui.core.export", "cmd_fuse"),
        "export": ("mlxtui.core.export", "cmd_export"),
        "eval": ("mlxtui.core.evaluation", "cmd_eval"),
        "bench": ("mlxtui.core.evaluation", "cmd_bench"),
    }
    module, name = table[cmd]
    return int(getattr(importlib.import_module(module), name)(args))


def cmd_dashboard(args: argparse.Namespace) -> int:
    from mlxtui.core.config import ConfigError, TrainConfig

    if hasattr(args, "config") and any(getattr(args, k, None) is not None for k in _FLAG_FIELDS + ["config"]):
        try:
            config = config_from_args(args)
        except ConfigError as e:
            print(f"mlxtui: {e}", file=sys.stderr)
            return 2
    else:
        config = TrainConfig.quick_start()
    from mlxtui.tui import run_dashboard

    return int(run_dashboard(config, theme=getattr(args, "theme", None)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help", "--version"):
        argv = ["dashboard", *argv]
    _maybe_fast_blas(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"mlxtui {version('mlxtui')}")
        return 0
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `mlxtui data stats … | head`: the reader left; not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _maybe_fast_blas(argv: list[str]) -> None:
    """On Linux CPU, re-exec with OpenBLAS preloaded when it is installed (DESIGN.md: ~20x)."""
    try:
        from mlxtui.core.blas import maybe_reexec_with_openblas
    except ImportError:
        return
    maybe_reexec_with_openblas(["-m", "mlxtui", *argv])


if __name__ == "__main__":
    sys.exit(main())
