"""A fake engine for the dashboard tests: the Engine interface, scripted events, no MLX.

With `threaded=True` it emits from its own background thread, as the real engine does, so the
tests exercise the thread-safe path; with `threaded=False` it emits inline, in order, for
deterministic snapshots.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Train
from mlxtui.core.memory import MemorySample

GiB = 1024**3
REPLY_TOKENS = ("Lumo ", "needs ", "water ", "every ", "three ", "days.")


def sample(step: int, pressure: str = "green") -> MemorySample:
    """Memory numbers that change with `step`, at fixed fake timestamps (no clock)."""
    return MemorySample(
        timestamp=1000.0 + 10 * step,
        mlx_active=(1 + step) * GiB // 4,
        mlx_cache=GiB // 8,
        mlx_peak=(2 + step) * GiB // 4,
        process_rss=(2 + step) * GiB // 2,
        system_total=16 * GiB,
        system_used=(6 + step) * GiB,
        system_available=(10 - step) * GiB,
        swap_total=4 * GiB,
        swap_used=step * GiB // 8,
        pressure=pressure,  # type: ignore[arg-type]
        pressure_source="fake",
        pressure_value=None,
    )


class FakeEngine:
    """Implements start/submit/pause/resume/stop/cancel_generation/shutdown."""

    def __init__(self, on_event: Any, *, threaded: bool = True, train_steps: int = 20) -> None:
        self.on_event = on_event
        self.threaded = threaded
        self.train_steps = train_steps
        self.jobs: list[Any] = []
        self.calls: list[str] = []
        self.tokenizer = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self.gate = threading.Event()  # tests may hold training before it starts
        self.gate.set()
        self.reply_gate = threading.Event()  # ... and a reply before its first token
        self.reply_gate.set()
        self.shut_down = False

    # --------------------------------------------------------- interface

    def start(self) -> None:
        self.calls.append("start")
        if self.threaded:
            self._thread = threading.Thread(target=self._loop, name="fake-engine", daemon=True)
            self._thread.start()
        self.on_event(ev.MemorySampled(sample(0)))

    def submit(self, job: Any) -> int:
        self.jobs.append(job)
        job_id = len(self.jobs)
        if type(job).__name__ in ("Generate", "Compare"):
            self._cancel.clear()  # here, not on the thread, so an early cancel is not lost
        if type(job).__name__ == "Train":
            self._stop.clear()
        if self.threaded:
            self._queue.put((job_id, job))
        else:
            self._run(job_id, job)
        return job_id

    def pause(self) -> None:
        self.calls.append("pause")
        self._running.clear()
        self.on_event(ev.TrainPaused(0, "user"))

    def resume(self) -> None:
        self.calls.append("resume")
        self._running.set()
        self.on_event(ev.TrainResumed(0))

    def stop(self) -> None:
        self.calls.append("stop")
        self._stop.set()
        self._running.set()

    def cancel_generation(self) -> None:
        self.calls.append("cancel_generation")
        self._cancel.set()

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        self.shut_down = True
        self._stop.set()
        self._running.set()
        self.gate.set()
        self.reply_gate.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --------------------------------------------------------- the scripted jobs

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(*item)

    def _run(self, job_id: int, job: Any) -> None:
        kind = type(job).__name__
        emit = self.on_event
        emit(ev.JobStarted(job_id, getattr(job, "kind", kind)))
        if kind == "LoadModel":
            emit(ev.ModelLoaded("fake-model", "/fake/model", 4, 1_000_000, None, "float32"))
        elif kind == "Train":
            self._train(job)
        elif kind in ("Generate", "Compare"):
            self.reply_gate.wait()
            for slot in ("A", "B") if kind == "Compare" else ("",):
                text = ""
                for token in REPLY_TOKENS:
                    if self._cancel.is_set():
                        break
                    text += token
                    emit(ev.GenerationToken(job_id, token, slot))
                emit(
                    ev.GenerationDone(
                        job_id,
                        text,
                        slot,
                        10,
                        len(REPLY_TOKENS),
                        100.0,
                        50.0,
                        0.1,
                        stopped=self._cancel.is_set(),
                    )
                )
        emit(ev.JobFinished(job_id, getattr(job, "kind", kind)))

    def _train(self, job: Any) -> None:
        self.gate.wait()
        emit = self.on_event
        total = self.train_steps
        emit(ev.TrainStarted("/fake/run", total, 0, 1000, 1_000_000, "lora"))
        status = "completed"
        for it in range(1, total + 1):
            self._running.wait()
            if self._stop.is_set():
                status = "stopped"
                break
            loss = 3.0 - 0.1 * it
            emit(ev.TrainStep(it, total, loss, 2e-4, 400.0, 2.0, 512 * it, 1.5, float(total - it)))
            if it % 5 == 0:
                emit(ev.ValReport(it, loss + 0.2, 0.5, True))
                emit(ev.MemorySampled(sample(it // 5)))
        emit(ev.TrainFinished("/fake/run", "/fake/run/adapters", it, total, status, 1.2, total))


def test_fake_engine_emits_in_order() -> None:
    got: list[ev.Event] = []
    engine = FakeEngine(got.append, threaded=False, train_steps=5)
    engine.start()
    engine.submit(Train(TrainConfig.quick_start()))
    kinds = [type(e).__name__ for e in got]
    assert kinds[:3] == ["MemorySampled", "JobStarted", "TrainStarted"]
    assert kinds.count("TrainStep") == 5
    assert kinds[-2:] == ["TrainFinished", "JobFinished"]
