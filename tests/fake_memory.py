"""Memory samples for the tests of the history, the guard, the sampler and the engine's guard:
the numbers a 16 GB machine with 1 GB in MLX shows, at a fake time, with the swap and pressure
a test scripts.

Not a test module. The dashboard's fake engine has its own, moving numbers (test_tui_fakes.sample).
"""

from __future__ import annotations

from collections.abc import Iterator

from mlxtui.core.memory import MemorySample

MB = 1 << 20
GB = 1 << 30


def fake_sample(t: float, swap_used: int = 0, pressure: str = "green") -> MemorySample:
    """A sample at fake time `t` (seconds) with `swap_used` bytes of swap at `pressure`."""
    return MemorySample(
        timestamp=t,
        mlx_active=GB,
        mlx_cache=0,
        mlx_peak=GB,
        process_rss=2 * GB,
        system_total=16 * GB,
        system_used=12 * GB,
        system_available=4 * GB,
        swap_total=8 * GB,
        swap_used=swap_used,
        pressure=pressure,  # type: ignore[arg-type]
        pressure_source="script",
        pressure_value=None,
    )


class ScriptedProbe:
    """Plays back (swap_used, pressure) pairs, one sample per 2 s of fake time."""

    def __init__(self, script: list[tuple[int, str]]) -> None:
        self._it: Iterator[tuple[int, str]] = iter(script)
        self.t = 0.0

    def sample(self) -> MemorySample:
        swap, pressure = next(self._it)
        self.t += 2.0
        return fake_sample(self.t, swap, pressure)
