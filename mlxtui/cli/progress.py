"""The headless subscriber: engine events as a progress bar on a TTY, plain lines otherwise.

`mlxtui train`, `eval`, `bench`, `fuse`, `export` and `models` print through it. Long work
inside a job (loading, tokenizing, validation, sample answers, saving, fuse/export stages)
arrives as PhaseStarted/PhaseProgress/PhaseFinished: on a TTY one line shows the running
phase with its count and elapsed seconds, redrawn every second even while no event comes
(a model load can be silent for a minute); elsewhere (a log file, CI) each phase writes one
line when it starts and one when it ends, never one per batch.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO


class _Phase:
    # a plain class: importing dataclasses would cost `--help` ~10 ms
    __slots__ = ("label", "total", "started_at", "done")

    def __init__(self, label: str, total: int, started_at: float, done: int = 0) -> None:
        self.label, self.total, self.started_at, self.done = label, total, started_at, done


def phase_text(label: str, done: int, total: int, seconds: float) -> str:
    """'validation 3/4 · 12 s'; without a known total 'loading the model · 12 s'."""
    count = f" {done}/{total}" if total else (f" {done}" if done else "")
    return f"{label}{count} · {seconds:.0f} s"


class ProgressPrinter:
    """Prints engine events for a person.

    out: where the lines go. tty: draw the updating line (default: out.isatty()).
    steps_out: where JobProgress lines go as `[done/total] message` (the tool commands put
    them on stderr so stdout stays the result); None prints the bare message on `out`.
    steps_elapsed: add the seconds since the printer started to each of those lines.
    """

    def __init__(
        self,
        out: TextIO = sys.stdout,
        tty: bool | None = None,
        *,
        steps_out: TextIO | None = None,
        steps_elapsed: bool = False,
        clock: Callable[[], float] = time.time,
        tick_seconds: float = 1.0,
    ) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.steps_out = steps_out
        self.steps_elapsed = steps_elapsed
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.total = 0
        self.last_val: float | None = None
        self.last_norm: float | None = None
        self.last_line = 0.0
        self.iteration = 0
        self.run_dir = ""
        self._start = clock()
        self._line_open = False
        self._phases: dict[tuple[int, str], _Phase] = {}
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()
        self._last_log = ""
        self._stopping = False

    @staticmethod
    def _words(text: str) -> str:
        """The core's pause and stop messages name the dashboard's keys: here, Ctrl-C."""
        from mlxtui.core.pause_words import headless_words

        return headless_words(text)

    # ---------------------------------------------------------------- events

    def __call__(self, e: Any) -> None:
        with self._lock:
            self._handle(e)

    def _handle(self, e: Any) -> None:
        from mlxtui.core import events as ev  # here, not at the top: `--help` needs no events
        from mlxtui.core.pause_words import HEADLESS_STOPS

        if isinstance(e, ev.PhaseStarted | ev.PhaseProgress | ev.PhaseFinished):
            self._phase(e)
        elif isinstance(e, ev.TrainStarted):
            self.total = e.total_iters
            self.run_dir = e.run_dir
            self._line(
                f"training {e.fine_tune_type}: {e.trainable_parameters:,} of {e.total_parameters:,} parameters "
                f"trainable, steps {e.start_iter + 1}..{e.total_iters}, run folder {e.run_dir}"
            )
        elif isinstance(e, ev.TrainStep):
            self.iteration = e.iteration
            if e.grad_norm is not None:  # a step that only accumulated keeps the last update's
                self.last_norm = e.grad_norm
            if self.tty:
                self._bar(e)
        elif isinstance(e, ev.TrainReport):
            if not self.tty:
                norm = f", grad norm {e.grad_norm:.3g}" if e.grad_norm is not None else ""
                self._line(
                    f"step {e.iteration}/{e.total_iters}: train loss {e.train_loss:.4f}, lr {e.learning_rate:.2e}{norm}, "
                    f"{e.tokens_per_second:.0f} tok/s, peak {e.peak_memory:.2f} GB"
                )
        elif isinstance(e, ev.ValReport):
            self.last_val = e.val_loss
            best = " (best)" if e.is_best else ""
            self._line(f"step {e.iteration}: val loss {e.val_loss:.4f}{best} ({e.val_time:.1f} s)")
        elif isinstance(e, ev.SamplePredictions):
            for item in e.items[:1]:
                self._line(f"  sample @ {e.iteration}: {item.prompt!r} -> {item.answer[:100]!r}")
        elif (
            isinstance(e, ev.CheckpointSaved)
            and e.kind in ("best", "periodic")
            and not e.path.endswith("/adapters.safetensors")
        ):
            self._line(f"step {e.iteration}: saved {e.kind} checkpoint {e.path}")
        elif isinstance(e, ev.Diagnosis):
            if getattr(e, "earlier", False):  # given before this run was stopped and resumed
                self._line(f"advice given at step {e.iteration}, before the resume ({e.kind}): {e.message}")
            else:
                self._line(f"advice ({e.kind}): {e.message}")
        elif isinstance(e, ev.TrainPaused):
            # a NaN, a full disk or a peak past memory_limit was just said as an error or warning
            if e.message != self._last_log:
                self._line(f"paused at step {e.iteration}: {self._words(e.message)}")
            self._stopping = e.reason in HEADLESS_STOPS
        elif isinstance(e, ev.TrainResumed):
            if not self._stopping:  # a headless NaN pause "resumes" only into its stop
                self._line(f"continuing at step {e.iteration}")
        elif isinstance(e, ev.MemoryAlert):
            self._line(f"memory {e.level}: {e.message}")
            for s in e.suggestions:
                self._line(f"  - {s}")
        elif isinstance(e, ev.Log):
            self._last_log = e.message
            self._line(f"{e.level}: {self._words(e.message)}")
        elif isinstance(e, ev.TestResult):
            self._line(f"test loss {e.test_loss:.4f}, test ppl {e.test_ppl:.3f}")
        elif isinstance(e, ev.JobProgress):
            self._step(e)
        elif isinstance(e, ev.TrainFinished):
            self._line(self._words(finish_line(e)))

    def _step(self, e: Any) -> None:
        if self._phases and self.tty:
            return  # a phase's every unit also comes as JobProgress: the phase line shows it
        if self.steps_out is None:
            self._line(e.message)
            return
        since = f" ({self.clock() - self._start:.1f}s)" if self.steps_elapsed else ""
        self._clear()
        print(f"[{e.done}/{e.total}] {e.message}{since}", file=self.steps_out, flush=True)

    # ---------------------------------------------------------------- phases

    def _phase(self, e: Any) -> None:
        from mlxtui.core import events as ev

        key = (e.job_id, e.phase)
        if isinstance(e, ev.PhaseStarted):
            self._phases[key] = _Phase(e.label, e.total, e.started_at)
            if self.tty:
                self._draw_phase()
                self._start_ticker()
            else:
                self._line(f"{e.label} {0}/{e.total} …" if e.total else f"{e.label} …")
        elif isinstance(e, ev.PhaseProgress):
            phase = self._phases.get(key)
            if phase is None:  # its start was before we subscribed
                phase = self._phases[key] = _Phase(e.label, e.total, self.clock())
            phase.done, phase.total = e.done, e.total or phase.total
            if self.tty:
                self._draw_phase()
        else:
            phase = self._phases.pop(key, None)
            done = phase.done if phase is not None else 0
            total = phase.total if phase is not None else 0
            if phase is not None and e.outcome == "done" and total:
                done = total
            text = phase_text(e.label, done, total, e.seconds)
            if e.outcome != "done":
                text += f" ({e.outcome})"
            if not self.tty or e.seconds >= 1.0 or e.outcome != "done":
                self._line(text)  # on a TTY a phase of a moment only flashes by
            else:
                self._clear()
            if self.tty and self._phases:
                self._draw_phase()

    def _draw_phase(self) -> None:
        if not self._phases:
            return
        phase = list(self._phases.values())[-1]  # the innermost: the one started last
        seconds = max(0.0, self.clock() - phase.started_at)
        self._draw(phase_text(phase.label, phase.done, phase.total, seconds))

    def _start_ticker(self) -> None:
        if self._ticker is not None:
            return

        def tick() -> None:
            while not self._closed.wait(self.tick_seconds):
                with self._lock:
                    if self._phases:
                        self._draw_phase()

        self._ticker = threading.Thread(target=tick, name="progress-ticker", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """Stop redrawing (the job is over)."""
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join(2 * self.tick_seconds)
            self._ticker = None
        with self._lock:
            self._clear()

    # ---------------------------------------------------------------- drawing

    def _bar(self, e: Any) -> None:
        now = time.monotonic()
        if now - self.last_line < 0.2 and e.iteration != e.total_iters:
            return
        self.last_line = now
        width = 24
        filled = int(width * e.iteration / max(1, e.total_iters))
        eta = fmt_eta(e.eta_seconds)
        val = f" val {self.last_val:.3f}" if self.last_val is not None else ""
        norm = f" |g| {self.last_norm:.3g}" if self.last_norm is not None else ""
        self._draw(
            f"[{'#' * filled}{'.' * (width - filled)}] {e.iteration}/{e.total_iters} loss {e.loss:.3f}{val}{norm} "
            f"{e.tokens_per_second:.0f} tok/s ETA {eta} peak {e.peak_memory:.2f} GB"
        )

    @staticmethod
    def _width() -> int:
        import shutil

        # one character short of the terminal's width: a full line wraps, and each redraw
        # then starts a new line instead of replacing the last
        return shutil.get_terminal_size((120, 40)).columns - 1

    def _draw(self, text: str) -> None:
        """The one updating line of a TTY."""
        width = self._width()
        self.out.write("\r" + text[:width].ljust(min(width, 100)))
        self.out.flush()
        self._line_open = True

    def _clear(self) -> None:
        if self.tty and self._line_open:
            self.out.write("\r" + " " * self._width() + "\r")
            self.out.flush()
            self._line_open = False

    def _line(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()


def fmt_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def finish_line(e: Any) -> str:
    where = f"adapter in {e.adapter_path}"
    if e.status == "completed":
        head = f"done: {e.final_iteration}/{e.total_iters} steps"
    elif e.status == "early_stopped":
        head = f"stopped early at step {e.final_iteration}: {e.message}"
    elif e.status == "stopped" and ("--resume" in e.message or "start again" in e.message):
        # the run says how to go on (after a NaN: from the last good step at a lower rate, or anew)
        head = f"stopped at step {e.final_iteration} of {e.total_iters}: {e.message}"
    elif e.status == "stopped":
        head = f"stopped at step {e.final_iteration} of {e.total_iters}; resume with: mlxtui train --resume {e.run_dir}"
        head += f" ({e.message})" if e.message else ""
    else:
        head = f"failed at step {e.final_iteration}: {e.message}"
    best = f", best val loss {e.best_val_loss:.4f} at step {e.best_iteration}" if e.best_val_loss is not None else ""
    return f"{head}{best}; {where}"
