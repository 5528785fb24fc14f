"""Tests of OpenBLAS discovery and the re-exec, run in real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlxtui.core.blas import (
    NO_REEXEC_ENV,
    REEXEC_MARK_ENV,
    blas_status,
    cpu_backend_expected,
    cuda_installed,
    find_openblas,
    openblas_preloaded,
    reexec_env,
)

SYSTEM_LIB = Path("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
needs_openblas = pytest.mark.skipif(find_openblas() is None, reason="OpenBLAS not installed")

CHILD = """
import json, os, sys
from mlxtui.core.blas import maybe_reexec_with_openblas, blas_status, openblas_preloaded
maybe_reexec_with_openblas(sys.argv)
import mlx.core as mx
a = mx.ones((64, 64)); mx.eval(a @ a)
print(json.dumps({"preload": os.environ.get("LD_PRELOAD", ""),
                  "mark": os.environ.get("MLXTUI_BLAS_REEXEC"),
                  "mapped": "libopenblas" in open("/proc/self/maps").read(),
                  "kind": blas_status().kind, "argv": sys.argv[1:]}))
"""


def run_child(tmp_path: Path, **env_changes: str | None) -> dict:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_PRELOAD", NO_REEXEC_ENV, REEXEC_MARK_ENV)
    }
    for k, v in env_changes.items():
        if v is not None:
            env[k] = v
    out = subprocess.run(
        [sys.executable, str(script), "--flag", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_this_machine_is_cpu_linux():
    assert not cuda_installed()
    assert cpu_backend_expected() == sys.platform.startswith("linux")


@needs_openblas
def test_find_openblas_standard_path_and_ldconfig():
    found = find_openblas()
    assert found is not None and found.name == "libopenblas.so.0" and found.exists()
    if SYSTEM_LIB.exists():
        assert found == SYSTEM_LIB
    # with no standard directories it still comes from `ldconfig -p`
    via_ldconfig = find_openblas(search_dirs=())
    assert via_ldconfig is not None and via_ldconfig.resolve() == found.resolve()


def test_find_openblas_none_when_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ldconfig either
    import mlxtui.core.blas as blas

    monkeypatch.setattr(blas, "_ldconfig_paths", lambda: [])
    assert find_openblas(search_dirs=(tmp_path,)) is None


def test_preloaded_detection(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00 r-xp /usr/lib/libc.so.6\n")
    assert not openblas_preloaded({}, maps)
    assert openblas_preloaded({"LD_PRELOAD": str(SYSTEM_LIB)}, maps)
    maps.write_text("7f00 r-xp /usr/lib/x86_64-linux-gnu/libopenblas.so.0\n")
    assert openblas_preloaded({}, maps)


def test_reexec_env_prepends_and_marks():
    env = reexec_env(Path("/x/libopenblas.so.0"), {"LD_PRELOAD": "/y/libfoo.so", "A": "1"})
    assert env["LD_PRELOAD"] == "/x/libopenblas.so.0:/y/libfoo.so"
    assert env[REEXEC_MARK_ENV] == "1" and env["A"] == "1"
    assert reexec_env(Path("/x/l.so"), {})["LD_PRELOAD"] == "/x/l.so"


@needs_openblas
def test_reexec_preloads_openblas_and_keeps_argv(tmp_path):
    got = run_child(tmp_path)
    assert "libopenblas" in got["preload"]
    assert got["mark"] == "1"
    assert got["mapped"] is True
    assert got["kind"] == "openblas (preloaded)"
    assert got["argv"] == ["--flag", "x"]


@needs_openblas
def test_reexec_can_be_disabled(tmp_path):
    got = run_child(tmp_path, **{NO_REEXEC_ENV: "1"})
    assert got["preload"] == "" and got["mark"] is None and got["mapped"] is False
    assert got["kind"] == "bundled reference BLAS (slow)"


@needs_openblas
def test_no_reexec_loop_when_marked(tmp_path):
    # a process that was already re-executed never re-executes again, even without the preload
    got = run_child(tmp_path, **{REEXEC_MARK_ENV: "1"})
    assert got["preload"] == "" and got["mapped"] is False


@needs_openblas
def test_existing_preload_is_not_reexecuted(tmp_path):
    got = run_child(tmp_path, LD_PRELOAD=str(find_openblas()))
    assert got["mark"] is None and got["mapped"] is True


def test_status_in_this_process():
    st = blas_status()
    if sys.platform.startswith("linux") and not cuda_installed():
        if openblas_preloaded():
            assert st.kind == "openblas (preloaded)" and st.advice == ""
        else:
            assert st.kind == "bundled reference BLAS (slow)"
            assert ("LD_PRELOAD" in st.advice) or ("apt install" in st.advice)
