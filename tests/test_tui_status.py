"""The one-line status: what a user needs first survives a narrow terminal."""

from __future__ import annotations

from mlxtui.core import events as ev
from mlxtui.tui.status import (
    STOPPING_MESSAGE,
    USER_PAUSE_MESSAGE,
    Status,
    apply_event,
    status_text,
)

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


def validating(started_at: float) -> Status:
    status = training_status()
    status = apply_event(
        status, ev.PhaseStarted(1, "train", "validate", "validation", 4, started_at)
    )
    return apply_event(status, ev.PhaseProgress(1, "train", "validate", "validation", 3, 4))


def test_a_running_phase_shows_its_count_and_elapsed_seconds_after_the_state() -> None:
    line = status_text(validating(started_at=1000.0), now=1012.4)
    assert line.startswith("TRAINING  │  validation 3/4 · 12 s  │  it 4/12")
    assert len(line[: line.index("12 s") + 4]) <= 40  # kept by an 80-column line
    assert "1:05" in status_text(validating(started_at=1000.0), now=1065.0)


def test_phases_nest_and_finish() -> None:
    status = apply_event(
        Status(state="loading"), ev.PhaseStarted(2, "load", "load", "loading the model", 0, 50.0)
    )
    assert "loading the model · 2 s" in status_text(status, now=52.0)
    inner = apply_event(status, ev.PhaseStarted(2, "load", "dequantize", "dequantizing", 30, 51.0))
    assert "dequantizing 0/30 · 1 s" in status_text(inner, now=52.0)
    outer = apply_event(inner, ev.PhaseFinished(2, "load", "dequantize", "dequantizing", 1.0))
    assert "loading the model" in status_text(outer, now=52.0)
    done = apply_event(outer, ev.PhaseFinished(2, "load", "load", "loading the model", 2.0))
    assert done.phases == () and "loading the model" not in status_text(done, now=52.0)
    # A job that ends takes its phases with it, even if a PhaseFinished went missing.
    assert apply_event(inner, ev.JobFinished(2, "load")).phases == ()


def test_stopping_says_the_adapter_is_being_saved_then_the_finish() -> None:
    from dataclasses import replace

    stopping = replace(training_status(), state="stopping", message=STOPPING_MESSAGE)
    assert status_text(stopping).startswith("STOPPING: saving the adapter…")
    saving = apply_event(
        stopping, ev.PhaseStarted(1, "train", "save", "saving the adapter", 0, 10.0)
    )
    assert status_text(saving, now=11.0).startswith("STOPPING: saving the adapter · 1 s")
    finished = apply_event(
        saving, ev.TrainFinished("/r", "/r/adapters.safetensors", 4, 12, "stopped")
    )
    assert status_text(finished).startswith("DONE (stopped)  │  it 4/12")
    assert "stopped" in status_text(finished)


def test_a_phase_is_named_once_and_leaves_no_stale_message() -> None:
    status = Status(state="training", model="m")
    for event in (
        ev.PhaseStarted(4, "train", "validate", "validation", 4, started_at=100.0),
        ev.JobProgress(4, "train", "validation", 0, 4),
        ev.PhaseProgress(4, "train", "validate", "validation", 1, 4),
        ev.JobProgress(4, "train", "validation", 1, 4),
    ):
        status = apply_event(status, event)
    text = status_text(status, now=103.0)
    assert text == "TRAINING  │  validation 1/4 · 3 s  │  m"  # no "validation (1/4)", no ETA yet
    status = apply_event(status, ev.PhaseFinished(4, "train", "validate", "validation", 3.0))
    assert status_text(status, now=104.0) == "TRAINING  │  m"


def test_a_stopped_run_does_not_read_as_finished() -> None:
    finished = ev.TrainFinished("/tmp/run", "/tmp/run/adapters", 10, 80, "stopped")
    stopped = apply_event(training_status(), finished)
    assert stopped.state == "done"
    assert status_text(stopped).startswith("DONE (stopped)  │  ")
    completed = ev.TrainFinished("/tmp/run", "/tmp/run/adapters", 80, 80, "completed")
    assert status_text(apply_event(training_status(), completed)).startswith("DONE  │  ")
    again = apply_event(stopped, ev.TrainStarted("/tmp/run2", 12, 0, 1000, 135_000_000, "lora"))
    assert status_text(again).startswith("TRAINING")
    assert apply_event(again, completed).outcome == "completed"
