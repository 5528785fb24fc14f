"""The headless progress printer shows each phase (label, k/n, seconds) from its first moment:
an updating line on a TTY, one line per phase start and end elsewhere. A pure printer, fed
events directly."""

from __future__ import annotations

import io
import time

from mlxtui.cli.progress import ProgressPrinter, phase_text
from mlxtui.core import events as ev


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def validation(printer: ProgressPrinter, clock: Clock, seconds: float = 12.0) -> None:
    printer(ev.PhaseStarted(1, "train", "validate", "validation", total=4, started_at=clock.now))
    for k in range(1, 5):
        clock.now += seconds / 4
        printer(ev.PhaseProgress(1, "train", "validate", "validation", k, 4))
    printer(ev.PhaseFinished(1, "train", "validate", "validation", seconds))


def test_phase_text():
    assert phase_text("validation", 3, 4, 12.2) == "validation 3/4 · 12 s"
    assert phase_text("loading the model", 0, 0, 3.6) == "loading the model · 4 s"


def test_plain_lines_one_per_phase_start_and_end_not_per_batch():
    out, clock = io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=False, clock=clock)
    validation(p, clock)
    p(ev.PhaseStarted(1, "load", "load", "loading the model", started_at=clock.now))
    p(ev.PhaseFinished(1, "load", "load", "loading the model", 34.0))
    p(ev.PhaseStarted(1, "train", "samples", "sample answers", total=2, started_at=clock.now))
    p(ev.PhaseProgress(1, "train", "samples", "sample answers", 1, 2))
    p(ev.PhaseFinished(1, "train", "samples", "sample answers", 5.0, outcome="stopped"))
    p.close()
    assert out.getvalue().splitlines() == [
        "validation 0/4 …",
        "validation 4/4 · 12 s",
        "loading the model …",
        "loading the model · 34 s",
        "sample answers 0/2 …",
        "sample answers 1/2 · 5 s (stopped)",
    ]


def test_tty_line_shows_the_phase_at_once_and_updates_in_place():
    out, clock = io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=True, clock=clock, tick_seconds=3600)
    p(ev.PhaseStarted(1, "train", "validate", "validation", total=4, started_at=clock.now))
    assert out.getvalue().endswith("\r" + "validation 0/4 · 0 s".ljust(100))
    clock.now += 3
    p(ev.PhaseProgress(1, "train", "validate", "validation", 1, 4))
    assert "\rvalidation 1/4 · 3 s" in out.getvalue()
    assert "\n" not in out.getvalue()  # no new line per batch
    clock.now += 9
    p(ev.PhaseFinished(1, "train", "validate", "validation", 12.0))
    assert out.getvalue().endswith("\rvalidation 4/4 · 12 s\n")
    p.close()


def test_tty_line_counts_seconds_while_no_event_comes():
    """A model load can be silent for a minute: the seconds still move."""
    out, clock = io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=True, clock=clock, tick_seconds=0.01)
    p(ev.PhaseStarted(1, "load", "load", "loading the model", started_at=clock.now))
    clock.now += 7
    deadline = time.monotonic() + 10
    while "loading the model · 7 s" not in out.getvalue():
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.01)
    p.close()


def test_a_short_phase_only_flashes_by_on_a_tty_and_the_bar_comes_back():
    out, clock = io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=True, clock=clock, tick_seconds=3600)
    p(ev.TrainStarted("run", 10, 0, 5, 100, "lora"))
    p(ev.PhaseStarted(1, "train", "save", "saving", started_at=clock.now))
    p(ev.PhaseFinished(1, "train", "save", "saving", 0.2))
    p(ev.TrainStep(10, 10, 1.234, 1e-4, 321.0, 2.0, 1000, 0.5, 12.0))
    p.close()
    text = out.getvalue()
    assert "saving · 0 s\n" not in text and "\rsaving · 0 s" in text
    assert "10/10 loss 1.234" in text


def test_nested_phases_show_the_inner_one_then_the_outer_again():
    out, clock = io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=True, clock=clock, tick_seconds=3600)
    p(ev.PhaseStarted(1, "load", "load", "loading the model", started_at=clock.now))
    p(ev.PhaseStarted(1, "load", "dequantize", "dequantizing", total=30, started_at=clock.now))
    p(ev.PhaseProgress(1, "load", "dequantize", "dequantizing", 10, 30))
    assert out.getvalue().rstrip().endswith("dequantizing 10/30 · 0 s")
    clock.now += 5
    p(ev.PhaseFinished(1, "load", "dequantize", "dequantizing", 5.0))
    assert out.getvalue().rstrip().endswith("loading the model · 5 s")
    p.close()


def test_job_progress_goes_to_its_own_stream_as_counted_lines():
    out, err, clock = io.StringIO(), io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=False, steps_out=err, steps_elapsed=True, clock=clock)
    clock.now += 1.5
    p(ev.JobProgress(1, "models", "writing tensors", 3, 5))
    assert err.getvalue() == "[3/5] writing tensors (1.5s)\n" and out.getvalue() == ""


def test_reports_carry_the_grad_norm_and_advice_is_a_line_of_its_own():
    out = io.StringIO()
    p = ProgressPrinter(out, tty=False)
    p(ev.TrainReport(10, 100, 2.5, 1e-4, 300.0, 2.0, 1000, 1.5, grad_norm=0.8123))
    p(ev.TrainReport(20, 100, 2.4, 1e-4, 300.0, 2.0, 2000, 1.5))  # an engine without norms
    p(ev.Diagnosis("spike", 30, "loss spike at step 30: halve the learning rate", {"ratio": 3.0}))
    p.close()
    assert out.getvalue().splitlines() == [
        "step 10/100: train loss 2.5000, lr 1.00e-04, grad norm 0.812, 300 tok/s, peak 1.50 GB",
        "step 20/100: train loss 2.4000, lr 1.00e-04, 300 tok/s, peak 1.50 GB",
        "advice (spike): loss spike at step 30: halve the learning rate",
    ]


def test_the_tty_bar_keeps_the_last_updates_norm_through_accumulating_steps():
    out = io.StringIO()
    p = ProgressPrinter(out, tty=True)
    p(ev.TrainStep(2, 4, 2.0, 1e-4, 100.0, 1.0, 10, 1.0, None, grad_norm=1.25))
    p.last_line = 0.0  # past the bar's redraw throttle
    p(ev.TrainStep(3, 4, 2.0, 1e-4, 100.0, 1.0, 10, 1.0, None))
    assert out.getvalue().rsplit("\r", 1)[-1].split()[4:6] == ["|g|", "1.25"]


def test_tty_line_fits_the_terminal_and_units_of_a_phase_stay_on_it(monkeypatch):
    # a redrawn line wider than the terminal wraps, and every redraw then stacks a new line
    monkeypatch.setenv("COLUMNS", "40")
    out, clock = io.StringIO(), Clock()
    p = ProgressPrinter(out, tty=True, clock=clock, tick_seconds=3600)
    p(ev.PhaseStarted(1, "load", "dequantize", "dequantizing to float", total=32, started_at=clock.now))
    for k in range(1, 5):
        p(ev.PhaseProgress(1, "load", "dequantize", "dequantizing to float", k, 32))
        p(ev.JobProgress(1, "load", f"dequantized layer {k}", k, 32))
    assert "\n" not in out.getvalue()
    assert all(len(chunk) <= 39 for chunk in out.getvalue().split("\r"))
    p.close()
