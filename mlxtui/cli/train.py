"""`mlxtui train`: train headless with mlx_lm.lora's flags, a progress line, Ctrl-C that saves.

The flags, YAML keys and defaults are mlx_lm.lora's (a user's command line means what it
meant there); precedence is defaults < YAML (--config) < flags.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from typing import Any, TextIO

from mlxtui.cli.errors import COMMAND_LINE, config_error_text
from mlxtui.cli.progress import ProgressPrinter

# mlx_lm.lora's default --data; used when it holds a train.jsonl, else the demo dataset
MLX_LM_DATA = "data"

# Exit statuses: a script must tell a run that ended well from one that stopped by itself
# (nobody is there to continue a headless run after a NaN or a peak past memory_limit).
EXIT_TRAINED = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_DIVERGED = 3
EXIT_MEMORY_LIMIT = 4
EXIT_INTERRUPTED = 130
EXIT_STATUSES = (
    f"exit status: {EXIT_TRAINED} trained (to the last step, or stopped early by "
    f"--early-stopping-patience); {EXIT_FAILED} failed (the error is printed); "
    f"{EXIT_BAD_SETTINGS} a bad flag, YAML key or value; {EXIT_DIVERGED} the loss became NaN "
    "or infinite, so the run stopped (the last good checkpoint is kept: lower --learning-rate "
    f"or set --max-grad-norm, then --resume); {EXIT_MEMORY_LIMIT} the peak memory passed "
    "--memory-limit, so the run stopped and saved (--resume with a smaller --batch-size or "
    f"--max-seq-length); {EXIT_INTERRUPTED} stopped by Ctrl-C, SIGTERM or SIGHUP (the adapter "
    "is saved; --resume continues). With --nproc or --hosts: rank 0's status, or "
    f"{EXIT_FAILED} when another rank failed (the message names it and its code)"
)

__all__ = ["ProgressPrinter", "add_parser", "add_train_arguments", "config_from_args", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        # `python -m mlx_lm lora ...` from a guide reads `mlxtui lora ...`
        aliases=["lora"],
        help="train headless with a progress bar (mlx_lm.lora compatible flags; alias: lora)",
        description="Train headless. Flags and YAML keys are mlx_lm.lora's; without --model, --data "
        "or --config the quick-start profile (the demo model and dataset) is used.",
        epilog=EXIT_STATUSES,
    )
    add_train_arguments(p)
    p.add_argument(
        "--prompt",
        default=None,
        help="answer this prompt with --model and --adapter-path instead of training, as `mlxtui "
        "generate` does (the fine-tuning skill's `python -m mlx_lm lora ... --prompt` line)",
    )
    p.set_defaults(func=run)
    return p


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Every setting of the table in mlxtui.core.config that has a flag, plus -c/--config.

    Defaults stay None, so a flag that is not given leaves the YAML's value or the default
    (mlx_lm.lora's precedence); the help says the default instead.
    """
    from mlxtui.core.config import SETTINGS, TrainConfig

    defaults, quick = TrainConfig(), TrainConfig.quick_start()
    p.add_argument("-c", "--config", help="a YAML file with the options (mlx_lm.lora --config compatible)")
    for spec in SETTINGS:
        if not spec.flags:
            continue
        help_text = (spec.help + _default_note(spec, defaults, quick)).replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": spec.flag_dest, "help": help_text}
        if spec.kind == "bool":
            kwargs.update(action="store_true", default=None)
        elif spec.kind in ("int", "optional_int"):
            kwargs["type"] = int
        elif spec.kind in ("float", "optional_float"):
            kwargs["type"] = float
        elif spec.kind == "choice" and spec.name == "lr_schedule_name":
            kwargs.update(type=_schedule_arg, metavar="{" + ",".join(spec.choices) + ",ITERS:LR,...}")
        elif spec.kind == "choice":
            kwargs["choices"] = spec.choices
        p.add_argument(*spec.flags, **kwargs)


def _schedule_arg(text: str) -> str:
    """--lr-schedule: a schedule's name, or phases as the seeds write them ("400:2e-5,400:1e-5")."""
    from mlxtui.core.config import validate_field

    value, error = validate_field("lr_schedule_name", text)
    if error:
        raise argparse.ArgumentTypeError(f"{error} (or phases ITERS:LR,..., e.g. 400:2e-5,400:1e-5,200:2e-6)")
    return str(value)


def _default_note(spec: Any, defaults: Any, quick: Any) -> str:
    """' (default 4)', or both values when the quick start differs from mlx-lm's default."""
    from mlxtui.core.config import get_field

    if spec.kind == "bool":
        return ""
    mlx_lm, ours = get_field(defaults, spec.name), get_field(quick, spec.name)
    if mlx_lm is None or mlx_lm == "":
        return ""
    if ours != mlx_lm:
        return f" (default {_show(mlx_lm)}; quick start {_show(ours)})"
    return f" (default {_show(mlx_lm)})"


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags on this command line, by setting name."""
    from mlxtui.core.config import SETTINGS

    return {
        spec.name: getattr(args, spec.flag_dest)
        for spec in SETTINGS
        if spec.flags and getattr(args, spec.flag_dest, None) is not None
    }


def given_train_flags(args: argparse.Namespace) -> bool:
    """Whether any train flag (or --config) was given on this command line."""
    return getattr(args, "config", None) is not None or bool(given_settings(args))


def config_from_args(args: argparse.Namespace) -> Any:
    """Defaults < YAML < flags, as in mlx_lm.lora; the demo profile when neither model nor config is given."""
    from mlxtui.core.config import (
        ConfigError,
        TrainConfig,
        from_dict,
        from_settings,
        load_config,
        load_yaml,
    )

    yaml_values: dict[str, Any] = load_yaml(args.config) if args.config else {}
    flags = given_settings(args)
    for where, values in ((COMMAND_LINE, flags), (str(args.config), yaml_values)):
        if "epochs" in values and "iters" in values:
            raise ConfigError(
                f"{where}: both epochs and iters are given; epochs would decide the length, "
                "so give only one of them"
            )
    resume = getattr(args, "resume_run", None)
    uses_demo = not args.config and args.model in (None, "demo") and args.data is None
    if resume:
        from pathlib import Path

        # a resumed run keeps its own settings; only what is given now changes them
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume {resume}: no config.yaml there; give a run folder that `mlxtui runs` lists")
        base = load_config(saved)
    else:
        base = TrainConfig.quick_start() if uses_demo else TrainConfig()
    cfg = from_dict(yaml_values, base=base, where=str(args.config)) if yaml_values else base
    cfg = from_settings(flags, base=cfg, where=COMMAND_LINE)
    if cfg.data is None and not (cfg.train_data or cfg.test_data or cfg.hf_dataset) and not resume:
        from pathlib import Path

        if (Path(MLX_LM_DATA) / "train.jsonl").is_file():
            # mlx_lm.lora's --data default: the guides put their files there and give no --data
            cfg = cfg.with_values(data=MLX_LM_DATA)
    return cfg


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from mlxtui.core.config import ConfigError
    from mlxtui.core.engine import EngineError
    from mlxtui.pipeline import TrainPipeline

    try:
        config = config_from_args(args)
    except ConfigError as e:
        print(f"mlxtui train: {config_error_text(e)}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    if getattr(args, "prompt", None) is not None:
        return _answer(args, config)
    from mlxtui.core.distributed import HEARTBEAT_ENV, launched, wants_launch

    if wants_launch(config.nproc, config.hosts):
        from mlxtui.cli.launch import launch_ranks

        return launch_ranks(args, config, out)
    rank = 0
    if launched():
        from mlxtui.cli.launch import rank_number

        rank = rank_number()
        if rank != 0:  # rank 0 speaks for the run; the others' lines would repeat its own
            out = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)
    if args.data is None and config.data == MLX_LM_DATA:
        print(f"data: ./{MLX_LM_DATA} (mlx_lm.lora's default folder; --data names another)", file=out)
    # mlx_lm.lora tests without training when --test comes without --train; so does a YAML `train: false`
    said_train = args.train is not None or args.iters is not None or args.epochs is not None or _yaml_says_train(args)
    if config.test and (not config.train or not said_train):
        return _test_only(config.with_values(train=False), out)
    printer = ProgressPrinter(out)
    _say_blas(out)
    on_event: Any = printer
    if launched():
        from mlxtui.cli.launch import RankReporter

        ranks = RankReporter(rank, sys.stdout, heartbeat=HEARTBEAT_ENV in os.environ)

        def on_event(event: Any) -> None:
            printer(event)
            ranks(event)

    # The run's own end: a loss that is not finite, or a stop the run asked for itself.
    diverged: list[tuple[int, float]] = []
    self_stops: list[str] = []
    printed = on_event

    def watched(event: Any) -> None:
        from mlxtui.core import events as ev
        from mlxtui.core.pause_words import HEADLESS_STOPS

        if isinstance(event, ev.TrainStep) and not math.isfinite(event.loss) and not diverged:
            diverged.append((event.iteration, event.loss))
        elif isinstance(event, ev.TrainPaused) and event.reason in HEADLESS_STOPS:
            self_stops.append(event.reason)
        printed(event)

    pipeline = TrainPipeline(config, on_event=watched)
    if launched() and HEARTBEAT_ENV in os.environ:
        from mlxtui.cli.launch import listen_for_stop

        listen_for_stop(pipeline.stop)
    from mlxtui.cli.signals import StopSignals, signal_name

    def stop_and_save(signum: int) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            _detach_from_terminal()
        # stop first: with the terminal gone (SSH closed) the print below can fail
        pipeline.stop()
        try:
            print(
                f"\n{signal_name(signum)}: stopping after step {printer.iteration} and saving the "
                "adapter (Ctrl-C again to quit now)",
                file=sys.stderr,
            )
        except OSError:
            pass

    def end_now(signum: int) -> None:
        print("\nsecond Ctrl-C: exiting without waiting (the last checkpoint is kept)", file=sys.stderr)
        os._exit(EXIT_INTERRUPTED)

    with StopSignals(stop_and_save, end_now) as stops:
        try:
            result = pipeline.execute()
        except (EngineError, ConfigError) as e:
            print(f"mlxtui train: {config_error_text(e) if isinstance(e, ConfigError) else e}", file=sys.stderr)
            hint = getattr(e, "hint", "")
            if hint:
                print(f"  hint: {hint}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            printer.close()
    if stops.interrupted:
        print(f"saved: {result.adapter_path}; resume with: mlxtui train --resume {result.run_dir}", file=out)
        return EXIT_INTERRUPTED
    if diverged and result.status != "completed":
        step, loss = diverged[0]
        print(
            f"mlxtui train: the loss became {loss} at step {step}, so the run stopped (exit status "
            f"{EXIT_DIVERGED}); lower the learning rate (--learning-rate) or clip the gradients "
            f"(--max-grad-norm 1.0): {result.message or f'its folder is {result.run_dir}'}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    if "memory_limit" in self_stops and result.status == "stopped":
        print(
            f"mlxtui train: the peak memory passed --memory-limit {config.memory_limit}, so the run "
            f"stopped at step {result.final_iteration} and saved (exit status {EXIT_MEMORY_LIMIT}); "
            f"`mlxtui train --resume {result.run_dir}` with a smaller --batch-size or "
            "--max-seq-length (or a higher --memory-limit) continues from it",
            file=sys.stderr,
        )
        return EXIT_MEMORY_LIMIT
    if result.status in ("completed", "early_stopped", "stopped"):
        return EXIT_TRAINED
    return EXIT_FAILED


def _detach_from_terminal() -> None:
    """SIGHUP: the terminal is gone, and every write to it would fail (EIO, EPIPE) in the
    middle of the save; point stdout and stderr at /dev/null so the run saves and exits."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


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


def _answer(args: argparse.Namespace, config: Any) -> int:
    """`mlxtui lora --model M --adapter-path A --prompt P`: what `mlxtui generate` answers."""
    from mlxtui.cli import generate

    if args.train:
        print("mlxtui train: --prompt answers with a trained adapter, so it does not go with "
              "--train; train first, then give --prompt without --train", file=sys.stderr)
        return 2
    argv = ["--prompt", args.prompt, "--adapter-path", config.adapter_path]
    if config.model:
        argv += ["--model", config.model]
    parser = generate.add_parser(argparse.ArgumentParser().add_subparsers())
    return int(generate.run(parser.parse_args(argv)))


def _yaml_says_train(args: argparse.Namespace) -> bool:
    if not args.config:
        return False
    from mlxtui.core.config import load_yaml

    return bool(load_yaml(args.config).get("train", False))


def _test_only(config: Any, out: TextIO) -> int:
    """`--test` without `--train`: evaluate the adapter in --adapter-path (mlx_lm.lora's behaviour)."""
    from mlxtui.core.config import ConfigError
    from mlxtui.core.engine import EngineError
    from mlxtui.pipeline import evaluate_test_set

    try:
        loss, ppl = evaluate_test_set(config)
    except ConfigError as e:
        print(f"mlxtui train --test: {config_error_text(e)}", file=sys.stderr)
        return 2
    except EngineError as e:
        print(f"mlxtui train --test: {e}", file=sys.stderr)
        return 1
    print(f"Test loss {loss:.3f}, Test ppl {ppl:.3f}.", file=out)
    return 0


