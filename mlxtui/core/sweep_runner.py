"""Run a sweep's queue on one engine, one train job after another.

One MLX job at a time keeps memory predictable: the runner drives the engine from its own
thread (the CLI's main thread, a dashboard worker) and waits on each Train job with
`run_sync`; the engine's MLX thread does the work. Every change of the queue is written to
sweep.json at once (atomically), so a sweep killed at any moment (kill -9, a closed laptop)
continues, when started again, with the run that was going: resumed exactly from its last
checkpoint through the run folder's resume state (TrainConfig.resume_run), then the rest.
A run killed before its first checkpoint has nothing to resume from and starts again (its
folder is kept and named in the queue).

Skip, reorder and stop may come from any thread (the dashboard's keys, Ctrl-C): a skip or a
stop of the running run stops it at its next step boundary, saving its adapter and resume
state, as the stop key of a single run does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig, load_config
from mlxtui.core.runs import STATE_DIR, read_state
from mlxtui.core.sweep import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    STOPPED,
    RunState,
    Sweep,
    SweepLock,
    SweepState,
    open_state,
    write_state,
)

OnChange = Callable[[SweepState], object]
OnProgress = Callable[[str, int, int], object]  # (run label, step, total steps)
# what the engine's run status means for the queue
_FINISHED = ("completed", "early_stopped")


class SweepRunner:
    """The queue of one sweep on `engine` (started by the caller, shut down by the caller)."""

    def __init__(
        self, sweep: Sweep, engine: Any, on_change: OnChange | None = None, on_progress: OnProgress | None = None
    ) -> None:
        self.sweep = sweep
        self.engine = engine
        self.on_change = on_change or (lambda state: None)
        self.on_progress = on_progress or (lambda label, step, total: None)
        self.lock = SweepLock(sweep.sweep_dir)  # refused while another process drives this sweep
        try:
            self.state = open_state(sweep)
        except Exception:
            self.lock.release()
            raise
        self.state.current = None  # a killed process's current run is no one's now
        self.current: RunState | None = None
        self._lock = threading.RLock()
        self._stop = False
        self._skip_current = False
        self._job_started = False

    # ------------------------------------------------------------ any thread

    def stop(self) -> None:
        """Stop the sweep: the running run saves and stops (it resumes when the sweep is run again)."""
        with self._lock:
            self._stop = True
            running = self.current is not None
        if running:
            self.engine.stop()

    def skip(self, label: str) -> None:
        """Skip a run (a second skip of a skipped run puts it back in the queue). The running
        run stops at its next step boundary and keeps its folder."""
        with self._lock:
            run = self.state.get(label)
            if self.current is not None and run is self.current:
                self._skip_current = True
                self.engine.stop()
                return
            if run.status in (PENDING, STOPPED):
                run.status, run.message = SKIPPED, "skipped"
            elif run.status == SKIPPED:
                run.status = STOPPED if run.run_dir and _resumable(Path(run.run_dir)) else PENDING
                run.message = ""
            else:
                return
            self._save()

    def move(self, label: str, delta: int) -> None:
        """Move a run `delta` places up (negative) or down the queue; the running one stays."""
        with self._lock:
            runs = self.state.runs
            run = self.state.get(label)
            i = runs.index(run)
            j = max(0, min(len(runs) - 1, i + delta))
            if i == j or run is self.current or runs[j] is self.current:
                return
            runs.insert(j, runs.pop(i))
            self._save()

    def close(self) -> None:
        """Let another process drive this sweep (the queue on disk stays as it is)."""
        self.lock.release()

    def allow(self) -> None:
        """Let a stopped sweep run again (the dashboard's start key after its stop key)."""
        with self._lock:
            self._stop = False

    @property
    def stopping(self) -> bool:
        return self._stop

    # ------------------------------------------------------------ the driving thread

    def preflight(self) -> list[RunState]:
        """Estimate the peak memory of every run still to train; those that will not fit are
        flagged (verdict "will swap") before the sweep starts. Returns the flagged runs.

        Runs the engine's own jobs: LoadModel for each distinct model, then Estimate.
        """
        from mlxtui.core import models
        from mlxtui.core.datafiles import with_data_folder
        from mlxtui.core.engine import EngineError
        from mlxtui.core.jobs import Estimate, LoadModel

        todo = [r for r in self.state.runs if r.status in (PENDING, STOPPED, RUNNING)]
        loaded: tuple[Any, bool] | None = None
        for run in todo:
            if self._stop:
                break
            config = self.sweep.run(run.label).config
            deq = models.wants_dequantize(config.dequantize, config.fine_tune_type)
            try:
                config = with_data_folder(config)
                if loaded != (config.model, deq):
                    self.engine.run_sync(LoadModel(spec=config.model, dequantize=deq))
                    loaded = (config.model, deq)
                estimate: ev.MemoryEstimated = self.engine.run_sync(Estimate(config))
            except (EngineError, ConfigError) as e:
                with self._lock:
                    run.verdict, run.estimate_bytes = None, None
                    run.message = f"no memory estimate: {e}"
                    self._save()
                continue
            with self._lock:
                run.estimate_bytes, run.verdict = estimate.total_bytes, estimate.verdict
                if run.flagged:
                    run.message = "the memory estimate says it will not fit (it would swap)"
                self._save()
        return [r for r in self.state.runs if r.flagged and r.status in (PENDING, STOPPED, RUNNING)]

    def skip_flagged(self) -> None:
        for run in self.state.runs:
            if run.flagged and run.status in (PENDING, STOPPED):
                self.skip(run.label)

    def run(self) -> SweepState:
        """Train the queue until it is empty or the sweep is stopped; the final state."""
        self.engine.subscribe(self._on_event)
        try:
            while not self._stop:
                run = self._next()
                if run is None:
                    break
                self._train(run)
        finally:
            self.engine.unsubscribe(self._on_event)
            with self._lock:
                self.current = None
                self._save()
        return self.state

    def _next(self) -> RunState | None:
        """The run that was going (interrupted or stopped) first, then the queue in order."""
        with self._lock:
            for status in (RUNNING, STOPPED, PENDING):
                for run in self.state.runs:
                    if run.status == status:
                        return run
        return None

    def _train(self, run: RunState) -> None:
        from mlxtui.core.datafiles import with_data_folder
        from mlxtui.core.engine import EngineError
        from mlxtui.core.hub_data import check_hub_data
        from mlxtui.core.jobs import Train
        from mlxtui.core.reporting import check_reporting

        with self._lock:
            config = self._config_for(run)
            if config is None:  # it had finished before the sweep was interrupted
                self._save()
                return
            note = run.message if run.message.startswith("restarted") else ""
            run.status = RUNNING
            run.attempts += 1
            self.current = run
            self._skip_current = False
            self._job_started = False
            self._save()
        outcome, message = FAILED, ""
        try:
            config = with_data_folder(config)
            check_reporting(config)
            check_hub_data(config)
            result = self.engine.run_sync(Train(config))
        except (EngineError, ConfigError) as e:
            message = str(e)
            hint = getattr(e, "hint", "")
            if hint:
                message += f" ({hint})"
            if self._stop and not self._job_started:
                outcome, message = STOPPED, "the sweep was stopped before this run began"
        else:
            if result.status in _FINISHED:
                outcome = DONE
                message = result.message if result.status == "early_stopped" else ""
            elif result.status == "stopped":
                outcome, message = STOPPED, f"stopped at step {result.final_iteration} of {result.total_iters}"
            else:
                message = result.message or f"the run ended {result.status}"
        with self._lock:
            if self._skip_current and outcome == STOPPED:
                outcome, message = SKIPPED, f"skipped ({message})"
            elif outcome == STOPPED:
                self._stop = True  # stopped from outside the queue (the stop key, Ctrl-C): the sweep stops too
            run.status, run.message = outcome, "; ".join(m for m in (note, message) if m)
            if outcome == STOPPED and not (run.run_dir and _resumable(Path(run.run_dir))):
                run.status = PENDING  # nothing saved yet: it starts afresh next time
            self.current = None
            self._save()

    def _config_for(self, run: RunState) -> TrainConfig | None:
        """The config of the run's next attempt: a resume of its folder when it has resume
        state, else the sweep's config (a fresh run folder)."""
        planned = self.sweep.run(run.label).config
        if run.run_dir is None:
            return self._fresh(run, planned)
        folder = Path(run.run_dir)
        state = read_state(folder)
        if state is not None and state.get("status") in _FINISHED:
            run.status = DONE  # it finished; the kill came before the queue was written
            run.message = ""
            return None
        if state is None or not _resumable(folder):
            run.abandoned.append(str(folder))
            run.message = f"restarted: {folder} has no checkpoint to resume from (kept as it is)"
            run.run_dir = None
            return self._fresh(run, planned)
        try:
            saved = load_config(folder / "config.yaml")
        except ConfigError as e:
            run.abandoned.append(str(folder))
            run.message = f"restarted: {folder} cannot be resumed ({e})"
            run.run_dir = None
            return self._fresh(run, planned)
        run.resumed_from.append(int(state.get("iteration", 0)))
        # the run's own saved settings (as `mlxtui train --resume` uses them)
        return saved.with_values(resume_run=str(folder))

    def _fresh(self, run: RunState, planned: TrainConfig) -> TrainConfig:
        adapters = Path(self.sweep.sweep_dir) / "adapters" / run.label
        # --adapter-path gets a copy of the final adapter: one folder per run, inside the sweep
        return planned.with_values(run_name=run.label, adapter_path=str(adapters))

    # ------------------------------------------------------------ engine thread

    def _on_event(self, event: ev.Event) -> None:
        if (
            (isinstance(event, ev.TrainStarted | ev.TrainStep) or (isinstance(event, ev.PhaseStarted) and event.kind == "train"))
            and (self._stop or self._skip_current)
            and self.current is not None
        ):
            # a stop asked before the train job had its control (still queued or just begun)
            # reached nothing: ask again now that the job is running
            self.engine.stop()
        if isinstance(event, ev.TrainStep):
            run = self.current
            if run is not None:
                self.on_progress(run.label, event.iteration, event.total_iters)
        elif isinstance(event, ev.TrainStarted):
            with self._lock:
                run = self.current
                if run is None:
                    return
                self._job_started = True
                if run.run_dir != event.run_dir:
                    run.run_dir = event.run_dir
                    self._save()

    def _save(self) -> None:
        self.state.current = self.current.label if self.current is not None else None
        write_state(self.sweep.sweep_dir, self.state)
        snapshot = replace(self.state, runs=[replace(r) for r in self.state.runs])
        self.on_change(snapshot)


def _resumable(folder: Path) -> bool:
    return (folder / STATE_DIR / "state.json").is_file() and (folder / STATE_DIR / "optimizer.safetensors").is_file()


__all__ = ["SweepRunner"]
