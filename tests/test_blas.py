"""Tests of OpenBLAS discovery and the in-process load before MLX, run in real subprocesses.

The proof that no system package is needed hides the system's OpenBLAS and libgfortran in a
private mount namespace (`unshare -m`, root only) and checks what the child process maps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mlxtui.core.blas as blas
from mlxtui.core.blas import (
    LEGACY_OFF_ENV,
    MODE_ENV,
    SLOW_KIND,
    blas_mode,
    blas_status,
    cpu_backend_expected,
    cuda_installed,
    find_openblas,
    find_system_openblas,
    mapped_openblas,
    wheel_libraries,
)

SYSTEM_LIB = Path("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
SYSTEM_GFORTRAN = Path("/usr/lib/x86_64-linux-gnu/libgfortran.so.5.0.0")
needs_system = pytest.mark.skipif(find_system_openblas() is None, reason="no system OpenBLAS")
needs_wheel = pytest.mark.skipif(wheel_libraries() is None, reason="ngsolve-openblas not installed")

# What a user's script does: import mlxtui (or its API), then MLX; report what got mapped.
CHILD = """
import ctypes, json, os, sys
{before}
import mlx.core as mx
import numpy as np
from mlxtui.core.blas import blas_status, ensure_fast_blas
a = np.random.default_rng(0).standard_normal((96, 96)).astype(np.float32)
err = float(np.abs(np.array(mx.array(a) @ mx.array(a)) - a @ a).max())
maps = open("/proc/self/maps").read()
libs = sorted({{l.split()[-1] for l in maps.splitlines() if "gfortran" in l or "libopenblas" in l}})
try:
    ctypes.CDLL("/usr/lib/x86_64-linux-gnu/libgfortran.so.5.0.0")
    system_gfortran = True
except OSError:
    system_gfortran = False
st = blas_status()
print(json.dumps({{"kind": st.kind, "path": st.path, "advice": st.advice, "libs": libs,
                  "outcome": ensure_fast_blas(), "err": err, "preload": os.environ.get("LD_PRELOAD", ""),
                  "system_gfortran": system_gfortran}}))
"""

HIDE_SYSTEM = """set -e
mount -t tmpfs none {openblas_dir}
mount --bind /dev/null {gfortran}
exec "$@"
"""


def run_child(
    tmp_path: Path, before: str = "import mlxtui", wrap: list[str] | None = None, **env_changes: str
) -> dict:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(before=before))
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", MODE_ENV, LEGACY_OFF_ENV)}
    env.update(env_changes)
    out = subprocess.run(
        [*(wrap or []), sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["err"] < 1e-2  # whichever BLAS ran, the product is right
    assert got["preload"] == ""  # no LD_PRELOAD, no re-exec: loaded in-process
    return got


def test_this_machine_is_cpu_linux():
    assert not cuda_installed()
    assert cpu_backend_expected() == sys.platform.startswith("linux")


@needs_system
def test_find_system_openblas_standard_path_and_ldconfig():
    found = find_system_openblas()
    assert found is not None and found.name == "libopenblas.so.0" and found.exists()
    if SYSTEM_LIB.exists():
        assert found == SYSTEM_LIB
    # with no standard directories it still comes from `ldconfig -p`
    via_ldconfig = find_system_openblas(search_dirs=())
    assert via_ldconfig is not None and via_ldconfig.resolve() == found.resolve()


def test_find_system_openblas_none_when_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(blas, "_ldconfig_paths", lambda: [])
    assert find_system_openblas(search_dirs=(tmp_path,)) is None


def test_mode_from_environment():
    assert blas_mode({}) == "auto"
    assert blas_mode({MODE_ENV: "wheel"}) == "wheel"
    assert blas_mode({MODE_ENV: " OFF "}) == "off"
    assert blas_mode({MODE_ENV: "nonsense"}) == "auto"
    assert blas_mode({LEGACY_OFF_ENV: "1", MODE_ENV: "system"}) == "off"
    assert find_openblas("off") is None


def test_mapped_openblas_reads_the_maps_file(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n")
    assert mapped_openblas(maps) is None
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n"
        "7f01-7f02 r-xp 00000000 08:01 3 /x/numpy.libs/libscipy_openblas64_-32a4b2a6.so\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /opt/my libs/libopenblasp-r0.3.21.so\n"
    )
    assert mapped_openblas(maps) == "/opt/my libs/libopenblasp-r0.3.21.so"


@needs_wheel
def test_wheel_link_folder_points_at_mlx_cpus_gfortran(tmp_path, monkeypatch):
    monkeypatch.setenv("MLXTUI_CACHE_DIR", str(tmp_path))
    lib = find_openblas("wheel")
    assert lib is not None and lib.source == "wheel"
    folder = lib.load_path.parent
    assert folder.is_relative_to(tmp_path / "blas")
    assert lib.load_path.resolve() == lib.path.resolve()
    gfortran = (folder / "libgfortran.so.5").resolve()
    assert gfortran.parent.name == "mlx_cpu.libs" and gfortran.exists()
    assert find_openblas("wheel") == lib  # the second call reuses the folder


@needs_system
def test_import_mlxtui_loads_system_openblas_first(tmp_path):
    got = run_child(tmp_path)
    assert got["kind"] == "openblas (system)"
    assert got["outcome"]["source"] == "system"
    assert any("/usr/lib" in p and "openblas" in p for p in got["libs"])


@needs_wheel
def test_wheel_mode_uses_the_wheel_and_mlx_cpus_gfortran(tmp_path):
    got = run_child(tmp_path, **{MODE_ENV: "wheel"})
    assert got["kind"] == "openblas (ngsolve-openblas wheel)"
    openblas = [p for p in got["libs"] if "openblas" in p]
    assert openblas and all("ngsolve_openblas" in p for p in openblas)
    assert not any(p.startswith("/usr/lib") for p in got["libs"])


@needs_wheel
def test_the_python_api_gets_openblas(tmp_path):
    # TrainPipeline's module imports MLX: the hook installed by `import mlxtui` runs first
    got = run_child(tmp_path, before="from mlxtui import TrainPipeline", **{MODE_ENV: "wheel"})
    assert got["kind"] == "openblas (ngsolve-openblas wheel)"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not SYSTEM_GFORTRAN.exists(),
    reason="hiding system libraries needs root, unshare and a Debian layout",
)
@needs_wheel
def test_fast_blas_on_a_machine_without_system_openblas_or_gfortran(tmp_path):
    hide = tmp_path / "hide.sh"
    hide.write_text(
        HIDE_SYSTEM.format(
            openblas_dir="/usr/lib/x86_64-linux-gnu/openblas-pthread", gfortran=SYSTEM_GFORTRAN
        )
    )
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode().strip()}")
    got = run_child(tmp_path, wrap=["unshare", "-m", "sh", str(hide)])  # default mode: auto
    assert got["system_gfortran"] is False  # the system's libgfortran really is gone
    assert got["kind"] == "openblas (ngsolve-openblas wheel)"
    assert got["outcome"] == {"loaded": got["path"], "source": "wheel", "reason": ""}
    assert not any(p.startswith(("/usr/", "/lib")) for p in got["libs"]), got["libs"]
    assert any("mlx_cpu.libs/libgfortran" in p for p in got["libs"])


def test_off_leaves_the_bundled_blas_and_says_how_to_undo(tmp_path):
    got = run_child(tmp_path, **{MODE_ENV: "off"})
    assert got["kind"] == SLOW_KIND and not any("openblas" in p for p in got["libs"])
    assert MODE_ENV in got["advice"]


def test_mlx_imported_first_is_too_late_and_says_so(tmp_path):
    got = run_child(tmp_path, before="import mlx.core\nimport mlxtui")
    assert got["kind"] == SLOW_KIND
    assert got["outcome"]["reason"] == "mlx was imported before mlxtui"
    assert "import mlxtui before mlx" in got["advice"]


def test_no_openblas_anywhere_names_one_command(monkeypatch):
    monkeypatch.setattr(blas, "mapped_openblas", lambda maps=None: None)
    monkeypatch.setattr(
        blas, "_outcome", {"loaded": None, "source": None, "reason": "no OpenBLAS found"}
    )
    monkeypatch.delenv(MODE_ENV, raising=False)
    monkeypatch.delenv(LEGACY_OFF_ENV, raising=False)
    monkeypatch.setattr(blas, "_dist_files", lambda dist, prefix: [])
    st = blas_status()
    assert st.kind == SLOW_KIND
    assert "run `uv pip install ngsolve-openblas`" in st.advice or "run `sudo " in st.advice


def test_this_test_process_runs_on_openblas():
    # conftest imports mlxtui before anything imports MLX
    if cpu_backend_expected() and find_openblas() is not None:
        assert blas_status().kind.startswith("openblas")


def test_status_asked_before_mlx_is_imported_says_what_mlx_will_use():
    # `mlxtui train` says its BLAS before anything imports MLX: it must not report the slow one
    code = (
        "import sys, mlxtui\n"
        "from mlxtui.core.blas import blas_status\n"
        "assert 'mlx.core' not in sys.modules\n"
        "print(blas_status().kind)\n"
        "import mlx.core as mx\n"
        "print(blas_status().kind)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", MODE_ENV, LEGACY_OFF_ENV)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["openblas", "(system)"], out.stdout
    assert out.stdout.splitlines()[0] == out.stdout.splitlines()[1] == "openblas (system)"
