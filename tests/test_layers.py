"""The one-way layering: mlxtui.core never imports Textual."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_core_does_not_import_textual():
    code = (
        "import sys\n"
        "import mlxtui, mlxtui.core.config, mlxtui.core.engine, mlxtui.core.training, mlxtui.core.data\n"
        "import mlxtui.core.models, mlxtui.core.runs, mlxtui.core.events, mlxtui.pipeline, mlxtui.cli.main\n"
        "from mlxtui import TrainConfig, TrainPipeline\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext', 'plotext') or m.startswith('mlxtui.tui'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_tui_does_import_textual():
    # the check above can fail: the same probe sees Textual when the app is imported
    code = "import sys, mlxtui.tui.app; sys.exit(0 if 'textual' in sys.modules else 1)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_core_does_not_import_the_command_line():
    code = (
        "import sys, pkgutil, importlib, mlxtui.core\n"
        "for m in pkgutil.walk_packages(mlxtui.core.__path__, 'mlxtui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('mlxtui.cli', 'mlxtui.tui')))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
