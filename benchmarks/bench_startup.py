"""How long `mlxtui --help` and `mlxtui train --help` take, and what the help path imports.

    uv run python benchmarks/bench_startup.py [--runs 15] [--module]

--module runs `python -m mlxtui` instead of the script (with PYTHONPATH pointing at another
checkout, e.g. `git archive <commit> | tar -x -C /tmp/old`, it measures that code).

Runs each command N times as a subprocess (the installed `mlxtui` script next to this
Python, as a user types it) and prints the median and spread of the wall time; then lists
the heavy modules (MLX, mlx-lm, Textual, numpy, YAML…) that printing the help imports, and
the slowest imports `python -X importtime` reports for it. Target (issue 9): < 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("mlx", "mlx_lm", "textual", "textual_plotext", "plotext", "numpy", "yaml", "transformers", "psutil")
COMMANDS = (["--help"], ["train", "--help"])


USE_MODULE = False


def script() -> list[str]:
    exe = Path(sys.executable).with_name("mlxtui")
    return [str(exe)] if exe.exists() and not USE_MODULE else [sys.executable, "-m", "mlxtui"]


def wall_times(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([*script(), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return times


def heavy_modules(argv: list[str]) -> list[str]:
    """Top-level packages from HEAVY that are in sys.modules once the help has printed."""
    code = (
        "import sys, contextlib, io\n"
        "try:\n"
        "    from mlxtui.cli.main import main\n"
        "except ImportError:  # code from before the cli package\n"
        "    from mlxtui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    # no BLAS re-exec: it would replace the probe (code from before the cli package re-executes
    # before parsing)
    env = dict(os.environ, MLXTUI_NO_BLAS_REEXEC="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return out.stdout.split()


def slowest_imports(argv: list[str], n: int = 5) -> list[tuple[int, str]]:
    env = dict(os.environ, MLXTUI_NO_BLAS_REEXEC="1")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mlxtui", *argv], capture_output=True, text=True, env=env
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--module", action="store_true", help="run `python -m mlxtui`, not the script")
    args = ap.parse_args()
    global USE_MODULE
    USE_MODULE = args.module
    print(f"{' '.join(script())}  ({args.runs} runs each, wall time of the whole process)")
    for argv in COMMANDS:
        times = wall_times(argv, args.runs)
        name = "mlxtui " + " ".join(argv)
        print(
            f"{name:<22} median {statistics.median(times):.3f} s  "
            f"min {min(times):.3f} s  max {max(times):.3f} s"
        )
    for argv in COMMANDS:
        name = "mlxtui " + " ".join(argv)
        heavy = heavy_modules(argv)
        print(f"{name:<22} heavy modules imported: {', '.join(heavy) if heavy else 'none'}")
    print("slowest imports of `mlxtui train --help` (cumulative µs):")
    for us, module in slowest_imports(["train", "--help"]):
        print(f"  {us:>8}  {module.strip()}")


if __name__ == "__main__":
    main()
