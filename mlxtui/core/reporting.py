"""`report_to: wandb|swanlab`: the run's losses also go there, through mlx-lm's own callbacks.

mlx_lm.lora builds its reporters with `mlx_lm.tuner.callbacks.get_reporting_callbacks` and calls
`on_train_loss_report` / `on_val_loss_report` with the figures it prints. mlxtui's step loop
emits those figures as TrainReport and ValReport events; `reporting_emit` wraps the job's emit
so each such event is also handed to mlx-lm's callback, with mlx-lm's keys. The callback is
built at TrainStarted (it needs the run folder: wandb's `dir`, swanlab's `logdir`).

A package that is not installed is refused before the model loads (`check_reporting`), naming
the package to install: a run asked to report is never run silently without reporting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from mlxtui.core import events as ev
from mlxtui.core.config import REPORTERS, ConfigError, TrainConfig


def reporters(config: TrainConfig) -> list[str]:
    return [r.strip().lower() for r in (config.report_to or "").split(",") if r.strip()]


def check_reporting(config: TrainConfig) -> None:
    """Raise ConfigError naming the package when a reporter's package is not importable."""
    names = reporters(config)
    if not names:
        return
    from mlx_lm.tuner import callbacks

    for name in names:
        if name not in REPORTERS:
            raise ConfigError(f"'{name}' is not one of {', '.join(REPORTERS)}", "report_to")
        if getattr(callbacks, name, None) is None:
            raise ConfigError(
                f"reports to {name}, but the {name} package is not installed: install it "
                f"(`uv pip install {name}` or `pip install {name}`) and log in, or remove report_to",
                "report_to",
            )


def reporting_emit(emit: Callable[[ev.Event], None], config: TrainConfig) -> Callable[[ev.Event], None]:
    """`emit`, also reporting TrainReport/ValReport to mlx-lm's callback when report_to is set."""
    if not reporters(config):
        return emit
    check_reporting(config)
    state: dict[str, Any] = {"callback": None}

    def forward(event: ev.Event) -> None:
        emit(event)
        if isinstance(event, ev.TrainStarted):
            from mlx_lm.tuner.callbacks import get_reporting_callbacks

            state["callback"] = get_reporting_callbacks(
                config.report_to,
                project_name=config.project_name,
                log_dir=event.run_dir,
                # mlx-lm annotates config as str but hands it to wandb.init(config=...): a dict
                config=cast(Any, config.to_mlx_lm_dict()),
            )
        callback = state["callback"]
        if callback is None:
            return
        if isinstance(event, ev.TrainReport):
            callback.on_train_loss_report(train_info(event))
        elif isinstance(event, ev.ValReport):
            callback.on_val_loss_report(
                {"iteration": event.iteration, "val_loss": event.val_loss, "val_time": event.val_time}
            )

    return forward


def train_info(event: ev.TrainReport) -> dict[str, Any]:
    """The dict mlx-lm's trainer hands to on_train_loss_report, from our report."""
    return {
        "iteration": event.iteration,
        "train_loss": event.train_loss,
        "learning_rate": event.learning_rate,
        "iterations_per_second": event.iterations_per_second,
        "tokens_per_second": event.tokens_per_second,
        "trained_tokens": event.trained_tokens,
        "peak_memory": event.peak_memory,
    }
