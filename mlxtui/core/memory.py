"""Memory samples: MLX allocator counters, process RSS, system memory, swap and pressure.

Threads: `mx.get_active_memory/get_cache_memory/get_peak_memory` read process-global
allocator counters, not per-stream state, so `SystemMemoryProbe.sample()` may run on any
thread; `mlxtui.core.telemetry` runs it on a sampler thread of its own (its docstring and
tests/test_telemetry.py give the evidence). `mx.device_info()` is likewise thread-safe but
cached by MLX, so `device_info()` reads it once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Protocol

Pressure = Literal["green", "yellow", "red"]

# Linux PSI, /proc/pressure/memory "some avg10": percent of the last 10 s in which at least
# one task stalled waiting for memory.
PSI_YELLOW = 10.0
PSI_RED = 40.0
# Fallback when PSI is missing: share of RAM still available.
AVAILABLE_YELLOW = 0.20
AVAILABLE_RED = 0.10
# macOS kern.memorystatus_vm_pressure_level values
MACOS_NORMAL, MACOS_WARN, MACOS_CRITICAL = 1, 2, 4

PSI_PATH = Path("/proc/pressure/memory")
SWAP_WINDOW_S = 60.0
# The swap trend needs samples this far apart (seconds) before it says anything.
MIN_GROWTH_SPAN_S = 1.0


@dataclass(frozen=True)
class MemorySample:
    timestamp: float
    mlx_active: int
    mlx_cache: int
    mlx_peak: int
    process_rss: int
    system_total: int
    system_used: int
    system_available: int
    swap_total: int
    swap_used: int
    pressure: Pressure
    pressure_source: str
    pressure_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class MemoryProbe(Protocol):
    def sample(self) -> MemorySample: ...


# ---------------------------------------------------------------- pressure


def _macos_pressure_level() -> int | None:
    libc_path = ctypes.util.find_library("c")
    if libc_path is None:
        return None
    libc = ctypes.CDLL(libc_path, use_errno=True)
    value = ctypes.c_int(0)
    size = ctypes.c_size_t(ctypes.sizeof(value))
    rc = libc.sysctlbyname(
        b"kern.memorystatus_vm_pressure_level", ctypes.byref(value), ctypes.byref(size), None, 0
    )
    return int(value.value) if rc == 0 else None


def read_psi(path: Path = PSI_PATH) -> float | None:
    """The "some avg10" figure of Linux pressure-stall information, None if unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for part in line.split()[1:]:
                key, _, value = part.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None


def classify_psi(avg10: float) -> Pressure:
    if avg10 > PSI_RED:
        return "red"
    if avg10 > PSI_YELLOW:
        return "yellow"
    return "green"


def classify_available(available: int, total: int) -> Pressure:
    share = available / total if total else 1.0
    if share < AVAILABLE_RED:
        return "red"
    if share < AVAILABLE_YELLOW:
        return "yellow"
    return "green"


def classify_macos(level: int) -> Pressure:
    if level >= MACOS_CRITICAL:
        return "red"
    if level >= MACOS_WARN:
        return "yellow"
    return "green"


def pressure_level(
    available: int, total: int, psi_path: Path = PSI_PATH
) -> tuple[Pressure, str, float | None]:
    """(level, source, raw value) from the best source this system has."""
    if sys.platform == "darwin":
        level = _macos_pressure_level()
        if level is not None:
            return classify_macos(level), "macOS kernel memory pressure", float(level)
    elif sys.platform.startswith("linux"):
        avg10 = read_psi(psi_path)
        if avg10 is not None:
            return classify_psi(avg10), str(psi_path), avg10
    share = available / total if total else 1.0
    return classify_available(available, total), "available/total", share


# ---------------------------------------------------------------- probe


def _mlx_counters() -> tuple[int, int, int]:
    try:
        import mlx.core as mx
    except ImportError:
        return 0, 0, 0
    return int(mx.get_active_memory()), int(mx.get_cache_memory()), int(mx.get_peak_memory())


MEMINFO_PATH = Path("/proc/meminfo")


def read_meminfo(path: Path = MEMINFO_PATH) -> dict[str, int] | None:
    """Total, available, swap total and swap free in bytes from /proc/meminfo (Linux)."""
    wanted = {"MemTotal:", "MemAvailable:", "SwapTotal:", "SwapFree:"}
    out: dict[str, int] = {}
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                parts = raw.split()
                key = parts[0].decode()
                if key in wanted:
                    out[key[:-1]] = int(parts[1]) * 1024  # the file says kB, meaning KiB
                    if len(out) == len(wanted):
                        break
    except (OSError, ValueError, IndexError):
        return None
    return out if len(out) == len(wanted) else None


class SystemMemoryProbe:
    """Samples the real system and MLX's allocator counters (about 0.1 ms on Linux).

    On Linux it parses /proc/meminfo itself: psutil.swap_memory() also reads /proc/vmstat and
    costs three times as much. Elsewhere psutil gives the figures.
    """

    def __init__(self, psi_path: Path = PSI_PATH, meminfo_path: Path = MEMINFO_PATH) -> None:
        import psutil  # type: ignore[import-untyped]

        self._process = psutil.Process()
        self._psutil = psutil
        self._psi_path = psi_path
        self._meminfo_path = meminfo_path if sys.platform.startswith("linux") else None

    def _system(self) -> tuple[int, int, int, int]:
        if self._meminfo_path is not None:
            info = read_meminfo(self._meminfo_path)
            if info is not None:
                swap_used = info["SwapTotal"] - info["SwapFree"]
                return info["MemTotal"], info["MemAvailable"], info["SwapTotal"], swap_used
        vm = self._psutil.virtual_memory()
        sw = self._psutil.swap_memory()
        return int(vm.total), int(vm.available), int(sw.total), int(sw.used)

    def sample(self) -> MemorySample:
        total, available, swap_total, swap_used = self._system()
        active, cache, peak = _mlx_counters()
        level, source, value = pressure_level(available, total, self._psi_path)
        return MemorySample(
            timestamp=time.time(),
            mlx_active=active,
            mlx_cache=cache,
            mlx_peak=peak,
            process_rss=int(self._process.memory_info().rss),
            system_total=total,
            system_used=total - available,
            system_available=available,
            swap_total=swap_total,
            swap_used=swap_used,
            pressure=level,
            pressure_source=source,
            pressure_value=value,
        )


# ---------------------------------------------------------------- history


class MemoryHistory:
    """The last `maxlen` samples, for sparklines and the swap trend.

    Thread-safe: the telemetry sampler appends on its own thread while the engine, the guard
    and the dashboard read; every method takes the lock, and readers get copies.
    """

    def __init__(self, maxlen: int = 120) -> None:
        self._samples: deque[MemorySample] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, sample: MemorySample) -> None:
        with self._lock:
            self._samples.append(sample)

    def extend(self, samples: Iterable[MemorySample]) -> None:
        for s in samples:
            self.append(s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    @property
    def samples(self) -> tuple[MemorySample, ...]:
        with self._lock:
            return tuple(self._samples)

    @property
    def latest(self) -> MemorySample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def series(self, field_name: str) -> list[float]:
        """One field over time (e.g. "swap_used"), oldest first."""
        if field_name not in MemorySample.__dataclass_fields__:
            raise KeyError(f"MemorySample has no field {field_name!r}")
        return [getattr(s, field_name) for s in self.samples]

    def swap_growth_per_minute(self, window_s: float = SWAP_WINDOW_S) -> float | None:
        """Bytes of swap added per minute: THE swap growth of mlxtui.

        The gauge shows it (through `MemorySampled.swap_growth_per_min`) and the guard acts on
        it, so it is defined here only. A least-squares slope of swap_used over the last
        `window_s` seconds, so one noisy sample neither trips the guard nor hides a trend.
        None until the window spans `MIN_GROWTH_SPAN_S` (a slope over less is noise).
        """
        with self._lock:
            if not self._samples:
                return None
            end = self._samples[-1].timestamp
            pts = [
                (s.timestamp, s.swap_used) for s in self._samples if s.timestamp >= end - window_s
            ]
        if len(pts) < 2 or pts[-1][0] - pts[0][0] < MIN_GROWTH_SPAN_S:
            return None
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        my = sum(y for _, y in pts) / n
        var = sum((t - mt) ** 2 for t, _ in pts)
        cov = sum((t - mt) * (y - my) for t, y in pts)
        return cov / var * 60.0


# ---------------------------------------------------------------- device and formatting


def device_info() -> dict[str, Any]:
    """name, memory_size and recommended working set from `mx.device_info()`, with fallbacks.

    On the Linux CPU back-end MLX reports only the architecture and CPU name, so memory_size
    falls back to the system RAM.
    """
    info: dict[str, Any] = {}
    try:
        import mlx.core as mx

        raw = dict(mx.device_info())
        info["device"] = str(mx.default_device())
    except Exception as exc:  # MLX missing or a broken back-end: the doctor reports it
        raw = {}
        info["error"] = str(exc)
    info["raw"] = raw
    info["name"] = str(raw.get("device_name") or raw.get("architecture") or "unknown")
    info["architecture"] = str(raw.get("architecture", ""))
    memory = raw.get("memory_size") or raw.get("total_memory")
    source = "mlx"
    if not memory:
        import psutil  # type: ignore[import-untyped]

        memory = psutil.virtual_memory().total
        source = "system RAM"
    info["memory_size"] = int(memory)
    info["memory_source"] = source
    ws = raw.get("max_recommended_working_set_size")
    info["recommended_working_set"] = int(ws) if ws else None
    return info


def format_bytes(n: float | None) -> str:
    """Human-readable size with binary units: 0 B, 512 B, 1.5 KB, 3.2 GB."""
    if n is None:
        return "—"
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.1f} {unit}"
        value /= 1024
    return f"{sign}{value:.1f} TB"  # pragma: no cover
