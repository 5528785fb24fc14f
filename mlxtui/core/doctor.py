"""Environment checks behind `mlxtui doctor`: can this machine train with MLX, and what to do if not."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mlxtui.core.memory import format_bytes

Status = Literal["ok", "warn", "fail"]
GB = 1024**3
MIN_MEMORY_BYTES = 16 * GB
MIN_PYTHON = (3, 11)
MIN_DISK_FREE_BYTES = 5 * GB
LOW_AVAILABLE_BYTES = 2 * GB
MIN_MACOS = (13, 5)  # MLX wheels need macOS 13.5 or newer


@dataclass(frozen=True)
class DoctorFinding:
    name: str
    status: Status
    value: str
    advice: str = ""


@dataclass(frozen=True)
class DoctorReport:
    findings: tuple[DoctorFinding, ...]

    @property
    def ok(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    def get(self, name: str) -> DoctorFinding | None:
        return next((f for f in self.findings if f.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": {
                s: sum(f.status == s for f in self.findings) for s in ("ok", "warn", "fail")
            },
            "findings": [asdict(f) for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- checks


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_architecture() -> DoctorFinding:
    machine = platform.machine()
    if sys.platform == "darwin":
        if machine == "arm64":
            return DoctorFinding("architecture", "ok", machine)
        return DoctorFinding(
            "architecture",
            "fail",
            f"{machine} (Rosetta or Intel Mac)",
            "MLX needs Apple silicon and a native arm64 Python: install an arm64 Python "
            "(e.g. `uv python install` on an M-series Mac) and recreate the environment",
        )
    if machine in ("x86_64", "aarch64", "arm64", "AMD64"):
        return DoctorFinding("architecture", "ok", machine)
    return DoctorFinding(
        "architecture", "warn", machine, "MLX publishes wheels for x86_64 and aarch64 only"
    )


def check_os() -> DoctorFinding:
    if sys.platform == "darwin":
        ver = platform.mac_ver()[0]
        parts = tuple(int(p) for p in ver.split(".")[:2] if p.isdigit())
        if parts and parts < MIN_MACOS:
            return DoctorFinding(
                "os",
                "fail",
                f"macOS {ver}",
                f"MLX needs macOS {'.'.join(map(str, MIN_MACOS))} or newer: update macOS",
            )
        return DoctorFinding("os", "ok", f"macOS {ver}")
    if sys.platform.startswith("linux"):
        try:
            name = platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
        except OSError:
            name = "Linux"
        return DoctorFinding("os", "ok", f"{name} (kernel {platform.release()})")
    return DoctorFinding(
        "os", "fail", platform.platform(), "MLX runs on macOS (Apple silicon) and Linux only"
    )


def check_python() -> DoctorFinding:
    v = sys.version_info
    value = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < MIN_PYTHON:
        return DoctorFinding(
            "python",
            "fail",
            value,
            f"mlxtui needs Python {'.'.join(map(str, MIN_PYTHON))}+: `uv python install 3.11`",
        )
    return DoctorFinding("python", "ok", value)


def check_mlx() -> list[DoctorFinding]:
    """MLX import, back-end, default device and what MLX says about the device."""
    version = _version("mlx")
    if version is None:
        return [
            DoctorFinding(
                "mlx",
                "fail",
                "not installed",
                "install it: `uv pip install 'mlx[cpu]'` on Linux, `uv pip install mlx` on macOS, "
                "`mlx[cuda13]` for NVIDIA GPUs",
            )
        ]
    try:
        import mlx.core as mx

        device = mx.default_device()
        info = dict(mx.device_info())
    except Exception as exc:  # a broken wheel or missing driver: say which
        return [
            DoctorFinding(
                "mlx",
                "fail",
                f"{version}, import failed: {exc}",
                "reinstall MLX for this platform; on CUDA check the NVIDIA driver (nvidia-smi)",
            )
        ]
    out = [DoctorFinding("mlx", "ok", version)]
    if sys.platform == "darwin":
        backend = "Metal" if mx.metal.is_available() else "CPU"
    elif mx.cuda.is_available() if hasattr(mx, "cuda") else False:
        backend = "CUDA"
    else:
        backend = "CPU"
    dev = f"{backend} ({device})"
    if backend == "CPU" and sys.platform == "darwin":
        out.append(
            DoctorFinding(
                "backend", "warn", dev, "Metal is unavailable: training will be very slow"
            )
        )
    elif backend == "CPU":
        out.append(
            DoctorFinding(
                "backend",
                "ok",
                dev,
                "CPU training works for small models; for speed use `mlx[cuda13]` on an NVIDIA GPU",
            )
        )
    else:
        out.append(DoctorFinding("backend", "ok", dev))
    name = info.get("device_name") or info.get("architecture") or "unknown"
    mem = info.get("memory_size") or info.get("total_memory")
    value = str(name) + (f", {format_bytes(int(mem))}" if mem else "")
    ws = info.get("max_recommended_working_set_size")
    if ws:
        value += f", recommended working set {format_bytes(int(ws))}"
    out.append(DoctorFinding("device", "ok", value))
    return out


def check_memory() -> list[DoctorFinding]:
    import psutil  # type: ignore[import-untyped]

    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    out = []
    if vm.total < MIN_MEMORY_BYTES:
        out.append(
            DoctorFinding(
                "memory",
                "warn",
                format_bytes(vm.total),
                "under 16 GB: use a small or 4-bit model, batch size 1-2, few layers, "
                "gradient checkpointing (the pre-flight estimate shows what fits)",
            )
        )
    else:
        out.append(DoctorFinding("memory", "ok", format_bytes(vm.total)))
    avail_value = f"{format_bytes(vm.available)} ({100 * vm.available / vm.total:.0f}%)"
    if vm.available < LOW_AVAILABLE_BYTES:
        out.append(
            DoctorFinding(
                "available memory",
                "warn",
                avail_value,
                "close other applications (browsers, IDEs) before training",
            )
        )
    else:
        out.append(DoctorFinding("available memory", "ok", avail_value))
    swap_value = f"{format_bytes(sw.used)} of {format_bytes(sw.total)}"
    if (sw.total and sw.used > 0.25 * sw.total) or sw.used > 2 * GB:
        out.append(
            DoctorFinding(
                "swap",
                "warn",
                swap_value,
                "the system is already swapping: training will slow down a lot; free memory first",
            )
        )
    else:
        out.append(DoctorFinding("swap", "ok", swap_value))
    return out


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    """fp32 n×n matmul speed on MLX's default device, in GFLOP/s (after one warm-up)."""
    import time

    import mlx.core as mx

    a = mx.random.normal((n, n))
    b = mx.random.normal((n, n))
    mx.eval(a @ b)
    start = time.perf_counter()
    for _ in range(reps):
        mx.eval(a @ b)
    seconds = (time.perf_counter() - start) / reps
    return 2 * n**3 / seconds / 1e9


def check_blas() -> DoctorFinding | None:
    """Linux: which BLAS MLX uses, from where, and how fast a 1024² matmul runs with it."""
    if not sys.platform.startswith("linux"):
        return None
    from mlxtui.core.blas import SLOW_KIND, blas_status

    st = blas_status()
    value = st.kind + (f" ({st.path})" if st.path else "")
    if st.kind != "cuBLAS":
        value += f", {matmul_gflops():.0f} GFLOP/s (1024² fp32 matmul)"
    status: Status = "warn" if st.kind == SLOW_KIND else "ok"
    return DoctorFinding("blas", status, value, st.advice)


def check_packages() -> list[DoctorFinding]:
    out = []
    for dist in ("mlx-lm", "textual"):
        v = _version(dist)
        if v is None:
            out.append(
                DoctorFinding(dist, "fail", "not installed", f"`uv sync` (or pip install {dist})")
            )
        else:
            out.append(DoctorFinding(dist, "ok", v))
    return out


def cache_dir() -> Path:
    """Where models are cached: $MLXTUI_CACHE_DIR, else the platform cache folder."""
    env = os.environ.get("MLXTUI_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mlxtui"))


def check_disk(path: Path | None = None) -> DoctorFinding:
    path = cache_dir() if path is None else path
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    value = f"{format_bytes(free)} free in {path}"
    if free < MIN_DISK_FREE_BYTES:
        return DoctorFinding(
            "disk", "warn", value, "models and checkpoints need several GB: free some disk space"
        )
    return DoctorFinding("disk", "ok", value)


def _safe(name: str, fn: Callable[[], Any]) -> list[DoctorFinding]:
    try:
        res = fn()
    except Exception as exc:  # one broken check must not hide the others
        return [DoctorFinding(name, "fail", f"check crashed: {exc!r}", "please report this")]
    if res is None:
        return []
    return list(res) if isinstance(res, list) else [res]


def run_doctor() -> DoctorReport:
    """Run every check; engine thread or main thread (it imports and queries MLX once)."""
    findings: list[DoctorFinding] = []
    for name, fn in (
        ("architecture", check_architecture),
        ("os", check_os),
        ("python", check_python),
        ("mlx", check_mlx),
        ("memory", check_memory),
        ("blas", check_blas),
        ("packages", check_packages),
        ("disk", check_disk),
    ):
        findings += _safe(name, fn)
    return DoctorReport(tuple(findings))
