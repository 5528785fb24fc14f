"""The memory guard: decide, sample by sample, whether training should warn, pause or resume.

Pure logic over a `MemorySample` and the swap growth figure of `MemoryHistory`: the telemetry
sampler (`mlxtui.core.telemetry`) checks every sample on its own thread; the engine reads the
decision at its next safe point and acts on it (a TrainPaused(reason="memory"), a MemoryAlert).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from mlxtui.core.memory import MemoryHistory, MemorySample, format_bytes

Policy = Literal["pause", "warn", "off"]
Action = Literal["none", "warn", "pause", "resume"]

MB = 1024 * 1024
DEFAULT_SWAP_GROWTH_MB_PER_MIN = 512.0
# Consecutive calm samples (green pressure, swap not growing) before a guard pause lifts.
DEFAULT_RECOVERY_SAMPLES = 5
# Swap growth below this share of the threshold counts as "stopped growing".
CALM_GROWTH_FRACTION = 0.1


@dataclass(frozen=True)
class GuardDecision:
    action: Action
    reason: str = ""


NONE = GuardDecision("none")


class MemoryGuard:
    """Pause (or warn) when swap grows fast or the system's memory pressure turns red.

    After a guard pause, `resume` is suggested once `recovery_samples` samples in a row show
    green pressure and swap that stopped growing. A warning is given once per episode, not on
    every sample. Thread-safe: the sampler thread checks while the engine may `reset()`.
    """

    def __init__(
        self,
        policy: Policy = "pause",
        swap_growth_mb_per_min: float = DEFAULT_SWAP_GROWTH_MB_PER_MIN,
        red_pressure: bool = True,
        recovery_samples: int = DEFAULT_RECOVERY_SAMPLES,
    ) -> None:
        if policy not in ("pause", "warn", "off"):
            raise ValueError(f"memory guard policy must be pause, warn or off, not {policy!r}")
        self.policy: Policy = policy
        self.swap_growth_mb_per_min = swap_growth_mb_per_min
        self.red_pressure = red_pressure
        self.recovery_samples = max(int(recovery_samples), 1)
        self.paused = False
        self._alerting = False
        self._calm = 0
        self._lock = threading.Lock()

    def _trouble(self, sample: MemorySample, growth: float | None) -> str:
        if growth is not None and growth > self.swap_growth_mb_per_min * MB:
            return (
                f"swap is growing by {format_bytes(growth)}/min "
                f"(limit {self.swap_growth_mb_per_min:.0f} MB/min; {format_bytes(sample.swap_used)} in use)"
            )
        if self.red_pressure and sample.pressure == "red":
            return f"memory pressure is red ({sample.pressure_source}: {sample.pressure_value})"
        return ""

    def _is_calm(self, sample: MemorySample, growth: float | None) -> bool:
        # No trend yet (None) is not evidence of calm: wait for a figure.
        limit = self.swap_growth_mb_per_min * MB * CALM_GROWTH_FRACTION
        return sample.pressure == "green" and growth is not None and growth <= limit

    def check(self, sample: MemorySample, growth: float | MemoryHistory | None) -> GuardDecision:
        """Decide for `sample` given the swap growth in bytes/minute (None: no trend yet).

        Pass the very figure that is shown (`MemorySampled.swap_growth_per_min`), or a
        `MemoryHistory` that already contains `sample`, whose `swap_growth_per_minute()` is
        then used: it is the one definition of swap growth either way.
        """
        if isinstance(growth, MemoryHistory):
            growth = growth.swap_growth_per_minute()
        with self._lock:
            return self._decide(sample, growth)

    def _decide(self, sample: MemorySample, growth: float | None) -> GuardDecision:
        if self.policy == "off":
            return NONE
        if self.paused:
            if self._is_calm(sample, growth):
                self._calm += 1
                if self._calm >= self.recovery_samples:
                    self.paused = False
                    self._alerting = False
                    self._calm = 0
                    return GuardDecision(
                        "resume",
                        f"memory pressure green and swap steady for {self.recovery_samples} samples",
                    )
            else:
                self._calm = 0
            return NONE
        reason = self._trouble(sample, growth)
        if not reason:
            self._alerting = False
            return NONE
        if self.policy == "pause":
            self.paused = True
            self._calm = 0
            return GuardDecision("pause", reason)
        if self._alerting:
            return NONE
        self._alerting = True
        return GuardDecision("warn", reason)

    def reset(self) -> None:
        """Forget a guard pause (e.g. the user resumed by hand)."""
        with self._lock:
            self.paused = False
            self._alerting = False
            self._calm = 0
