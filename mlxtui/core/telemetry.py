"""A sampler thread that never waits for MLX: memory, swap, pressure and MLX's counters.

`Telemetry` samples every `interval` seconds on a daemon thread of its own, so the dashboard
and the memory guard keep seeing memory while the engine thread is busy for minutes in a model
load, a validation, sample answers, a fuse or an export. Each sample goes into one thread-safe
`MemoryHistory` and out as `MemorySampled(sample, swap_growth_per_min)`, where the growth is
`MemoryHistory.swap_growth_per_minute()`: the one figure that the gauge shows and the guard acts
on. An armed `MemoryGuard` checks every sample here; the engine picks the decision up with
`pending_decision()` at its next safe point (between steps, batches or tokens) and acts there.

Why reading MLX from this thread is safe (mlx 0.32.4): the probe calls only
`mx.get_active_memory`, `mx.get_cache_memory` and `mx.get_peak_memory`. On every back-end
(no_gpu/CPU, CUDA, Metal) they return a size_t member of the process-wide allocator, read
without taking the allocator's mutex, without a stream and without synchronising with running
work, so they neither need the engine's thread-local stream nor wait for it. `mx.eval` releases
the GIL, so this thread runs while the engine evaluates. tests/test_telemetry.py checks it: a
worker thread holds one `mx.eval` of a long matmul chain for seconds while samples keep coming
at least once a second and see the worker's allocations. Left out of the sampler on purpose:
anything that makes arrays, evaluates, or touches a stream (`mx.eval`, `mx.synchronize`,
`mx.clear_cache`, `mx.reset_peak_memory`); those stay on the engine thread. The engine's long
MLX calls let this thread run too: with a 10 ms ticker thread beside them, the largest gap was
31 ms while `mx.save_safetensors` wrote 512 MiB (2.4 s) and 18 ms while `mx.eval` read them
back after a lazy `mx.load` (mlx 0.32.4, Linux CPU).

Events are emitted on the sampler thread (or on the thread that calls `sample_now`), in
sample order; a subscriber's exception is printed once and counted, never fatal. Subscribers
must return quickly and must not wait for the engine thread.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.guard import GuardDecision, MemoryGuard
from mlxtui.core.memory import MemoryHistory, MemoryProbe, MemorySample, SystemMemoryProbe

THREAD_NAME = "mlxtui-telemetry"
# Five minutes at one sample a second: the 60 s swap window stays full even when the engine
# also forces samples with sample_now().
HISTORY_LEN = 300


class Telemetry:
    """Samples memory every `interval` seconds on its own thread and emits `MemorySampled`."""

    def __init__(
        self,
        on_event: Callable[[ev.Event], None],
        probe: Any = None,
        interval: float = 1.0,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"telemetry interval must be more than 0 seconds, not {interval!r}")
        self._on_event = on_event
        self._probe: MemoryProbe = probe if probe is not None else SystemMemoryProbe()
        self.interval = float(interval)
        self.history = MemoryHistory(maxlen=HISTORY_LEN)
        # One re-entrant lock orders probe, history, guard and emission, so events leave in
        # sample order even when sample_now() races the thread; re-entrant so that a
        # subscriber may itself call sample_now().
        self._lock = threading.RLock()
        self._guard: MemoryGuard | None = None
        self._pending: GuardDecision | None = None
        # start/stop take their own lock, so stop() never waits behind a slow probe or subscriber
        self._life = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.subscriber_errors = 0
        self._probe_failing = False

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the sampler thread (the first sample is taken at once); a no-op if running."""
        with self._life:
            if self._thread is not None and self._thread.is_alive() and not self._stopping.is_set():
                return
            # A fresh event per thread: a previous thread still finishing its last probe keeps
            # its own (set) event and exits, whatever this one does.
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stopping,), name=THREAD_NAME, daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wait up to `timeout` seconds for it to end."""
        with self._life:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def __enter__(self) -> Telemetry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- samples

    @property
    def latest(self) -> MemorySample | None:
        return self.history.latest

    def swap_growth_per_min(self) -> float | None:
        """Swap growth in bytes/minute over the history (None until it spans a second)."""
        return self.history.swap_growth_per_minute()

    def sample_now(self) -> MemorySample:
        """Take a sample at once (any thread), check it with the armed guard and emit it.

        The probe's error, if any, is raised to the caller.
        """
        with self._lock:
            sample = self._probe.sample()
            self._record(sample)
            return sample

    # -------------------------------------------------------------- guard

    def arm(self, guard: MemoryGuard) -> None:
        """Check every following sample with `guard` (on the sampler thread)."""
        with self._lock:
            self._guard = guard
            self._pending = None

    def disarm(self) -> None:
        with self._lock:
            self._guard = None
            self._pending = None

    def pending_decision(self) -> GuardDecision | None:
        """The latest warn/pause/resume decision not yet read, then None until the next one."""
        with self._lock:
            decision, self._pending = self._pending, None
            return decision

    # -------------------------------------------------------------- internals

    def _record(self, sample: MemorySample) -> None:
        """History, guard and event for one sample; the caller holds the lock."""
        self.history.append(sample)
        growth = self.history.swap_growth_per_minute()
        if self._guard is not None:
            decision = self._guard.check(sample, growth)
            if decision.action != "none":
                self._pending = decision
        self._emit(ev.MemorySampled(sample, swap_growth_per_min=growth))

    def _emit(self, event: ev.Event) -> None:
        try:
            self._on_event(event)
        except Exception:  # a subscriber's bug must not stop the memory watch
            self.subscriber_errors += 1
            if self.subscriber_errors == 1:
                traceback.print_exc()

    def _run(self, stopping: threading.Event) -> None:
        next_at = time.monotonic()
        while not stopping.is_set():
            self._tick()
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow probe, a starved process): no burst to catch up
                next_at, delay = time.monotonic(), 0.0
            if stopping.wait(delay):
                return

    def _tick(self) -> None:
        with self._lock:
            try:
                sample = self._probe.sample()
            except Exception as exc:  # noqa: BLE001 - reported as an event, sampling goes on
                if not self._probe_failing:
                    self._probe_failing = True
                    self._emit(
                        ev.Log(
                            "warning",
                            f"memory sampling failed ({type(exc).__name__}: {exc}); the memory "
                            f"figures and the memory guard stay stale until it works again "
                            f"(retrying every {self.interval:g} s)",
                        )
                    )
                return
            if self._probe_failing:
                self._probe_failing = False
                self._emit(ev.Log("info", "memory sampling works again"))
            try:
                self._record(sample)
            except Exception:  # a guard bug must not end the thread either
                traceback.print_exc()
