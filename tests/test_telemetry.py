"""Tests of mlxtui.core.telemetry: the sampler thread keeps its cadence whatever another thread
does (a real MLX evaluation included), the guard decides on its samples, and stop() joins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import mlx.core as mx
import pytest
from fake_memory import MB, fake_sample

from mlxtui.core import events as ev
from mlxtui.core.guard import MemoryGuard
from mlxtui.core.memory import MemorySample
from mlxtui.core.telemetry import THREAD_NAME, Telemetry


class SwapProbe:
    """Fake swap: one sample per 2 s of fake time, swap rising by `step` bytes per sample."""

    def __init__(self) -> None:
        self.t = 0.0
        self.swap = 0
        self.step = 0
        self.pressure = "green"

    def sample(self) -> MemorySample:
        self.t += 2.0
        self.swap += self.step
        return fake_sample(self.t, self.swap, self.pressure)


class Recorder:
    """The on_event subscriber: keeps events and the monotonic time each one arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[ev.Event] = []
        self.arrivals: list[float] = []

    def __call__(self, event: ev.Event) -> None:
        with self.lock:
            self.events.append(event)
            self.arrivals.append(time.monotonic())

    def samples(self) -> list[tuple[float, ev.MemorySampled]]:
        with self.lock:
            return [
                (t, e)
                for t, e in zip(self.arrivals, self.events, strict=True)
                if isinstance(e, ev.MemorySampled)
            ]


def wait_until(cond: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"condition not met within {timeout} s")


def arrivals_between(rec: Recorder, start: float, end: float) -> list[float]:
    return [t for t, _ in rec.samples() if start <= t <= end]


def largest_gap(times: list[float], start: float, end: float) -> float:
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


# ---------------------------------------------------------------- cadence under load


def test_samples_keep_coming_while_another_thread_is_in_a_long_mx_eval():
    """The real probe reads MLX's allocator counters from the sampler thread while a worker
    thread sits in ONE `mx.eval` of a long matmul chain: samples keep arriving at least once a
    second, and they see the worker's live allocations (not a value frozen before the eval)."""
    rec = Recorder()
    box: dict[str, float] = {}
    n = 1024
    worker_ready = threading.Event()

    def slow_job() -> None:
        # Arrays are made and evaluated on this thread (MLX streams are thread-local).
        a = mx.random.normal((n, n))
        b = mx.random.normal((n, n)) * (n**-0.5)  # keeps the chain's values finite
        mx.eval(a, b)
        t = time.perf_counter()
        mx.eval(a @ b)
        one = max(time.perf_counter() - t, 1e-4)
        links = int(min(max(2.5 / one, 4), 20_000))  # one evaluation of about 2.5 s
        x = a
        for _ in range(links):
            x = x @ b
        box["before"] = float(mx.get_active_memory())
        worker_ready.set()
        box["start"] = time.monotonic()
        mx.eval(x)
        box["end"] = time.monotonic()

    with Telemetry(rec, interval=0.2) as telemetry:
        worker = threading.Thread(target=slow_job)
        worker.start()
        worker.join(120)
        assert not worker.is_alive()
        assert telemetry.running
    start, end = box["start"], box["end"]
    assert end - start >= 1.5, "the evaluation was too short to prove anything"
    during = [(t, e.sample) for t, e in rec.samples() if start <= t <= end]
    assert largest_gap([t for t, _ in during], start, end) < 1.0
    assert len(during) >= int(end - start)
    # Intermediate products of the chain (4 MiB each) exist only inside the evaluation.
    assert max(s.mlx_active for _, s in during) >= box["before"] + 4 * MB


def _sleep_job() -> None:
    time.sleep(2.5)


def _python_job() -> None:
    # Pure Python holds the GIL except at the interpreter's switch points (every 5 ms).
    deadline = time.monotonic() + 2.5
    x = 0
    while time.monotonic() < deadline:
        x += sum(range(1000))


@pytest.mark.parametrize("job", [_sleep_job, _python_job], ids=["sleep", "pure-python"])
def test_samples_keep_coming_while_a_slow_job_holds_another_thread(job):
    rec = Recorder()
    with Telemetry(rec, interval=0.25):
        worker = threading.Thread(target=job)
        start = time.monotonic()
        worker.start()
        worker.join(30)
        end = time.monotonic()
    times = arrivals_between(rec, start, end)
    assert len(times) >= int(end - start)
    assert largest_gap(times, start, end) < 1.0
    # real samples from this machine
    assert all(e.sample.system_total > 0 for _, e in rec.samples())


# ---------------------------------------------------------------- guard


def test_armed_guard_pauses_on_a_swap_ramp_then_resumes_after_recovery():
    rec = Recorder()
    probe = SwapProbe()
    limit_mb = 512
    telemetry = Telemetry(rec, probe=probe, interval=0.01)
    telemetry.arm(MemoryGuard("pause", swap_growth_mb_per_min=limit_mb, recovery_samples=3))
    telemetry.start()
    try:
        wait_until(lambda: len(telemetry.history) >= 5)
        assert telemetry.pending_decision() is None  # calm: nothing to act on
        probe.step = 64 * MB  # 64 MB per 2 s = 1.9 GB/min
        pause = wait_until(telemetry.pending_decision)
        assert pause.action == "pause"  # type: ignore[attr-defined]
        assert "swap is growing" in pause.reason  # type: ignore[attr-defined]
        # the figure the guard acted on is the one the events carry
        growth = rec.samples()[-1][1].swap_growth_per_min
        assert growth is not None and growth > limit_mb * MB
        assert telemetry.pending_decision() is None  # cleared on read; still paused, no repeat
        probe.step = 0
        resume = wait_until(telemetry.pending_decision)
        assert resume.action == "resume"  # type: ignore[attr-defined]
        growth = telemetry.swap_growth_per_min()
        assert growth is not None and growth <= 0.1 * limit_mb * MB
    finally:
        telemetry.stop()
    assert not telemetry.running


def test_decisions_follow_sample_now_one_by_one():
    """Driven by hand: the same decisions as the guard's own tests, read through the telemetry."""
    rec = Recorder()
    probe = SwapProbe()
    telemetry = Telemetry(rec, probe=probe)
    telemetry.arm(MemoryGuard("pause", swap_growth_mb_per_min=512, recovery_samples=3))
    actions = []
    for step in [0] * 5 + [64 * MB] * 7 + [0] * 40:
        probe.step = step
        telemetry.sample_now()
        decision = telemetry.pending_decision()
        actions.append(decision.action if decision else "none")
    assert actions[:5] == ["none"] * 5
    assert 5 <= actions.index("pause") < 12
    assert actions.count("pause") == 1 and actions.count("resume") == 1
    assert actions.index("resume") > 12
    growths = [e.swap_growth_per_min for _, e in rec.samples()]
    assert growths[0] is None  # one sample is no trend
    assert (
        growths[-1] == telemetry.swap_growth_per_min() == telemetry.history.swap_growth_per_minute()
    )
    assert not telemetry.running  # sample_now needs no thread


def test_pending_decision_is_the_latest_and_disarm_clears_it():
    probe = SwapProbe()
    telemetry = Telemetry(lambda e: None, probe=probe)
    telemetry.arm(MemoryGuard("pause", recovery_samples=1))
    probe.pressure = "red"
    telemetry.sample_now()  # pause, not read
    probe.pressure = "green"
    telemetry.sample_now()
    telemetry.sample_now()  # calm with a trend: resume
    decision = telemetry.pending_decision()
    assert decision is not None and decision.action == "resume"
    assert telemetry.pending_decision() is None
    probe.pressure = "red"
    telemetry.sample_now()
    telemetry.disarm()
    assert telemetry.pending_decision() is None
    telemetry.sample_now()
    assert telemetry.pending_decision() is None  # disarmed: no guard checks


# ---------------------------------------------------------------- robustness and lifecycle


def test_a_failing_subscriber_does_not_stop_sampling(capsys):
    calls = []

    def broken(event: ev.Event) -> None:
        calls.append(event)
        raise RuntimeError("subscriber bug")

    telemetry = Telemetry(broken, probe=SwapProbe(), interval=0.01)
    telemetry.start()
    try:
        wait_until(lambda: len(calls) >= 5)
        assert telemetry.running
    finally:
        telemetry.stop()
    assert telemetry.subscriber_errors >= 5
    printed = capsys.readouterr().err
    assert printed.count("RuntimeError: subscriber bug") == 1  # printed once, then counted


def test_a_failing_probe_is_reported_once_and_sampling_recovers():
    class FlakyProbe(SwapProbe):
        failures = 3

        def sample(self) -> MemorySample:
            if self.failures:
                self.failures -= 1
                raise OSError("/proc/meminfo: permission denied")
            return super().sample()

    rec = Recorder()
    with Telemetry(rec, probe=FlakyProbe(), interval=0.01):
        wait_until(lambda: rec.samples())
    logs = [e for e in rec.events if isinstance(e, ev.Log)]
    assert [log.level for log in logs] == ["warning", "info"]
    assert "permission denied" in logs[0].message and "retrying" in logs[0].message
    first_sample = next(i for i, e in enumerate(rec.events) if isinstance(e, ev.MemorySampled))
    assert rec.events.index(logs[1]) < first_sample


def test_start_is_idempotent_and_stop_joins_the_thread():
    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == THREAD_NAME]

    before = len(ours())
    rec = Recorder()
    telemetry = Telemetry(rec, probe=SwapProbe(), interval=0.01)
    telemetry.start()
    telemetry.start()
    assert len(ours()) == before + 1
    assert all(t.daemon for t in ours())
    wait_until(lambda: len(rec.events) >= 3)
    telemetry.stop()
    assert len(ours()) == before and not telemetry.running
    count = len(rec.events)
    time.sleep(0.1)
    assert len(rec.events) == count  # nothing after stop()
    telemetry.start()  # and it can start again
    wait_until(lambda: len(rec.events) > count)
    telemetry.stop()
    assert len(ours()) == before


def test_first_sample_comes_at_once_and_latest_follows():
    rec = Recorder()
    telemetry = Telemetry(rec, interval=10.0)
    start = time.monotonic()
    telemetry.start()
    try:
        wait_until(lambda: rec.samples(), timeout=5.0)
        assert time.monotonic() - start < 5.0  # not after the 10 s interval
        assert telemetry.latest is rec.samples()[0][1].sample
    finally:
        telemetry.stop()


def test_sample_now_from_many_threads_keeps_events_in_sample_order():
    class CountingProbe:
        """Not thread-safe on purpose: the telemetry's lock must serialise it."""

        def __init__(self) -> None:
            self.n = 0

        def sample(self) -> MemorySample:
            n = self.n
            time.sleep(0)  # invite a thread switch between read and write
            self.n = n + 1
            return fake_sample(float(n + 1))

    rec = Recorder()
    telemetry = Telemetry(rec, probe=CountingProbe(), interval=0.001)
    telemetry.start()
    workers = [
        threading.Thread(target=lambda: [telemetry.sample_now() for _ in range(100)])
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    telemetry.stop()
    stamps = [e.sample.timestamp for _, e in rec.samples()]
    assert stamps == [float(i) for i in range(1, len(stamps) + 1)]
    assert len(stamps) >= 400


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="more than 0 seconds"):
        Telemetry(lambda e: None, interval=0)
