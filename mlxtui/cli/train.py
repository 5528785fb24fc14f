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

from mlxtui.cli.errors import COMMAND_LINE, config_error_text
from mlxtui.cli.progress import ProgressPrinter

__all__ = ["ProgressPrinter", "add_parser", "add_train_arguments", "config_from_args", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train headless with a progress bar (mlx_lm.lora compatible flags)",
        description="Train headless. Flags and YAML keys are mlx_lm.lora's; without --model, --data "
        "or --config the quick-start profile (the demo model and dataset) is used.",
    )
    add_train_arguments(p)
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
        elif spec.kind == "choice":
            kwargs["choices"] = spec.choices
        p.add_argument(*spec.flags, **kwargs)


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
    return from_settings(flags, base=cfg, where=COMMAND_LINE)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from mlxtui.core.config import ConfigError
    from mlxtui.core.engine import EngineError
    from mlxtui.pipeline import TrainPipeline

    try:
        config = config_from_args(args)
    except ConfigError as e:
        print(f"mlxtui train: {config_error_text(e)}", file=sys.stderr)
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
        print(f"mlxtui train: {config_error_text(e) if isinstance(e, ConfigError) else e}", file=sys.stderr)
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


