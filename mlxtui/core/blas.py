"""OpenBLAS for MLX's Linux CPU back-end, loaded in-process before MLX.

The mlx[cpu] wheel bundles the reference (netlib) BLAS: an fp32 matmul runs at ~6 GFLOP/s
on 2 cores, ~100 with OpenBLAS (DESIGN.md). Loading OpenBLAS with `ctypes` and RTLD_GLOBAL
before the first `import mlx.core` puts its `cblas_*` symbols ahead of the bundled ones, so
no re-exec is needed and the Python API gets it too: `import mlxtui` installs an import hook
that does it the moment anything imports `mlx`.

Where OpenBLAS comes from, in order:
1. the system's libopenblas.so.0 (Debian `libopenblas0-pthread`), when installed;
2. the `ngsolve-openblas` wheel (a dependency on Linux x86_64). It needs `libgfortran.so.5`,
   absent on a bare Debian; the mlx-cpu wheel bundles one under a renamed file
   (`mlx_cpu.libs/libgfortran-<hash>.so.5.0.0`). The wheel's library has RPATH `$ORIGIN`, so a
   folder in the user cache holding symlinks named `libopenblas.so.0` (to the wheel's library)
   and `libgfortran.so.5` (to mlx-cpu's) resolves every NEEDED entry without a system package.

MLXTUI_BLAS=auto (default) | system | wheel | off picks among them (`wheel` skips the system
library: the test that proves the wheel path on a machine without one uses it).
Nothing here imports mlx: it runs before MLX loads.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.abc
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIB_NAME = "libopenblas.so.0"
SEARCH_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu"),
    Path("/usr/lib/aarch64-linux-gnu"),
    Path("/usr/lib64"),
    Path("/usr/lib"),
    Path("/lib/x86_64-linux-gnu"),
    Path("/lib/aarch64-linux-gnu"),
)
MODE_ENV = "MLXTUI_BLAS"
MODES = ("auto", "system", "wheel", "off")
# Older name of MODE_ENV=off, still honoured (scripts and CI set it).
LEGACY_OFF_ENV = "MLXTUI_NO_BLAS_REEXEC"
WHEEL_DIST = "ngsolve-openblas"
SLOW_KIND = "bundled reference BLAS (slow)"


@dataclass(frozen=True)
class OpenBlasLib:
    """An OpenBLAS to load: `load_path` is what ctypes opens, `path` the real library."""

    path: Path
    source: str  # "system" | "wheel"
    load_path: Path


@dataclass(frozen=True)
class BlasStatus:
    kind: str  # "openblas (system)" | "openblas (ngsolve-openblas wheel)" | SLOW_KIND | "Accelerate" | "cuBLAS"
    path: str | None
    advice: str


# What ensure_fast_blas did in this process: None before it ran.
_outcome: dict[str, Any] | None = None


# ---------------------------------------------------------------- where OpenBLAS is


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


def find_system_openblas(search_dirs: tuple[Path, ...] = SEARCH_DIRS) -> Path | None:
    """The system's libopenblas.so.0, or None."""
    for d in search_dirs:
        p = d / LIB_NAME
        if p.exists():
            return p
    for p in _ldconfig_paths():
        if p.exists():
            return p
    return None


def _dist_files(dist: str, prefix: str) -> list[Path]:
    try:
        d = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return []
    return [
        Path(str(d.locate_file(f)))
        for f in d.files or []
        if str(f).startswith(prefix) and ".so" in f.name
    ]


def wheel_libraries() -> tuple[Path, Path, list[Path]] | None:
    """(the ngsolve-openblas library, mlx-cpu's libgfortran, mlx-cpu's other gfortran deps)."""
    blas = [p for p in _dist_files(WHEEL_DIST, "ngsolve_openblas/") if "openblas" in p.name]
    libs = _dist_files("mlx-cpu", "mlx_cpu.libs/")
    gfortran = [p for p in libs if p.name.startswith("libgfortran")]
    if not blas or not gfortran or not blas[0].exists() or not gfortran[0].exists():
        return None
    deps = [p for p in libs if p.name.startswith("libquadmath") and p.exists()]
    return blas[0], gfortran[0], deps


def _cache_root() -> Path:
    env = os.environ.get("MLXTUI_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mlxtui"))


def _link_folder(blas: Path, gfortran: Path, deps: list[Path]) -> Path:
    """A folder whose `libopenblas.so.0` finds `libgfortran.so.5` beside it (RPATH $ORIGIN)."""
    links = {LIB_NAME: blas, "libgfortran.so.5": gfortran} | {p.name: p for p in deps}
    key = hashlib.sha1("\n".join(f"{k}={v}" for k, v in sorted(links.items())).encode()).hexdigest()
    for root in (_cache_root() / "blas", Path(tempfile.gettempdir()) / "mlxtui-blas"):
        folder = root / key[:16]
        if all((folder / name).exists() for name in links):
            return folder
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".new-"))
            for name, target in links.items():
                (tmp / name).symlink_to(target)
            try:
                tmp.rename(folder)
            except OSError:  # another process made it first
                for name in links:
                    (tmp / name).unlink()
                tmp.rmdir()
            return folder
        except OSError:
            continue  # a read-only cache: try the temp folder
    raise OSError(f"cannot create a folder for the OpenBLAS links under {_cache_root()}")


def find_wheel_openblas() -> OpenBlasLib | None:
    found = wheel_libraries()
    if found is None:
        return None
    blas, gfortran, deps = found
    return OpenBlasLib(blas, "wheel", _link_folder(blas, gfortran, deps) / LIB_NAME)


def blas_mode(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env
    if env.get(LEGACY_OFF_ENV):
        return "off"
    mode = env.get(MODE_ENV, "auto").strip().lower() or "auto"
    return mode if mode in MODES else "auto"


def find_openblas(mode: str | None = None) -> OpenBlasLib | None:
    """The OpenBLAS to load: the system's first (unless MLXTUI_BLAS=wheel), else the wheel's."""
    mode = blas_mode() if mode is None else mode
    if mode == "off":
        return None
    if mode in ("auto", "system"):
        lib = find_system_openblas()
        if lib is not None:
            return OpenBlasLib(lib, "system", lib)
        if mode == "system":
            return None
    return find_wheel_openblas()


# ---------------------------------------------------------------- loading it


def mapped_openblas(maps: Path | None = None) -> str | None:
    """The path of the OpenBLAS mapped into this process, or None."""
    maps = Path("/proc/self/maps") if maps is None else maps
    try:
        text = maps.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        # numpy's own libscipy_openblas64_ has prefixed symbols that MLX never calls
        if len(parts) == 6 and "libopenblas" in parts[5]:
            return parts[5].strip()
    return None


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


def ensure_fast_blas() -> dict[str, Any]:
    """Load OpenBLAS into this process (RTLD_GLOBAL) if MLX will run on the CPU; once.

    Must run before the first `import mlx.core` to have an effect; afterwards it only records
    why it could not. Returns what happened: {"loaded": path | None, "source", "reason"}.
    """
    global _outcome
    if _outcome is not None:
        return _outcome
    outcome: dict[str, Any] = {"loaded": None, "source": None, "reason": ""}
    already = mapped_openblas()
    if not sys.platform.startswith("linux"):
        outcome["reason"] = "not Linux"
    elif already:
        outcome.update(loaded=already, source=_source_of(already), reason="already loaded")
    elif blas_mode() == "off":
        outcome["reason"] = f"{MODE_ENV}=off"
    elif "mlx.core" in sys.modules:
        outcome["reason"] = "mlx was imported before mlxtui"
    elif not cpu_backend_expected():
        outcome["reason"] = "CUDA back-end"
    else:
        try:
            lib = find_openblas()
        except OSError as e:
            lib = None
            outcome["reason"] = str(e)
        if lib is not None:
            try:
                ctypes.CDLL(str(lib.load_path), mode=ctypes.RTLD_GLOBAL)
                outcome.update(loaded=str(lib.path), source=lib.source)
            except OSError as e:
                outcome["reason"] = f"loading {lib.load_path} failed: {e}"
        elif not outcome["reason"]:
            outcome["reason"] = "no OpenBLAS found"
    _outcome = outcome
    return outcome


def _source_of(path: str) -> str:
    return "wheel" if "ngsolve_openblas" in path else "system"


class _LoadBlasBeforeMlx(importlib.abc.MetaPathFinder):
    """Runs ensure_fast_blas when `mlx` is first imported, then steps aside."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "mlx" or fullname.startswith("mlx."):
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            try:
                ensure_fast_blas()
            except Exception:  # a BLAS problem must never break `import mlx`
                pass
        return None


def install_import_hook() -> None:
    """Called by `import mlxtui`: OpenBLAS gets loaded right before MLX, whoever imports it."""
    if not sys.platform.startswith("linux") or "mlx.core" in sys.modules:
        return
    if any(isinstance(f, _LoadBlasBeforeMlx) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _LoadBlasBeforeMlx())


# ---------------------------------------------------------------- what to tell people


def install_command() -> str:
    """The single command that gives this machine a fast BLAS."""
    if platform.machine() in ("x86_64", "AMD64") and not _dist_files(WHEEL_DIST, ""):
        return f"uv pip install {WHEEL_DIST}"
    try:
        ids = platform.freedesktop_os_release().get("ID", "") + " "
        ids += platform.freedesktop_os_release().get("ID_LIKE", "")
    except OSError:
        ids = ""
    if "fedora" in ids or "rhel" in ids:
        return "sudo dnf install openblas-openmp"
    if "arch" in ids.split():
        return "sudo pacman -S openblas"
    return "sudo apt install libopenblas0-pthread"


def blas_status() -> BlasStatus:
    """Which BLAS MLX's matmuls use in this process, and what to do about it."""
    if sys.platform == "darwin":
        return BlasStatus("Accelerate", None, "")
    if cuda_installed():
        return BlasStatus("cuBLAS", None, "")
    if "mlx.core" not in sys.modules:
        # Asked before MLX is imported (the CLI says it first): load now what the import hook
        # would load with MLX, so the answer is what MLX will use rather than "nothing yet".
        ensure_fast_blas()
    mapped = mapped_openblas()
    if mapped:
        source = _source_of(mapped)
        kind = "openblas (ngsolve-openblas wheel)" if source == "wheel" else "openblas (system)"
        return BlasStatus(kind, mapped, "")
    reason = (_outcome or {}).get("reason", "")
    if blas_mode() == "off":
        advice = (
            f"{MODE_ENV}=off (or {LEGACY_OFF_ENV}) is set: unset it for ~15x faster CPU training"
        )
    elif (
        reason == "mlx was imported before mlxtui" or "mlx.core" in sys.modules and _outcome is None
    ):
        lib = find_openblas()
        advice = "import mlxtui before mlx (it loads OpenBLAS first)"
        if lib is not None and lib.source == "system":
            advice += f", or start Python with LD_PRELOAD={lib.path}"
    elif reason.startswith("loading"):
        advice = f"{reason}; run `{install_command()}` for ~15x faster CPU training"
    else:
        advice = f"run `{install_command()}` for ~15x faster CPU training"
    return BlasStatus(SLOW_KIND, None, advice)
