"""The memory guard inside a real training run, driven by an injected memory probe.

The probe is read by the engine's telemetry thread, at its own cadence; the guard decides
there and the train loop acts at its next safe point.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from demo_slice import demo_slice
from fake_memory import GB, MB, fake_sample

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Estimate, Train
from mlxtui.core.memory import MemorySample


class SwapRampProbe:
    """Calm until armed (at a training step), then swap grows 200 MB per (fake) second for at
    least `ramp` samples and until released (when training pauses: the sampler runs at its own
    pace, so the recovery must not come before the run could act), then steady again."""

    def __init__(self, ramp: int) -> None:
        self.n = 0
        self.t = 1000.0
        self.swap = 0
        self.ramp = ramp
        self.armed_at: int | None = None
        self.released = False
        self.lock = threading.Lock()

    def arm(self) -> None:
        with self.lock:
            if self.armed_at is None:
                self.armed_at = self.n

    def release(self) -> None:
        with self.lock:
            self.released = True

    def sample(self) -> MemorySample:
        with self.lock:
            self.n += 1
            ramping = self.armed_at is not None and (
                self.n <= self.armed_at + self.ramp or not self.released
            )
            if ramping:
                self.t += 1.0
                self.swap += 200 * MB
                pressure = "yellow"
            else:
                self.t += 30.0  # recovery samples far apart: the ramp leaves the window
                pressure = "green"
            return fake_sample(self.t, self.swap, pressure)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("data"), train=24, valid=4)


def run(model: Path, data: Path, tmp: Path, probe: SwapRampProbe, policy: str) -> tuple[object, list[ev.Event]]:
    events: list[ev.Event] = []

    def sink(e: ev.Event) -> None:
        events.append(e)
        if isinstance(e, ev.TrainStep) and e.iteration == 3:
            probe.arm()
        if isinstance(e, ev.TrainPaused):
            probe.release()

    engine = Engine(sink, memory_probe=probe, memory_interval=0.0)
    engine.start()
    cfg = TrainConfig().with_values(
        model=str(model), data=str(data), runs_dir=str(tmp), num_layers=2, iters=16, steps_per_eval=100,
        val_batches=1, learning_rate=1e-3, memory_guard=policy, swap_growth_mb_per_min=512,
    )
    try:
        return engine.run_sync(Train(cfg), timeout=600), events
    finally:
        engine.shutdown()


def test_a_swap_ramp_pauses_training_and_recovery_continues_it(tiny_model_dir, data, tmp_path):
    result, events = run(tiny_model_dir, data, tmp_path, SwapRampProbe(ramp=6), "pause")
    paused = [e for e in events if isinstance(e, ev.TrainPaused)]
    assert [p.reason for p in paused] == ["memory"]
    assert "swap is growing" in paused[0].message
    assert "batch size" in paused[0].message  # the estimator's alternatives are offered
    alerts = [e for e in events if isinstance(e, ev.MemoryAlert)]
    assert alerts and alerts[0].action == "pause" and alerts[0].suggestions
    assert any(isinstance(e, ev.TrainResumed) for e in events)
    assert any(isinstance(e, ev.Log) and "memory recovered" in e.message for e in events)
    assert result.status == "completed" and result.final_iteration == 16


def test_warn_policy_warns_and_never_pauses(tiny_model_dir, data, tmp_path):
    result, events = run(tiny_model_dir, data, tmp_path, SwapRampProbe(ramp=6), "warn")
    assert not any(isinstance(e, ev.TrainPaused) for e in events)
    assert [e.action for e in events if isinstance(e, ev.MemoryAlert)] == ["warn"]
    assert result.status == "completed"


def test_off_policy_ignores_swap(tiny_model_dir, data, tmp_path):
    _, events = run(tiny_model_dir, data, tmp_path, SwapRampProbe(ramp=6), "off")
    assert not any(isinstance(e, ev.TrainPaused | ev.MemoryAlert) for e in events)
    assert any(isinstance(e, ev.MemorySampled) for e in events)


def test_estimate_job_emits_a_verdict_for_the_config(tiny_model_dir, data):
    events: list[ev.Event] = []
    engine = Engine(events.append, memory_probe=SwapRampProbe(ramp=0))
    engine.start()
    try:
        from mlxtui.core.engine import LoadModel

        engine.run_sync(LoadModel(str(tiny_model_dir)))
        cfg = TrainConfig().with_values(model=str(tiny_model_dir), data=str(data), num_layers=2)
        small = engine.run_sync(Estimate(cfg))
        big = engine.run_sync(Estimate(cfg.with_values(batch_size=16)))
    finally:
        engine.shutdown()
    assert small.verdict == "fits" and small.available_bytes == 4 * GB
    assert big.total_bytes > small.total_bytes
    assert any(label.startswith("batch size") for label, _ in big.options)
    assert sum(isinstance(e, ev.MemoryEstimated) for e in events) == 2


def test_memory_samples_keep_coming_while_a_slow_job_holds_the_engine_thread():
    import time

    from mlxtui.core.engine import Call

    arrivals: list[tuple[str, float]] = []

    def sink(e: ev.Event) -> None:
        if isinstance(e, ev.MemorySampled):
            arrivals.append(("sample", time.monotonic()))
        elif isinstance(e, ev.JobStarted | ev.JobFinished):
            arrivals.append((type(e).__name__, time.monotonic()))

    engine = Engine(sink, memory_interval=0.2)  # the real probe
    engine.start()
    try:
        engine.run_sync(Call(fn=lambda engine: time.sleep(2.0), description="slow"))
    finally:
        engine.shutdown()
    started = next(t for kind, t in arrivals if kind == "JobStarted")
    finished = next(t for kind, t in arrivals if kind == "JobFinished")
    during = [t for kind, t in arrivals if kind == "sample" and started <= t <= finished]
    assert len(during) >= 8  # 2 s at one sample per 0.2 s, none waiting for the engine
    gaps = [b - a for a, b in zip([started, *during], [*during, finished], strict=True)]
    assert max(gaps) < 0.6


def test_a_guard_pause_acts_between_validation_batches(tiny_model_dir, tmp_path):
    data = demo_slice(tmp_path / "data", train=24, valid=30)
    probe = SwapRampProbe(ramp=6)
    events: list[ev.Event] = []
    box: dict[str, Engine] = {}

    def sink(e: ev.Event) -> None:
        events.append(e)
        if isinstance(e, ev.PhaseProgress) and e.phase == "validate" and e.done == 2 and probe.armed_at is None:
            probe.arm()
            for _ in range(10):  # ramp samples now, so the guard has its trend before batch 3
                box["engine"].telemetry.sample_now()
        if isinstance(e, ev.TrainPaused):
            probe.release()

    engine = Engine(sink, memory_probe=probe, memory_interval=0.05)
    box["engine"] = engine
    engine.start()
    cfg = TrainConfig().with_values(
        model=str(tiny_model_dir), data=str(data), runs_dir=str(tmp_path / "runs"), num_layers=2, iters=4,
        steps_per_eval=100, val_batches=-1, learning_rate=1e-3, memory_guard="pause", swap_growth_mb_per_min=512,
        sample_prompts=0,
    )
    try:
        result = engine.run_sync(Train(cfg), timeout=600)
    finally:
        engine.shutdown()
    assert result.status == "completed"
    paused = [e for e in events if isinstance(e, ev.TrainPaused)]
    assert [(p.iteration, p.reason) for p in paused] == [(0, "memory")]
    # it paused right after batch 2 of the first validation, before batch 3 and the steps
    order = [e for e in events if isinstance(e, ev.TrainPaused | ev.PhaseProgress | ev.TrainStep)]
    i = order.index(paused[0])
    assert isinstance(order[i - 1], ev.PhaseProgress) and (order[i - 1].phase, order[i - 1].done) == ("validate", 2)
    assert isinstance(order[i + 1], ev.PhaseProgress) and order[i + 1].done == 3
    assert any(isinstance(e, ev.TrainResumed) for e in events)
