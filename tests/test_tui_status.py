"""The one-line status: what a user needs first survives a narrow terminal."""

from __future__ import annotations

from mlxtui.core import events as ev
from mlxtui.tui.status import USER_PAUSE_MESSAGE, Status, apply_event, status_text

LONG_ENGINE_PAUSE = "paused; press p to continue or s to stop (the adapter is saved on stop)"


def training_status() -> Status:
    status = Status(state="training", model="SmolLM2-135M-Instruct.Q4_1")
    status = apply_event(status, ev.TrainStarted("/tmp/run", 12, 0, 1000, 135_000_000, "lora"))
    return apply_event(status, ev.TrainStep(4, 12, 3.99, 2e-4, 112.0, 0.3, 1800, 1.1, 33.0))


def test_user_pause_puts_the_keys_first_and_drops_the_eta() -> None:
    paused = apply_event(training_status(), ev.TrainPaused(4, "user", LONG_ENGINE_PAUSE))
    line = status_text(paused)
    assert paused.state == "paused"
    assert line.startswith(f"PAUSED  │  {USER_PAUSE_MESSAGE}")
    assert "ETA" not in line and "tok/s" not in line
    # The keys fit in an 80-column status line.
    assert line.index(USER_PAUSE_MESSAGE) + len(USER_PAUSE_MESSAGE) < 78


def test_memory_pause_keeps_the_engine_message() -> None:
    paused = apply_event(training_status(), ev.TrainPaused(4, "memory", "swap grew: paused"))
    assert status_text(paused).startswith("PAUSED  │  swap grew: paused")


def test_training_shows_eta() -> None:
    assert "ETA 0:33" in status_text(training_status())


def test_failed_estimate_leaves_the_status_alone() -> None:
    status = training_status()
    failed = ev.JobFailed(9, "estimate", "TrainingError: train.jsonl:2: invalid JSON")
    assert apply_event(status, failed) == status


def test_a_failed_load_is_an_error_shown_first() -> None:
    failed = apply_event(Status(state="loading"), ev.JobFailed(1, "load", "no model at /x"))
    assert failed.state == "error"
    assert status_text(failed).startswith("ERROR  │  no model at /x")


def test_job_progress_counts_in_brackets() -> None:
    status = apply_event(Status(), ev.JobProgress(3, "evaluate", "base answer 5/20", 4, 40))
    assert status.message == "base answer 5/20 (4/40)"


def test_figures_come_before_the_model_name_so_80_columns_keep_them() -> None:
    line = status_text(training_status())
    assert line.index("ETA") < line.index("SmolLM2")
    assert len(line[: line.index("ETA 0:33") + 8]) <= 78
