"""OpenBLAS for MLX's Linux CPU back-end.

The mlx[cpu] wheel bundles the reference (netlib) BLAS: an fp32 matmul runs at ~6 GFLOP/s
on 2 cores, ~100 GFLOP/s with the system OpenBLAS preloaded (see DESIGN.md). The preload must
be in the environment when the process starts, so `maybe_reexec_with_openblas` re-executes the
interpreter once with LD_PRELOAD set. Nothing here imports mlx: it runs before MLX loads.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LIB_NAME = "libopenblas.so.0"
SEARCH_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu"),
    Path("/usr/lib/aarch64-linux-gnu"),
    Path("/usr/lib64"),
    Path("/usr/lib"),
    Path("/lib/x86_64-linux-gnu"),
    Path("/lib/aarch64-linux-gnu"),
)
NO_REEXEC_ENV = "MLXTUI_NO_BLAS_REEXEC"
REEXEC_MARK_ENV = "MLXTUI_BLAS_REEXEC"
INSTALL_HINT = (
    "install OpenBLAS (Debian/Ubuntu: sudo apt install libopenblas0-pthread; "
    "Fedora: sudo dnf install openblas-openmp) for ~15x faster CPU training"
)


@dataclass(frozen=True)
class BlasStatus:
    kind: str  # "openblas (preloaded)" | "bundled reference BLAS (slow)" | "Accelerate" | "cuBLAS"
    path: str | None
    advice: str


def _ldconfig_paths() -> list[Path]:
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run(
                [exe, "-p"], capture_output=True, text=True, timeout=5, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        paths = []
        for line in out.splitlines():
            name, sep, target = line.partition("=>")
            if sep and name.strip().startswith(LIB_NAME):
                paths.append(Path(target.strip()))
        return paths
    return []


def find_openblas(search_dirs: tuple[Path, ...] = SEARCH_DIRS) -> Path | None:
    """The system's libopenblas.so.0, or None."""
    for d in search_dirs:
        p = d / LIB_NAME
        if p.exists():
            return p
    for p in _ldconfig_paths():
        if p.exists():
            return p
    return None


def openblas_preloaded(env: dict[str, str] | None = None, maps: Path | None = None) -> bool:
    """True if LD_PRELOAD names OpenBLAS or it is already mapped into this process."""
    env = dict(os.environ) if env is None else env
    if "openblas" in env.get("LD_PRELOAD", ""):
        return True
    maps = Path("/proc/self/maps") if maps is None else maps
    try:
        return "libopenblas" in maps.read_text()
    except OSError:
        return False


def _installed_mlx_backends() -> set[str]:
    names = set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith(("mlx-cuda", "mlx-cpu", "mlx-metal")):
            names.add(name)
    return names


def cuda_installed() -> bool:
    return any(n.startswith("mlx-cuda") for n in _installed_mlx_backends())


def cpu_backend_expected() -> bool:
    """MLX will run on the CPU: Linux without an mlx-cuda distribution (decided without mlx)."""
    return sys.platform.startswith("linux") and not cuda_installed()


def reexec_env(lib: Path, env: dict[str, str]) -> dict[str, str]:
    new = dict(env)
    current = new.get("LD_PRELOAD", "")
    new["LD_PRELOAD"] = f"{lib}:{current}" if current else str(lib)
    new[REEXEC_MARK_ENV] = "1"
    return new


def maybe_reexec_with_openblas(argv: list[str]) -> None:
    """Re-execute `python argv...` with OpenBLAS preloaded when that makes MLX faster.

    Returns (doing nothing) unless: Linux, CPU back-end, OpenBLAS found and not yet loaded,
    MLXTUI_NO_BLAS_REEXEC unset and this process is not itself the re-executed one.
    argv is sys.argv (script path first) or ["-m", "mlxtui", ...].
    """
    env = dict(os.environ)
    if env.get(NO_REEXEC_ENV) or env.get(REEXEC_MARK_ENV):
        return
    if not cpu_backend_expected() or openblas_preloaded(env):
        return
    lib = find_openblas()
    if lib is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], reexec_env(lib, env))


def blas_status() -> BlasStatus:
    """Which BLAS MLX's matmuls use in this process, and what to do about it."""
    if sys.platform == "darwin":
        return BlasStatus("Accelerate", None, "")
    if cuda_installed():
        return BlasStatus("cuBLAS", None, "")
    lib = find_openblas()
    if openblas_preloaded():
        return BlasStatus("openblas (preloaded)", str(lib) if lib else None, "")
    if lib is not None:
        advice = (
            f"OpenBLAS is installed but not loaded: run through `mlxtui` (it re-executes with it) "
            f"or set LD_PRELOAD={lib}"
        )
    else:
        advice = INSTALL_HINT
    return BlasStatus("bundled reference BLAS (slow)", str(lib) if lib else None, advice)
