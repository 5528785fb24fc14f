"""Printing help loads nothing heavy: no MLX, mlx-lm, Textual, numpy or YAML.

A check of sys.modules in a fresh interpreter, not a timing (benchmarks/bench_startup.py
prints the times).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("mlx", "mlx_lm", "textual", "textual_plotext", "plotext", "numpy", "yaml")


def _imported_after(body: str) -> list[str]:
    code = (
        "import sys, contextlib, io\n"
        f"{body}\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_building_the_parser_imports_nothing_heavy():
    assert _imported_after("from mlxtui.cli.main import build_parser\nbuild_parser()") == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"], ["data", "stats", "--help"]])
def test_help_imports_nothing_heavy(argv):
    body = (
        "from mlxtui.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "assert 'usage: mlxtui' in out.getvalue(), out.getvalue()"
    )
    assert _imported_after(body) == []


def test_the_probe_sees_a_heavy_import():
    # the check above can fail: the same probe reports MLX once something imports it
    assert "mlx" in _imported_after("import mlx.core")
