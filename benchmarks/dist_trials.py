"""Trials of `mlxtui train --nproc 2 --backend ring` on this machine (CPU), run by hand.

    uv run python benchmarks/dist_trials.py [--kills 3]

1. resume: 2 ranks straight for 8 steps vs 2 ranks for 4 steps, then --resume to 8: the
   losses of steps 5..8 (the maximum difference is printed; 0 means bit-exact).
2. Ctrl-C: SIGINT to the launching process at step >= 3: every rank stops, rank 0 saves
   (state.json says "stopped"), the command exits 130.
3. hang: SIGSTOP to rank 1 with --rank-timeout 15: the watcher ends every rank (seconds
   from the stop to the end are printed).
4. kill -9 of rank 1 (--kills times): the others stop, the command names rank 1, the last
   checkpoint loads with mlx_lm (seconds from the kill to the end are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from rank_procs import rank_pid  # noqa: E402  (tests/rank_procs.py, shared with the suite)


def data_dir(tmp: Path) -> Path:
    from demo_slice import demo_slice  # tests/demo_slice.py, shared with the suite

    return demo_slice(tmp / "data", train=48, valid=8, test=8)


def cmd(model: Path, data: Path, runs: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mlxtui", "train", "--model", str(model), "--data", str(data),
        "--runs-dir", str(runs), "--num-layers", "2", "--learning-rate", "1e-3", "--batch-size", "2",
        "--steps-per-report", "1", "--val-batches", "2", "--max-seq-length", "64", "--memory-guard", "off",
        "--nproc", "2", "--backend", "ring", *extra,
    ]  # fmt: skip


def train_losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("event") == "train":
            out[int(r["iteration"])] = float(r["train_loss"])
    return out


def wait_for(path_glob: tuple[Path, str], proc: subprocess.Popen[str], timeout: float = 600) -> Path:
    base, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise SystemExit(f"the run ended ({proc.returncode}) before {pattern}:\n{out[-2000:]}\n{err[-2000:]}")
        found = sorted(base.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {base}/{pattern}")


def run(c: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(c, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(c)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def trial_resume(model: Path, data: Path, tmp: Path) -> None:
    straight = tmp / "straight"
    run(cmd(model, data, straight, "--iters", "8", "--steps-per-eval", "100", "--save-every", "4"))
    resumed = tmp / "resumed"
    run(cmd(model, data, resumed, "--iters", "4", "--steps-per-eval", "100", "--save-every", "4"))
    (first,) = resumed.iterdir()
    run(cmd(model, data, resumed, "--iters", "8", "--resume", str(first)))
    a, b = train_losses(next(straight.iterdir())), train_losses(first)
    diffs = [abs(a[i] - b[i]) for i in range(5, 9)]
    print(f"resume (2 ranks): steps 5..8 straight {[round(a[i], 6) for i in range(5, 9)]}")
    print(f"                  resumed           {[round(b[i], 6) for i in range(5, 9)]}; max |diff| {max(diffs):.3g}")


def trial_ctrl_c(model: Path, data: Path, tmp: Path) -> None:
    runs = tmp / "ctrlc"
    p = subprocess.Popen(cmd(model, data, runs, "--iters", "400", "--steps-per-eval", "1000", "--save-every", "2"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for((runs, "*/adapters/0000002_adapters.safetensors"), p)
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    state = json.loads(next(runs.glob("*/state/state.json")).read_text())
    left = [r for r in (0, 1) if rank_pid(runs, r)]
    print(f"Ctrl-C: exit {p.returncode} after {time.monotonic() - t0:.1f} s; state {state['status']} at step "
          f"{state['iteration']}; ranks left running: {left or 'none'}")


def trial_hang(model: Path, data: Path, tmp: Path) -> None:
    runs = tmp / "hang"
    p = subprocess.Popen(
        cmd(model, data, runs, "--iters", "400", "--steps-per-eval", "1000", "--save-every", "2", "--rank-timeout", "15"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for((runs, "*/adapters/0000002_adapters.safetensors"), p)
    pid = rank_pid(runs, 1)
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    out, err = p.communicate(timeout=300)
    left = [r for r in (0, 1) if rank_pid(runs, r)]
    print(f"hang (SIGSTOP rank 1, --rank-timeout 15): exit {p.returncode} after {time.monotonic() - t0:.1f} s; "
          f"ranks left: {left or 'none'}; said: {err.strip().splitlines()[-1][:160]}")


def trial_kill(model: Path, data: Path, tmp: Path, k: int) -> dict[str, Any]:
    runs = tmp / f"kill{k}"
    p = subprocess.Popen(cmd(model, data, runs, "--iters", "400", "--steps-per-eval", "1000", "--save-every", "2"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for((runs, f"*/adapters/{2 * (k + 2):07d}_adapters.safetensors"), p)
    pid = rank_pid(runs, 1)
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    seconds = time.monotonic() - t0
    run_dir = next(runs.iterdir())
    from mlx_lm import load

    load(str(model), adapter_path=str(run_dir / "adapters"))
    state = json.loads((run_dir / "state" / "state.json").read_text())
    named = "rank 1 was ended by SIGKILL" in err
    print(f"kill -9 rank 1 #{k + 1}: exit {p.returncode} after {seconds:.1f} s; rank 1 named: {named}; "
          f"checkpoint at step {state['iteration']} loads")
    return {"seconds": seconds, "ok": p.returncode == 1 and named}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--only", choices=("resume", "ctrlc", "hang", "kill"), default=None)
    args = ap.parse_args()
    from tiny_model import make_tiny_model

    import mlxtui  # noqa: F401  (OpenBLAS before MLX)

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        (tmp / "model").mkdir()
        model = make_tiny_model(tmp / "model")
        data = data_dir(tmp)
        os.chdir(tmp)
        if args.only in (None, "resume"):
            trial_resume(model, data, tmp)
        if args.only in (None, "ctrlc"):
            trial_ctrl_c(model, data, tmp)
        if args.only in (None, "hang"):
            trial_hang(model, data, tmp)
        if args.only in (None, "kill"):
            results = [trial_kill(model, data, tmp, k) for k in range(args.kills)]
            print(f"kill -9: {sum(r['ok'] for r in results)}/{len(results)} named rank 1 and exited 1; "
                  f"median {sorted(r['seconds'] for r in results)[len(results) // 2]:.1f} s to the end")


if __name__ == "__main__":
    main()
