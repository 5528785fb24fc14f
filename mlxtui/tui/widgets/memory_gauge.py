"""The Memory pane: MLX active/cache/peak, process RSS, system, swap and its growth, pressure and its
source, short sparklines, the device, and a banner when the memory guard warns or pauses.

It renders `MemorySample`s and engine events; the device description comes once from
`mlxtui.core.memory.device_info()` run on the engine thread (a `Call` job), never from here.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Sparkline, Static

from mlxtui.core import events as ev
from mlxtui.core.memory import MemoryHistory, MemorySample
from mlxtui.tui import messages
from mlxtui.tui.widgets.loss_plot import on_screen

# The figures' lines: always this many rows, none wraps (a line wider than the pane ends in "…"),
# so a new sample redraws them in place instead of laying the whole screen out again.
TEXT_LINES = 8  # MLX, cache, RSS, used, free, swap, swap growth, pressure
HISTORY = 60  # samples kept for the sparklines (about a minute at one sample per second)
SERIES = (
    ("active", "MLX", "mlx_active"),
    ("rss", "RSS", "process_rss"),
    ("used", "used", "system_used"),
    ("swap", "swap", "swap_used"),
)
# Pressure levels (core names them by traffic-light colour) drawn in the theme's colours.
PRESSURE_STYLE = {"green": "bold $success", "yellow": "bold $warning", "red": "bold $error"}
DEVICE_JOB = "device info"


def format_bytes(n: int | float | None) -> str:
    """1024-based, one decimal: short enough for the narrow gauge (kept here so it never shifts)."""
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def pressure_source(sample: Any) -> str:
    """Where the pressure level comes from, with its raw value, in a few words."""
    source = str(getattr(sample, "pressure_source", "") or "")
    value = getattr(sample, "pressure_value", None)
    if "pressure/memory" in source:
        return f"PSI {value:.1f}%" if isinstance(value, int | float) else "PSI"
    if source == "available/total":
        return f"{value * 100:.0f}% available" if isinstance(value, int | float) else source
    if source.startswith("macOS"):
        return f"macOS level {value:.0f}" if isinstance(value, int | float) else "macOS"
    return source


def device_text(info: dict[str, Any]) -> str:
    name = str(info.get("name") or info.get("device") or "unknown device")
    # "Device(gpu, 0)" -> "gpu"
    device = str(info.get("device", "")).removeprefix("Device(").split(",")[0].strip(")")
    if device and device not in name:
        name = f"{device} · {name}"
    memory = info.get("memory_size")
    text = name
    if memory:
        source = info.get("memory_source")
        text += f" · {format_bytes(memory)}" + (" RAM" if source == "system RAM" else "")
    working_set = info.get("recommended_working_set")
    if working_set:
        text += f" (rec. {format_bytes(working_set)})"
    return text


def _fetch_device_info(engine: Any) -> dict[str, Any]:
    """Runs on the engine thread; never raises (the gauge shows what it got)."""
    try:
        from mlxtui.core.memory import device_info

        return device_info()
    except Exception as exc:  # noqa: BLE001 - the pane shows the reason instead
        return {"name": "unknown device", "error": str(exc)}


class MemoryGauge(VerticalScroll):
    """Renders the latest `MemorySample`, the recent history, the device and memory alerts."""

    DEFAULT_CSS = """
    MemoryGauge { height: 1fr; scrollbar-size-vertical: 1; }
    MemoryGauge #mem-banner { display: none; height: auto; padding: 0 1; }
    MemoryGauge #mem-banner.-yellow { display: block; background: $warning 35%; }
    MemoryGauge #mem-banner.-red { display: block; background: $error 45%; text-style: bold; }
    MemoryGauge #mem-device { height: auto; color: $text-muted; }
    MemoryGauge #mem-text { height: 8; text-wrap: nowrap; text-overflow: ellipsis; }
    MemoryGauge .spark-row { height: 1; }
    MemoryGauge .spark-row Label { width: 5; color: $text-muted; }
    MemoryGauge .spark-row Sparkline { width: 1fr; }
    """  # #mem-text's height is TEXT_LINES

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.latest: Any = None
        self.pressure = "green"
        self.device: dict[str, Any] | None = None
        self.alert: str = ""
        self._advice: tuple[str, ...] = ()
        self.history = MemoryHistory(maxlen=HISTORY)
        self._series: dict[str, deque[float]] = {
            key: deque(maxlen=HISTORY) for key, _label, _field in SERIES
        }

    def compose(self) -> ComposeResult:
        yield Static("", id="mem-banner")
        yield Static("device: asking MLX…", id="mem-device")
        yield Static("waiting for the first sample…", id="mem-text")
        for key, label, _field in SERIES:
            with Horizontal(classes="spark-row"):
                yield Label(label)
                yield Sparkline([], id=f"spark-{key}")

    # ------------------------------------------------------------ public

    def text(self) -> str:
        return str(self.query_one("#mem-text", Static).render())

    def banner_text(self) -> str:
        return self.alert

    def device_line(self) -> str:
        return str(self.query_one("#mem-device", Static).render())

    def request_device_info(self) -> None:
        """Ask the engine (once it runs) what device MLX uses; the answer comes as JobFinished."""
        from mlxtui.core.engine import Call

        self.post_message(
            messages.SubmitJob(Call(fn=_fetch_device_info, description=DEVICE_JOB), reply_to=self)
        )

    @on(messages.JobFinished)
    def _device_answered(self, message: messages.JobFinished) -> None:
        result = message.event.result
        if isinstance(result, dict):
            self.set_device(result)

    def show_memory_alert(self, alert: ev.MemoryAlert) -> None:
        self._advice = tuple(alert.suggestions)
        verb = "paused" if alert.action == "pause" else "warning"
        self.show_alert(alert.level, f"memory {verb}: {alert.message}" + self._advice_text(""))

    def show_memory_pause(self, paused: ev.TrainPaused) -> None:
        message = paused.message or "training paused: memory pressure"
        self.show_alert("red", message + self._advice_text(message))

    def clear_alert(self) -> None:
        self._advice = ()
        self.show_alert("", "")

    def _advice_text(self, already: str) -> str:
        """The last alert's suggestions as bullet lines, leaving out those `already` holds."""
        lines = [f"• {s}" for s in self._advice if s not in already]
        return "\n" + "\n".join(lines) if lines else ""

    def show_alert(self, level: str, message: str) -> None:
        """A banner above the numbers: "" clears it."""
        self.alert = message
        banner = self.query_one("#mem-banner", Static)
        banner.update(Text(("⚠ " + message) if message else ""))
        for name in ("yellow", "red"):
            banner.set_class(bool(message) and level == name, f"-{name}")
        if message and level not in ("yellow", "red"):
            banner.set_class(True, "-yellow")
        if message:
            self.scroll_home(animate=False)

    def set_device(self, info: dict[str, Any]) -> None:
        self.device = info
        text = device_text(info)
        if info.get("error"):
            text += f" ({info['error']})"
        self.query_one("#mem-device", Static).update(Text(text))

    def update_sample(self, sample: Any, swap_growth_per_min: float | None = None) -> None:
        """Show one sample (a `mlxtui.core.memory.MemorySample` or anything with its fields).

        `swap_growth_per_min` (bytes/minute) is core's figure, the one the memory guard acts on;
        None (no span of samples yet) shows as "—".
        """
        get = lambda name: int(getattr(sample, name, 0) or 0)  # noqa: E731
        values = {field: get(field) for _key, _label, field in SERIES}
        self.latest = sample
        if isinstance(sample, MemorySample):
            self.history.append(sample)
        for key, _label, field in SERIES:
            self._series[key].append(values[field] / 1024**2)
        growth = swap_growth_per_min
        pressure = str(getattr(sample, "pressure", "green") or "green")
        swap = format_bytes(get("swap_used"))
        if get("swap_total"):
            swap += f" of {format_bytes(get('swap_total'))}"
        # The growth on a line of its own: with it, the swap line is wider than the pane.
        if growth is None:
            swap_growth = "—/min"
        else:
            swap_growth = f"{'+' if growth >= 0 else '-'}{format_bytes(abs(growth))}/min"
        text = Content(
            "\n".join(
                [
                    f"MLX   {format_bytes(get('mlx_active'))}  peak {format_bytes(get('mlx_peak'))}",
                    f"cache {format_bytes(get('mlx_cache'))}",
                    f"RSS   {format_bytes(get('process_rss'))}",
                    f"used  {format_bytes(get('system_used'))} of {format_bytes(get('system_total'))}",
                    f"free  {format_bytes(get('system_available'))}",
                    f"swap  {swap}",
                    f"      {swap_growth}",
                    "",  # the pressure line follows
                ]
            )
        )
        text = text.append_text(f"● {pressure.upper()}", PRESSURE_STYLE.get(pressure, "bold"))
        source = pressure_source(sample)
        if source:
            text = text.append_text(f"  {source}", "dim")
        # TEXT_LINES rows whatever the figures (CSS height, no wrapping): no layout pass
        self.query_one("#mem-text", Static).update(text, layout=False)
        self.set_pressure(pressure)
        for key, _label, _field in SERIES:
            spark = self.query_one(f"#spark-{key}", Sparkline)
            # below the pane's fold (120x40) or in a pane beside the shown one (80x24), a line
            # takes its data at the first sample it is seen: refreshing it unseen cost ~10 ms of
            # the UI thread once a sample (on_screen)
            if on_screen(spark):
                spark.data = list(self._series[key])

    def set_pressure(self, level: str) -> None:
        for name in ("green", "yellow", "red"):
            self.set_class(name == level, f"-pressure-{name}")
        self.pressure = level
