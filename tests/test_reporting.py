"""report_to: refused with the package to install when it is missing; when present, the run's
reports reach mlx-lm's own WandBCallback (wandb itself faked: a third-party service)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig
from mlxtui.core.reporting import check_reporting, reporting_emit


def test_a_missing_package_is_named_before_anything_runs():
    pytest.importorskip("mlx_lm")
    from mlx_lm.tuner import callbacks

    assert callbacks.wandb is None and callbacks.swanlab is None  # neither is installed here
    for name in ("wandb", "swanlab"):
        with pytest.raises(ConfigError, match=f"{name} package is not installed.*pip install {name}"):
            check_reporting(TrainConfig(report_to=name))


def test_an_unknown_reporter_and_a_lone_project_are_refused():
    with pytest.raises(ConfigError, match="'tensorboard' is not one of wandb, swanlab"):
        TrainConfig(report_to="tensorboard").validate()
    with pytest.raises(ConfigError, match="report_to is not set"):
        TrainConfig(project_name="p").validate()


class FakeWandb:
    """wandb's two calls that mlx-lm's WandBCallback makes."""

    def __init__(self) -> None:
        self.init_args: dict[str, Any] = {}
        self.logged: list[tuple[dict[str, Any], int | None]] = []

    def init(self, **kw: Any) -> None:
        self.init_args = kw

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        self.logged.append((data, step))


def test_reports_go_through_mlx_lms_wandb_callback(monkeypatch, tmp_path):
    from mlx_lm.tuner import callbacks

    fake = FakeWandb()
    monkeypatch.setattr(callbacks, "wandb", fake)
    seen: list[ev.Event] = []
    cfg = TrainConfig(report_to="wandb", project_name="guides")
    emit = reporting_emit(seen.append, cfg)
    emit(ev.TrainStarted(run_dir=str(tmp_path / "run1"), total_iters=4, start_iter=0, trainable_parameters=1,
                         total_parameters=2, fine_tune_type="lora"))
    emit(ev.TrainReport(iteration=2, total_iters=4, train_loss=1.5, learning_rate=1e-5, tokens_per_second=10.0,
                        iterations_per_second=1.0, trained_tokens=20, peak_memory=0.1))
    emit(ev.ValReport(iteration=2, val_loss=1.25, val_time=0.5, is_best=True))
    assert len(seen) == 3  # the job's own subscribers still get every event
    assert fake.init_args["project"] == "guides" and fake.init_args["name"] == "run1"
    assert fake.init_args["config"]["report_to"] == "wandb"
    assert fake.logged[0] == ({"iteration": 2, "train_loss": 1.5, "learning_rate": 1e-5, "iterations_per_second": 1.0,
                               "tokens_per_second": 10.0, "trained_tokens": 20, "peak_memory": 0.1}, 2)
    assert fake.logged[1] == ({"iteration": 2, "val_loss": 1.25, "val_time": 0.5}, 2)


def test_without_report_to_the_emit_is_untouched():
    emit = SimpleNamespace().__class__  # any callable
    assert reporting_emit(emit, TrainConfig()) is emit
