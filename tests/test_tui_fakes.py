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
SAMPLE_PROMPTS = (("How often do I water Lumo?", "Every three days."), ("What is Lumo?", "A fern."))


def sample_answer(prompt_index: int, iteration: int) -> str:
    return f"answer {prompt_index} at {iteration}"


def evaluate_result() -> dict[str, Any]:
    """What the engine's Evaluate job returns, with fixed numbers."""
    from mlxtui.core.evaluation import CompareReport, CompareRow

    rows = (
        CompareRow(
            "How often do I water Lumo?",
            "Every three days.",
            "Often.",
            "Every three days.",
            0.0,
            1.0,
        ),
        CompareRow("What is Lumo?", "A small fern.", "A plant.", "A fern.", 0.25, 0.8),
    )
    return {
        "losses": {"base": (2.5, 12.18), "adapter": (1.25, 3.49)},
        "report": CompareReport(rows, base_mean=0.125, adapter_mean=0.9),
        "data": "/fake/data",
    }


def benchmark_result() -> dict[str, Any]:
    from mlxtui.core.evaluation import BenchResult

    return {
        "base": BenchResult(410.5, 12.25, 55.5, 1.5, 0.75, 5),
        "adapter": BenchResult(390.0, 10.0, 50.25, 2.0, 0.8, 5),
    }


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


def swap_growth(step: int) -> float | None:
    """What core computes for the fake samples: GiB/8 more swap every 10 s, None until a span."""
    return None if step == 0 else (GiB / 8) * 60 / 10


FAKE_DEVICE = {
    "device": "Device(cpu, 0)",
    "name": "fake-cpu",
    "memory_size": 16 * GiB,
    "memory_source": "mlx",
    "recommended_working_set": 12 * GiB,
}
FAKE_AVAILABLE = 8 * GiB


def fake_estimate(config: TrainConfig) -> ev.MemoryEstimated:
    """0.5 GiB plus 1 GiB per example in a batch, against 8 GiB available: batch 4 fits,
    6 is tight, 8 will swap (the real thresholds: 70% and 100% of available)."""
    total = GiB // 2 + config.batch_size * GiB
    verdict = "fits" if total <= 0.7 * FAKE_AVAILABLE else "tight"
    if total > FAKE_AVAILABLE:
        verdict = "will swap"
    half = config.batch_size // 2
    options = ((f"batch size {config.batch_size} → {half}", GiB // 2 + half * GiB),)
    if not config.grad_checkpoint:
        options += (("gradient checkpointing on", int(total * 0.7)),)
    breakdown = {"weights": GiB // 4, "activations": total - GiB // 4}
    return ev.MemoryEstimated(total, breakdown, verdict, FAKE_AVAILABLE, "fake", options)


class FakeEngine:
    """Implements start/submit/pause/resume/stop/cancel_generation/shutdown."""

    def __init__(
        self,
        on_event: Any,
        *,
        threaded: bool = True,
        train_steps: int = 20,
        samples: bool = False,
        fail_kinds: tuple[str, ...] = (),
    ) -> None:
        self.on_event = on_event
        self.threaded = threaded
        self.train_steps = train_steps
        self.samples = samples  # emit SamplePredictions at each evaluation
        self.fail_kinds = fail_kinds  # job kinds that end in JobFailed
        self.jobs: list[Any] = []
        self.calls: list[str] = []
        self.tokenizer = None
        self.current_job: str | None = None  # the real engine's; the app reads it on quit
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
        self.load_gate = threading.Event()  # ... and a model load
        self.load_gate.set()
        self.eval_gate = threading.Event()  # ... and an evaluation after its first batch
        self.eval_gate.set()
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

    def shutdown(self, timeout: float = 10.0) -> bool:
        self.calls.append("shutdown")
        self.shut_down = True
        self._stop.set()
        self._running.set()
        self.gate.set()
        self.reply_gate.set()
        self.load_gate.set()
        self.eval_gate.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self._thread is None or not self._thread.is_alive()

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
        result: Any = None
        if getattr(job, "kind", kind) in self.fail_kinds:
            emit(ev.JobProgress(job_id, job.kind, "starting", 0, 2))
            emit(ev.JobFailed(job_id, job.kind, f"fake {job.kind} failure", "fake hint"))
            return
        if kind == "LoadModel":
            self.load_gate.wait()
            name = "fake-model" if job.spec in (None, "", "demo") else f"fake:{job.spec}"
            emit(ev.ModelLoaded(name, job.spec or "/fake/model", 4, 1_000_000, None, "float32"))
        elif kind == "Train":
            self._train(job_id, job)
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
        elif kind == "Evaluate":
            emit(ev.PhaseStarted(job_id, "evaluate", "test", "test loss", 2))
            emit(ev.PhaseProgress(job_id, "evaluate", "test", "test loss", 1, 2))
            self.eval_gate.wait()
            emit(ev.PhaseProgress(job_id, "evaluate", "test", "test loss", 2, 2))
            emit(ev.PhaseFinished(job_id, "evaluate", "test", "test loss", 0.1))
            for done in range(1, 3):
                emit(ev.JobProgress(job_id, "evaluate", "answering", done, 2))
            result = evaluate_result()
        elif kind == "Benchmark":
            emit(ev.JobProgress(job_id, "benchmark", "base run 1", 1, 10))
            result = benchmark_result()
        elif kind == "Fuse":
            emit(ev.JobProgress(job_id, "fuse", "fusing layers", 1, 1))
            result = job.save_path
        elif kind == "ExportGGUF":
            result = job.out_file
        elif kind == "Estimate":
            result = fake_estimate(job.config)
            emit(result)
        elif kind == "Call":
            result = FAKE_DEVICE if job.description == "device info" else job.fn(self)
        emit(ev.JobFinished(job_id, getattr(job, "kind", kind), result))

    def _train(self, job_id: int, job: Any) -> None:
        self.gate.wait()
        emit = self.on_event
        total = self.train_steps
        estimated = fake_estimate(job.config).total_bytes
        emit(ev.TrainStarted("/fake/run", total, 0, 1000, 1_000_000, "lora", estimated))
        status = "completed"
        for it in range(1, total + 1):
            self._running.wait()
            if self._stop.is_set():
                status = "stopped"
                break
            loss = 3.0 - 0.1 * it
            emit(ev.TrainStep(it, total, loss, 2e-4, 400.0, 2.0, 512 * it, 1.5, float(total - it)))
            if it % 5 == 0:
                emit(ev.PhaseStarted(job_id, "train", "validate", "validation", 2))
                for batch in (1, 2):
                    emit(ev.PhaseProgress(job_id, "train", "validate", "validation", batch, 2))
                emit(ev.PhaseFinished(job_id, "train", "validate", "validation", 0.5))
                emit(ev.ValReport(it, loss + 0.2, 0.5, True))
                if self.samples:
                    items = tuple(
                        ev.SamplePrediction(prompt, reference, sample_answer(i, it))
                        for i, (prompt, reference) in enumerate(SAMPLE_PROMPTS)
                    )
                    emit(ev.SamplePredictions(it, items))
                emit(ev.MemorySampled(sample(it // 5), swap_growth(it // 5)))
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
