"""fp32 matmul GFLOP/s of MLX's CPU back-end with and without OpenBLAS preloaded.

    uv run python benchmarks/bench_blas.py

Runs the same measurement in two subprocesses: one with the bundled BLAS (LD_PRELOAD removed),
one with LD_PRELOAD=<the system libopenblas.so.0>.
"""

from __future__ import annotations

import os
import subprocess
import sys

from mlxtui.core.blas import NO_REEXEC_ENV, find_openblas

CHILD = r"""
import time, mlx.core as mx
from mlxtui.core.blas import blas_status
n = 1024
a = mx.random.normal((n, n)); b = mx.random.normal((n, n)); mx.eval(a, b)
mx.eval(a @ b)
reps = 20
t = time.perf_counter()
for _ in range(reps):
    mx.eval(a @ b)
dt = (time.perf_counter() - t) / reps
print(f"{blas_status().kind}: {2 * n**3 / dt / 1e9:.1f} GFLOP/s ({n}x{n} fp32 matmul, {dt * 1e3:.1f} ms)")
"""


def run(preload: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env[NO_REEXEC_ENV] = "1"
    if preload:
        env["LD_PRELOAD"] = preload
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr.strip())


def main() -> None:
    lib = find_openblas()
    run(None)
    if lib is None:
        print("OpenBLAS not found: nothing to compare")
        return
    run(str(lib))


if __name__ == "__main__":
    main()
