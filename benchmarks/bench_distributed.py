"""Scaling of `mlxtui train --nproc 2` over one process: tokens/s on two GPUs over one.

Same per-GPU batch on both sides (so two GPUs train twice the examples per step), a
Llama-shaped random-init model (bench_train.py's presets), synthetic chat data of 150-400
tokens (bench_speed.py's, the shapes of the performance figures; `--data demo` for the demo set). Runs alternate
(one GPU, two GPUs, one, two, ...) while the time budget lasts; each run's tokens/s is the
tokens of steps after the warm-up over their time, read from the run's metrics.jsonl
(mlx-lm's train report counts the tokens of every rank). Efficiency = two / (2 x one).

    python benchmarks/bench_distributed.py --preset llama-3.2-1b --layers 16 --backend nccl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))


def tokens_per_second(run_root: Path, warmup: int) -> tuple[float, float]:
    """(tokens/s over the steps after `warmup`, peak GB) of the one run folder under run_root."""
    (run_dir,) = run_root.iterdir()
    tokens = seconds = peak = 0.0
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("event") != "train" or int(r["iteration"]) <= warmup:
            continue
        ips = float(r["iterations_per_second"])
        if ips > 0:
            tokens += float(r["tokens_per_second"]) / ips
            seconds += 1.0 / ips
        peak = max(peak, float(r.get("peak_memory", 0.0)))
    return (tokens / seconds if seconds else 0.0), peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="llama-3.2-1b")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4, help="per GPU")
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--backend", default="nccl")
    ap.add_argument("--budget", type=float, default=520.0, help="seconds; no run starts past it")
    ap.add_argument("--data", choices=("synthetic", "demo"), default="synthetic")
    ap.add_argument("--n-train", type=int, default=400)
    args = ap.parse_args()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp())
    if args.preset == "tiny":  # the tests' model: to try this script on a CPU
        from tiny_model import make_tiny_model

        (tmp / "model").mkdir()
        model = make_tiny_model(tmp / "model")
    else:
        from bench_train import make_model

        model = make_model(tmp / "model", args.preset, None)
    data: list[str] = []
    if args.data == "synthetic":
        from bench_speed import synthetic_chat

        lengths = synthetic_chat(tmp / "data", Path(model), args.n_train)
        data = ["--data", str(tmp / "data")]
        print(f"data: {len(lengths)} examples, {min(lengths)}-{max(lengths)} tokens, mean {statistics.mean(lengths):.0f}", flush=True)
    base = [
        sys.executable, "-m", "mlxtui", "train", "--model", str(model), "--batch-size", str(args.batch_size),
        "--iters", str(args.iters), "--num-layers", str(args.layers), "--grad-checkpoint",
        "--learning-rate", "1e-4", "--steps-per-report", "1", "--steps-per-eval", "1000000",
        "--save-every", "1000000", "--val-batches", "1", "--max-seq-length", "512",
        "--memory-guard", "off", "--dequantize", "no", "--sample-prompts", "0", *data,
    ]  # fmt: skip
    sides = {
        "one": (["--nproc", "1"], {"CUDA_VISIBLE_DEVICES": "0"}),
        "two": (["--nproc", "2", "--backend", args.backend], {}),
    }
    results: dict[str, list[tuple[float, float, float]]] = {"one": [], "two": []}
    durations: list[float] = []
    k = 0
    while True:
        name = "one" if k % 2 == 0 else "two"
        elapsed = time.monotonic() - started
        longest = max(durations) if durations else 0.0
        if k >= 2 and elapsed + longest * 1.1 > args.budget:
            break
        extra, env_extra = sides[name]
        root = tmp / f"{name}{k}"
        t0 = time.monotonic()
        done = subprocess.run(
            [*base, "--runs-dir", str(root), *extra],
            env=os.environ | env_extra,
            capture_output=True,
            text=True,
            timeout=max(60.0, args.budget - elapsed + 60),
        )
        durations.append(time.monotonic() - t0)
        if done.returncode != 0:
            print(f"{name} run {k} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", flush=True)
            break
        tps, peak = tokens_per_second(root, args.warmup)
        results[name].append((tps, peak, durations[-1]))
        print(f"run {k} {name}: {tps:,.0f} tokens/s (steps {args.warmup + 1}..{args.iters}), peak {peak:.2f} GB per rank, "
              f"{durations[-1]:.0f} s", flush=True)
        if name == "two":
            ranks = [line for line in done.stdout.splitlines() if line.startswith(f"step {args.iters} ranks:")]
            if ranks:
                print(f"  {ranks[-1]}", flush=True)
        k += 1
    one = [r[0] for r in results["one"]]
    two = [r[0] for r in results["two"]]
    pairs = [b / (2 * a) for a, b in zip(one, two, strict=False) if a > 0]
    if pairs:
        print(
            f"{args.preset} {args.layers} layers, batch {args.batch_size} per GPU, {args.backend}: one GPU "
            f"{statistics.median(one):,.0f} tokens/s, two GPUs {statistics.median(two):,.0f} tokens/s; "
            f"scaling efficiency (two / 2 x one, paired runs) median {statistics.median(pairs):.2f} "
            f"over {len(pairs)} pair(s): {', '.join(f'{p:.2f}' for p in pairs)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
