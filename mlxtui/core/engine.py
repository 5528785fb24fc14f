"""THE MLX thread: one long-lived thread, a job queue, the loaded-model slot, events out.

Since MLX 0.31.2 streams are thread-local, so every MLX call (load, train, evaluate,
generate, fuse) runs here. Other threads only `submit()` jobs, flip control flags
(pause/stop/cancel) and receive events through the subscribers (`on_event` and any added with
`subscribe`). Subscribers are called on this thread, and for `MemorySampled` on the telemetry
thread (memory is sampled every second whatever MLX is doing): they must hand events over to
their own thread (Textual's `post_message` is thread-safe; a queue works for anything else).

What each job does lives in `mlxtui.core.jobs` (one module per kind); this module only
schedules them.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig
from mlxtui.core.datadir import DataDirError, resolve_data_dir
from mlxtui.core.jobs import (
    Benchmark,
    Call,
    Compare,
    Estimate,
    Evaluate,
    ExportGGUF,
    FreeModel,
    Fuse,
    Generate,
    Job,
    LoadModel,
    Train,
    UseAdapter,
)
from mlxtui.core.jobs.context import EngineError, JobContext, ModelSlot
from mlxtui.core.metrics import MetricsWriter
from mlxtui.core.progress import Interrupted, Reporter
from mlxtui.core.telemetry import Telemetry

EventSink = Callable[[ev.Event], None]

_SHUTDOWN = object()
_JOBS_ALLOWED_WHILE_PAUSED = ("generate", "compare")
_CANCELLABLE = ("generate", "compare", "evaluate")
# Quitting ends these at their next safe point instead of waiting for them: nothing is lost
# (a load between its phases), and a model load can take a minute.
_ENDED_BY_SHUTDOWN = ("load",)
# Jobs that leave the slot's model as loaded (a train job takes a fresh one itself).
_KEEP_FRESH = ("load", "train", "estimate", "call")
# `memory_interval=0` used to mean "sample at every chance"; a sampler thread needs a period.
_MIN_MEMORY_INTERVAL = 0.01


def _runner(kind: str) -> Callable[[JobContext], Any]:
    """The function that runs a job kind (imported on first use: `mlxtui --help` stays light)."""
    from mlxtui.core.jobs import benchmark, estimate, evaluate, export, generate, load, train

    runners: dict[str, Callable[[JobContext], Any]] = {
        "load": load.run,
        "free": load.free,
        "use_adapter": load.use_adapter,
        "train": train.run,
        "generate": generate.run,
        "compare": generate.run_compare,
        "evaluate": evaluate.run,
        "benchmark": benchmark.run,
        "fuse": export.run,
        "export": export.run,
        "estimate": estimate.run,
        "call": lambda ctx: ctx.job.fn(ctx.engine),
    }
    if kind not in runners:
        raise EngineError(f"unknown job kind {kind!r}")
    return runners[kind]


class Engine:
    def __init__(
        self,
        on_event: EventSink,
        memory_probe: Any = None,
        memory_interval: float = 1.0,
    ) -> None:
        # the run's metrics.jsonl is written first: a subscriber that reacts to an event (a
        # "paused" shown, a run listed) finds the file already saying so
        self._fan_out = _FanOut([MetricsWriter(), on_event])
        self._queue: queue.Queue[tuple[int, Job] | object] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._cancellable: dict[int, Job] = {}  # queued or running jobs that esc can stop
        self._lock = threading.Lock()
        self._deferred: list[tuple[int, Job]] = []
        self._closing = threading.Event()
        self.control: Any = None  # TrainControl of the running train job
        self.memory_interval = max(memory_interval, _MIN_MEMORY_INTERVAL)
        # The fan-out, not self.emit: a sampler holding the engine would keep the engine (and
        # its model) alive after shutdown until the cycle collector happens to run.
        self.telemetry = Telemetry(self._fan_out, probe=memory_probe, interval=self.memory_interval)
        self.guard: Any = None  # the MemoryGuard armed on the telemetry during a train job
        self.current_job: str | None = None
        self.slot = ModelSlot()  # owned by the engine thread

    # the slot's fields under their old names (the Python API and tests read them)
    model = property(lambda self: self.slot.model)
    tokenizer = property(lambda self: self.slot.tokenizer)
    model_info = property(lambda self: self.slot.info)
    model_spec = property(lambda self: self.slot.spec)
    adapter_path = property(lambda self: self.slot.adapter_path)
    last_run_dir = property(lambda self: self.slot.last_run_dir)

    # -------------------------------------------------------------- any thread

    def subscribe(self, sink: EventSink) -> None:
        """Add an event subscriber, called after the earlier ones (on the engine thread; on the
        telemetry thread for MemorySampled)."""
        self._fan_out.sinks.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        if sink in self._fan_out.sinks:
            self._fan_out.sinks.remove(sink)

    @property
    def memory_history(self) -> Any:
        return self.telemetry.history

    def start(self) -> None:
        self.telemetry.start()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mlx-engine", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> int:
        job_id = next(self._ids)
        if job.kind in _CANCELLABLE:
            with self._lock:
                self._cancellable[job_id] = job
        self._queue.put((job_id, job))
        return job_id

    def pause(self) -> None:
        if self.control is not None:
            self.control.request_pause("user")

    def resume(self) -> None:
        if self.control is not None:
            if self.guard is not None:
                self.guard.reset()  # a person chose to continue: watch afresh
            self.control.request_resume()

    def stop(self) -> None:
        if self.control is not None:
            self.control.request_stop()
        self.cancel_generation()

    def cancel_generation(self) -> None:
        """Stop the running answer (or evaluation) and drop the ones still queued."""
        with self._lock:
            for job in self._cancellable.values():
                job.cancel.set()

    @property
    def training(self) -> bool:
        return self.control is not None

    @property
    def paused(self) -> bool:
        return self.control is not None and self.control.pause_requested

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop the engine: a training saves first, a load ends at its next safe point.

        Returns whether the engine thread ended within `timeout` (it may still be inside one
        long native call, such as reading the weights, if not).
        """
        self._closing.set()
        if self.control is not None:
            self.control.request_stop()
        self.cancel_generation()
        self._queue.put(_SHUTDOWN)
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
            if ended:
                _wait_for_native_exit(self._thread)
                self.slot = ModelSlot()  # the model's memory goes back now, not at the next GC
            self._thread = None
        self.telemetry.stop()
        return ended

    def run_sync(self, job: Job, timeout: float | None = None) -> Any:
        """Submit a job and wait for its result (headless use and the Python API)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def watch(event: ev.Event) -> None:
            if isinstance(event, ev.JobFinished | ev.JobFailed) and event.job_id == box.get("id"):
                box["event"] = event
                done.set()

        self.subscribe(watch)
        try:
            box["id"] = self.submit(job)
            if not done.wait(timeout):
                raise EngineError(f"{job.kind} did not finish within {timeout} s")
        finally:
            self.unsubscribe(watch)
        event = box["event"]
        if isinstance(event, ev.JobFailed):
            raise EngineError(event.message, event.hint)
        return event.result

    # -------------------------------------------------------------- engine thread

    def emit(self, event: ev.Event) -> None:
        self._fan_out(event)

    def _loop(self) -> None:
        while True:
            item = self._deferred.pop(0) if self._deferred else self._queue.get()
            if item is _SHUTDOWN:
                break
            job_id, job = cast(tuple[int, Job], item)
            self._run(job_id, job)

    def _context(self, job_id: int, job: Job) -> JobContext:
        def cancel_point() -> None:
            if job.cancel.is_set():
                raise Interrupted

        def closing_point() -> None:
            if self._closing.is_set():
                raise Interrupted

        safe_point = (
            cancel_point
            if job.kind in _CANCELLABLE
            else closing_point
            if job.kind in _ENDED_BY_SHUTDOWN
            else None
        )
        return JobContext(self, job_id, job, Reporter(self.emit, job_id, job.kind, safe_point))

    def _run(self, job_id: int, job: Job) -> None:
        from mlxtui.core.fileio import DiskFullError

        self.current_job = job.kind
        if job.kind not in _KEEP_FRESH:
            self.slot.fresh = None  # this job may change the model (adapters, fusing, training)
        self.emit(ev.JobStarted(job_id, job.kind, getattr(job, "description", "")))
        try:
            result = _runner(job.kind)(self._context(job_id, job))
        except Interrupted:
            # a stop that came before the job had anything to save (a run saves on its own)
            what = (
                "training stopped before it began" if job.kind == "train" else f"{job.kind} stopped"
            )
            self.emit(
                ev.JobFailed(
                    job_id, job.kind, what, "nothing was written; start it again when you want it"
                )
            )
        except EngineError as e:
            self.emit(ev.JobFailed(job_id, job.kind, str(e), e.hint))
        except ConfigError as e:
            self.emit(
                ev.JobFailed(
                    job_id,
                    job.kind,
                    str(e),
                    "fix that value (the flag, the Config pane field or the YAML key of that name)",
                    error=e,
                )
            )
        except _user_errors() as e:
            # a user's mistake (bad model path, bad GGUF, no test set…): the message says it all
            self.emit(ev.JobFailed(job_id, job.kind, str(e), _hint_for(e)))
        except DiskFullError as e:
            self.emit(
                ev.JobFailed(
                    job_id,
                    job.kind,
                    str(e.strerror),
                    "free disk space; nothing saved before was lost",
                )
            )
        except Exception as e:  # noqa: BLE001 - reported, never fatal to the engine
            hint = _hint_for(e)
            self.emit(ev.JobFailed(job_id, job.kind, f"{type(e).__name__}: {e}", hint))
            traceback.print_exc()
        else:
            self.emit(ev.JobFinished(job_id, job.kind, result))
        finally:
            if job.kind == "train":
                self.telemetry.disarm()
                self.guard = None
            self.current_job = None
            self.control = None
            with self._lock:
                self._cancellable.pop(job_id, None)

    # -------------------------------------------------------------- for jobs

    def serve_while_paused(self) -> None:
        """While training is paused: let the guard resume a memory pause, answer chat."""
        control = self.control
        if self.guard is not None and control is not None and control.pause_reason == "memory":
            decision = self.telemetry.pending_decision()
            if decision is not None and decision.action == "resume":
                self.emit(ev.Log("info", f"memory recovered ({decision.reason}): continuing"))
                control.request_resume()
                return
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return
        if item is _SHUTDOWN:
            self._queue.put(item)
            if self.control is not None:
                self.control.request_stop()
            return
        job_id, job = cast(tuple[int, Job], item)
        if job.kind in _JOBS_ALLOWED_WHILE_PAUSED:
            model = self.slot.model
            # paused mid-validation the model is in eval mode, mid-step in train mode
            was_training = bool(getattr(model, "training", True))
            model.eval()
            try:
                self._run(job_id, job)
            finally:
                self.control = control
                model.train(was_training)
        else:
            self._deferred.append((job_id, job))

    def sample_memory(self, force: bool = False) -> Any:
        """The latest memory sample; `force` takes a fresh one now (any thread may)."""
        if force or self.telemetry.latest is None:
            try:
                return self.telemetry.sample_now()
            except Exception:  # noqa: BLE001 - memory figures are advice, never a blocker
                return None
        return self.telemetry.latest

    def memory_check(
        self, config: TrainConfig, suggestions: Callable[[], list[str]]
    ) -> Callable[[], ev.MemoryAlert | None] | None:
        """What the train loop calls at each safe point: the guard's decision on the telemetry's
        samples since the last call, as an alert (None: nothing to do). The guard itself runs
        on the sampler thread (armed here); this only picks up what it decided."""
        if config.memory_guard == "off":
            self.guard = None
            self.telemetry.disarm()
            return None
        from mlxtui.core import guard as guard_mod

        self.guard = guard_mod.MemoryGuard(
            policy=cast(Any, config.memory_guard),
            swap_growth_mb_per_min=config.swap_growth_mb_per_min,
        )
        self.telemetry.arm(self.guard)

        def check() -> ev.MemoryAlert | None:
            decision = self.telemetry.pending_decision()
            if decision is None or decision.action not in ("warn", "pause"):
                return None  # a "resume" outside a memory pause has nothing to resume
            latest = self.telemetry.latest
            pressure = latest.pressure if latest is not None else "yellow"
            alert = ev.MemoryAlert(
                level=pressure if pressure != "green" else "yellow",
                action=decision.action,
                message=decision.reason,
                suggestions=tuple(suggestions()),
            )
            self.emit(alert)
            return alert

        return check

    def estimate(self, config: TrainConfig, emit: bool = True) -> ev.MemoryEstimated:
        """The memory estimate of `config` on the loaded model (engine thread only)."""
        from mlxtui.core.jobs import estimate

        return estimate.estimate(self._context(0, Estimate(config)), config, emit)


# ------------------------------------------------------------------ helpers


class _FanOut:
    """The subscribers, called in order; a subscriber's bug must not kill the calling thread."""

    def __init__(self, sinks: list[EventSink]) -> None:
        self.sinks = sinks

    def __call__(self, event: ev.Event) -> None:
        for sink in list(self.sinks):
            try:
                sink(event)
            except Exception:
                try:
                    traceback.print_exc()
                except OSError:
                    pass  # stderr is gone too (SSH closed): the event loop must go on


def _wait_for_native_exit(thread: threading.Thread, timeout: float = 2.0) -> None:
    """Wait until the OS thread is gone, not just its Python part.

    `join()` returns before the thread's C++ thread-local destructors run; MLX's take the
    GIL, and if the interpreter is finalizing by then the thread is killed mid-unwind and
    the process aborts ("terminate called without an active exception", exit 134).
    """
    native = getattr(thread, "native_id", None)
    task = Path(f"/proc/self/task/{native}")
    deadline = time.monotonic() + timeout
    if native is not None and Path("/proc/self/task").is_dir():
        while task.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(0.2)


def _resolve_data(data: str | None) -> Path:
    """The data folder `data` names (kept for callers of the old name; see core.datadir)."""
    try:
        return resolve_data_dir(data)
    except DataDirError as e:
        raise EngineError(str(e), "give a data folder, or leave it empty for the demo") from None


def _user_errors() -> tuple[type[Exception], ...]:
    """Exception types the core raises for a user's mistake, with a message that says what to do."""
    from mlxtui.core import evaluation, export, models
    from mlxtui.core.training import TrainingError

    found: list[type[Exception]] = [
        models.ModelError,
        evaluation.EvalError,
        export.ExportError,
        TrainingError,
        DataDirError,
    ]
    try:
        from mlxtui.core.gguf_import import GGUFError

        found.append(GGUFError)
    except ImportError:
        pass
    try:
        from mlxtui.core.data import PrepareError

        found.append(PrepareError)
    except ImportError:
        pass
    return tuple(found)


def _hint_for(e: Exception) -> str:
    import errno

    if isinstance(e, DataDirError):
        return "give a data folder, or leave it empty for the demo"
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" ({e.filename})" if e.filename else ""
        return f"the disk is full{where}: free some space; checkpoints already saved are intact"
    text = str(e).lower()
    if "memory" in text or isinstance(e, MemoryError):
        return "out of memory: lower batch size, layers or max_seq_length, or turn on gradient checkpointing"
    if isinstance(e, FileNotFoundError):
        return "check the path in the Config pane"
    return "see the log for details"


__all__ = [
    "Benchmark",
    "Call",
    "Compare",
    "Engine",
    "EngineError",
    "Estimate",
    "Evaluate",
    "ExportGGUF",
    "FreeModel",
    "Fuse",
    "Generate",
    "Job",
    "LoadModel",
    "Train",
    "UseAdapter",
]
