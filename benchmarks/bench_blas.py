"""fp32 matmul GFLOP/s of MLX's CPU back-end with each BLAS mlxtui can load.

    uv run python benchmarks/bench_blas.py

Each line is a fresh subprocess that imports mlxtui (which loads OpenBLAS in-process before
MLX, mlxtui/core/blas.py) with MLXTUI_BLAS set: off (MLX's bundled reference BLAS), system
(Debian's libopenblas0-pthread), wheel (ngsolve-openblas + mlx-cpu's libgfortran). As root, a
last line repeats the default mode with the system OpenBLAS and libgfortran hidden in a private
mount namespace: what a bare Linux machine without apt gets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import mlxtui, time
import mlx.core as mx
from mlxtui.core.blas import blas_status
n, reps = 1024, {reps}
a = mx.random.normal((n, n)); b = mx.random.normal((n, n)); mx.eval(a @ b)
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    for _ in range(reps):
        mx.eval(a @ b)
    best = min(best, (time.perf_counter() - t) / reps)
st = blas_status()
print(f"{2 * n**3 / best / 1e9:7.1f} GFLOP/s  {st.kind}  {st.path or ''}")
"""

HIDE = """set -e
mount -t tmpfs none /usr/lib/x86_64-linux-gnu/openblas-pthread
mount --bind /dev/null /usr/lib/x86_64-linux-gnu/libgfortran.so.5.0.0
exec "$@"
"""


def run(label: str, mode: str, wrap: list[str] | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MLXTUI_NO_BLAS_REEXEC")}
    env["MLXTUI_BLAS"] = mode
    reps = 2 if mode == "off" else 20
    out = subprocess.run(
        [*(wrap or []), sys.executable, "-c", CHILD.replace("{reps}", str(reps))],
        env=env,
        capture_output=True,
        text=True,
    )
    print(f"{label:<34}", out.stdout.strip() or out.stderr.strip().splitlines()[-1])


def main() -> None:
    print(f"1024x1024 fp32 matmul, best of 3, {os.cpu_count()} CPUs")
    run("MLXTUI_BLAS=off", "off")
    run("MLXTUI_BLAS=system", "system")
    run("MLXTUI_BLAS=wheel", "wheel")
    if (
        os.geteuid() == 0
        and shutil.which("unshare")
        and Path("/usr/lib/x86_64-linux-gnu/openblas-pthread").is_dir()
    ):
        with tempfile.TemporaryDirectory() as d:
            hide = Path(d) / "hide.sh"
            hide.write_text(HIDE)
            run("auto, system libs hidden", "auto", ["unshare", "-m", "sh", str(hide)])


if __name__ == "__main__":
    main()
