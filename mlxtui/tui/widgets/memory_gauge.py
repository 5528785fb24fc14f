"""Memory gauge: MLX active/peak, process RSS, system used/available, swap, pressure, sparklines."""

from __future__ import annotations

from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

HISTORY = 60  # samples kept for the sparklines (about a minute at one sample per second)
_GIB = 1024**3


def format_bytes(n: int | float | None) -> str:
    """1024-based, one decimal: short enough for the narrow gauge (kept here so it never shifts)."""
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def swap_growth_per_minute(points: deque[tuple[float, int]]) -> float | None:
    """Bytes of swap added per minute over the kept samples (None until there is a span)."""
    if len(points) < 2:
        return None
    (t0, s0), (t1, s1) = points[0], points[-1]
    if t1 - t0 < 1:
        return None
    return (s1 - s0) * 60.0 / (t1 - t0)


class MemoryGauge(Widget):
    """Renders the latest `MemorySample` and the recent history of a few series."""

    DEFAULT_CSS = """
    MemoryGauge { height: 1fr; }
    MemoryGauge #mem-text { height: auto; }
    MemoryGauge .spark-row { height: 1; }
    MemoryGauge .spark-row Label { width: 6; }
    MemoryGauge .spark-row Sparkline { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.latest: Any = None
        self.pressure = "green"
        self._active: deque[float] = deque(maxlen=HISTORY)
        self._rss: deque[float] = deque(maxlen=HISTORY)
        self._used: deque[float] = deque(maxlen=HISTORY)
        self._swap: deque[tuple[float, int]] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Static("waiting for the first sample…", id="mem-text")
        for key, label in (("active", "MLX"), ("rss", "RSS"), ("used", "used")):
            with Horizontal(classes="spark-row"):
                yield Label(label)
                yield Sparkline([], id=f"spark-{key}")

    def text(self) -> str:
        return str(self.query_one("#mem-text", Static).render())

    def update_sample(self, sample: Any) -> None:
        """Show one sample (a `mlxtui.core.memory.MemorySample` or anything with its fields)."""
        self.latest = sample
        get = lambda name: int(getattr(sample, name, 0) or 0)  # noqa: E731
        self._active.append(get("mlx_active") / _GIB)
        self._rss.append(get("process_rss") / _GIB)
        self._used.append(get("system_used") / _GIB)
        self._swap.append((float(getattr(sample, "timestamp", 0.0) or 0.0), get("swap_used")))
        growth = swap_growth_per_minute(self._swap)
        pressure = str(getattr(sample, "pressure", "green") or "green")
        swap = format_bytes(get("swap_used"))
        if growth is not None:
            swap += f" {'+' if growth >= 0 else '-'}{format_bytes(abs(growth))}/m"
        lines = [
            f"MLX   {format_bytes(get('mlx_active'))}  peak {format_bytes(get('mlx_peak'))}",
            f"cache {format_bytes(get('mlx_cache'))}",
            f"RSS   {format_bytes(get('process_rss'))}",
            f"used  {format_bytes(get('system_used'))} of {format_bytes(get('system_total'))}",
            f"free  {format_bytes(get('system_available'))}",
            f"swap  {swap}",
            f"● pressure {pressure.upper()}",
        ]
        self.query_one("#mem-text", Static).update("\n".join(lines))
        self.set_pressure(pressure)
        self.query_one("#spark-active", Sparkline).data = list(self._active)
        self.query_one("#spark-rss", Sparkline).data = list(self._rss)
        self.query_one("#spark-used", Sparkline).data = list(self._used)

    def set_pressure(self, level: str) -> None:
        for name in ("green", "yellow", "red"):
            self.set_class(name == level, f"-pressure-{name}")
        self.pressure = level
