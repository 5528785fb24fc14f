"""kill -9 trials: `mlxtui train` on the tiny model killed at random moments, some inside
checkpoint writes, then checked and resumed.

Each trial starts a headless run (--save-every 2, --adapter-path DIR) and kills it with SIGKILL:
- "step": a random time after a random training step;
- "write": inside an atomic write (MLXTUI_FAULT_WRITE_DELAY makes each write sleep between its
  temporary file and the rename; the kill comes while a temporary file exists);
- "start": a random time after launch (often before the run folder or the first checkpoint).
Then, whatever the moment:
- every .safetensors file in the run folder and DIR loads, no temporary file is taken for a
  checkpoint; the newest checkpoint loads in mlxtui's loader and in mlx_lm.load (run folder
  and DIR);
- the run folder agrees with itself: config.yaml loads with the settings given; state.json's
  step has its periodic checkpoint, state/adapters.safetensors holds that checkpoint's weights,
  and metrics.jsonl reports every step up to it;
- `mlxtui train --resume` continues from the state to the end with the losses of an
  uninterrupted run (within 1e-5).

    uv run python tests/kill_trials.py --trials 24      # prints one line per trial and a summary

tests/test_kill_trials.py runs one of them in the suite (killed inside a checkpoint write).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ITERS = 12
SAVE_EVERY = 2
WRITE_DELAY_S = 0.3


@dataclass
class Trial:
    n: int
    mode: str
    killed_at: str = ""
    state_iteration: int | None = None
    resumed_to: int | None = None
    max_loss_diff: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        verdict = "ok" if self.ok else "FAIL: " + "; ".join(self.problems)
        diff = f"{self.max_loss_diff:.1e}" if self.max_loss_diff is not None else "-"
        return (
            f"trial {self.n:2d} {self.mode:5s} killed {self.killed_at:28s} state step "
            f"{self.state_iteration if self.state_iteration is not None else '-':>2} resumed to "
            f"{self.resumed_to if self.resumed_to is not None else '-':>2} max |Δloss| {diff:7s} {verdict}"
        )


def train_argv(model: Path, data: Path, runs: Path, adapter: Path) -> list[str]:
    return [
        sys.executable, "-m", "mlxtui", "train", "--model", str(model), "--data", str(data),
        "--num-layers", "2", "--iters", str(ITERS), "--save-every", str(SAVE_EVERY),
        "--steps-per-report", "1", "--steps-per-eval", "1000000", "--seed", "7",
        "--learning-rate", "1e-3", "--runs-dir", str(runs), "--memory-guard", "off",
        "--adapter-path", str(adapter),
    ]


def losses_of(run: Path) -> dict[int, float]:
    """Each step's loss, the last run's (after a resume's "start" line) winning."""
    out: dict[int, float] = {}
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if rec.get("event") == "train":
            out[int(rec["iteration"])] = float(rec["train_loss"])
    return out


def reference_losses(model: Path, data: Path, root: Path) -> dict[int, float]:
    """The uninterrupted run's losses. The same `mlxtui train` command line, run in this process
    through the CLI's entry: the same settings and seed give the same losses as a process of its
    own, without another interpreter start (mlx-lm's imports alone take seconds)."""
    from mlxtui.cli.main import main as mlxtui_main

    runs = root / "reference_runs"
    argv = train_argv(model, data, runs, root / "reference_adapter")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = mlxtui_main(argv[argv.index("train"):])
    if code != 0:
        raise RuntimeError(f"the reference run failed ({code}): {out.getvalue()[-2000:]}")
    return losses_of(next(runs.iterdir()))


def _tmp_files(*folders: Path) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if ".tmp" in p.name]
    return found


def run_and_kill(model: Path, data: Path, runs: Path, adapter: Path, mode: str,
                 rng: random.Random) -> str:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if mode == "write":
        env["MLXTUI_FAULT_WRITE_DELAY"] = str(WRITE_DELAY_S)
    proc = subprocess.Popen(train_argv(model, data, runs, adapter), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    try:
        if mode == "start":
            delay = rng.uniform(2.0, 12.0)
            time.sleep(delay)
            where = f"{delay:.1f} s after launch"
        elif mode == "step":
            step = rng.randint(1, ITERS - 1)
            for line in proc.stdout:
                if line.startswith(f"step {step}/"):
                    break
            delay = rng.uniform(0.0, 0.3)
            time.sleep(delay)
            where = f"{delay:.2f} s after step {step}"
        else:  # inside a write: the n-th temporary file seen, killed part-way through its sleep
            os.set_blocking(proc.stdout.fileno(), False)
            wanted = rng.randint(1, 40)  # about 45 writes in a run: 3 at the start, 7 per save
            seen: set[str] = set()
            deadline = time.monotonic() + 300
            name = ""
            while len(seen) < wanted and time.monotonic() < deadline and proc.poll() is None:
                try:
                    proc.stdout.read()
                except (BlockingIOError, TypeError):
                    pass
                for p in _tmp_files(runs, adapter):
                    if p.name not in seen:
                        seen.add(p.name)
                        name = p.name
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, WRITE_DELAY_S * 0.8))
            where = f"in write {len(seen)} ({name.split('.tmp')[0].lstrip('.')})"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        return where
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_loads(model: Path, folder: Path, t: Trial, what: str) -> None:
    import mlx.core as mx
    from mlx_lm import load

    from mlxtui.core.models import load_model

    if not (folder / "adapters.safetensors").is_file():
        return
    try:
        m1, _, _ = load_model(str(model), adapter_path=str(folder))
        m2, _ = load(str(model), adapter_path=str(folder))
        tokens = mx.array([[1, 2, 3, 4]])
        if not mx.allclose(m1(tokens), m2(tokens), atol=1e-5):
            t.problems.append(f"{what}: mlxtui and mlx_lm load different weights")
    except Exception as e:  # noqa: BLE001 - recorded as the trial's failure
        t.problems.append(f"{what} does not load: {type(e).__name__}: {e}")


def check_after_kill(model: Path, runs: Path, adapter: Path, t: Trial) -> Path | None:
    import mlx.core as mx

    from mlxtui.core.config import load_config
    from mlxtui.core.runs import checkpoints, read_state

    for folder in (runs, adapter):
        for p in folder.rglob("*.safetensors") if folder.is_dir() else []:
            if ".tmp" in p.name:
                continue  # a temporary file the kill left: never read as a checkpoint
            try:
                mx.load(str(p))
            except Exception as e:  # noqa: BLE001
                t.problems.append(f"{p} does not load: {e}")
    check_loads(model, adapter, t, "--adapter-path")
    run_dirs = sorted(runs.iterdir()) if runs.is_dir() else []
    if not run_dirs:
        return None
    run = run_dirs[0]
    check_loads(model, run / "adapters", t, "the run's adapters")
    if (run / "config.yaml").is_file():
        cfg = load_config(run / "config.yaml")
        if (cfg.iters, cfg.save_every, cfg.seed, cfg.num_layers) != (ITERS, SAVE_EVERY, 7, 2):
            t.problems.append(f"config.yaml differs from the command line: {cfg.iters} {cfg.save_every}")
    state = read_state(run)
    if state is None:
        return None
    s = int(state["iteration"])
    t.state_iteration = s
    ckpts = dict(checkpoints(run / "adapters"))
    if s not in ckpts:
        t.problems.append(f"state says step {s}, no checkpoint of that step")
    else:
        from mlxtui.core.training.checkpoints import state_files

        opt_file, ad_file = state_files(run / "state", state)
        saved = mx.load(str(ad_file))
        mx.load(str(opt_file))
        ck = mx.load(str(ckpts[s]))
        if set(saved) != set(ck) or not all(mx.array_equal(saved[k], ck[k]) for k in ck):
            t.problems.append(f"{ad_file.name} (state.json's) is not the step-{s} checkpoint")
    reported = losses_of(run)
    if any(i not in reported for i in range(1, s + 1)):
        t.problems.append(f"metrics.jsonl lacks steps up to {s}")
    if not (run / "config.yaml").is_file():
        t.problems.append("a state without config.yaml")
    return run


def resume_and_compare(model: Path, data: Path, run: Path, adapter: Path,
                       reference: dict[int, float], t: Trial) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlxtui", "train", "--resume", str(run), "--memory-guard", "off"],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        t.problems.append(f"resume failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
        return
    from mlxtui.core.runs import read_state

    state = read_state(run) or {}
    t.resumed_to = int(state.get("iteration", -1))
    if t.resumed_to != ITERS or state.get("status") != "completed":
        t.problems.append(f"resume ended at {t.resumed_to} ({state.get('status')})")
    losses = losses_of(run)
    start = t.state_iteration or 0
    diffs = [abs(losses[i] - reference[i]) for i in range(start + 1, ITERS + 1) if i in losses]
    if len(diffs) != ITERS - start:
        t.problems.append("the resumed run did not report every step")
    t.max_loss_diff = max(diffs) if diffs else None
    if diffs and max(diffs) > 1e-5:
        t.problems.append(f"resumed losses differ from the uninterrupted run by {max(diffs):.2e}")
    final = run / "adapters" / "adapters.safetensors"
    if not (adapter / "adapters.safetensors").is_file() or (
        adapter / "adapters.safetensors"
    ).read_bytes() != final.read_bytes():
        t.problems.append("--adapter-path does not hold the resumed run's final adapter")
    else:
        check_loads(model, adapter, t, "--adapter-path after resume")


def one_trial(n: int, mode: str, model: Path, data: Path, root: Path,
              reference: dict[int, float], rng: random.Random) -> Trial:
    t = Trial(n, mode)
    runs, adapter = root / f"t{n}" / "runs", root / f"t{n}" / "adapter"
    t.killed_at = run_and_kill(model, data, runs, adapter, mode, rng)
    run = check_after_kill(model, runs, adapter, t)
    if run is not None and t.state_iteration is not None and t.state_iteration < ITERS:
        resume_and_compare(model, data, run, adapter, reference, t)
    return t


def setup(root: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from demo_slice import demo_slice
    from tiny_model import make_tiny_model

    return make_tiny_model(root / "model"), demo_slice(root / "data", train=16, valid=4)


MODES = ["write", "step", "write", "start", "step"]


def trials(count: int, seed: int, root: Path, modes: list[str] = MODES,
           on_trial: Callable[[Trial], None] | None = None) -> list[Trial]:
    """`count` trials in `root`, the kill moments drawn from `seed`."""
    model, data = setup(root)
    reference = reference_losses(model, data, root)
    rng = random.Random(seed)
    results = []
    for n in range(count):
        t = one_trial(n, modes[n % len(modes)], model, data, root, reference, rng)
        if on_trial is not None:
            on_trial(t)
        results.append(t)
    return results


def main() -> int:
    import mlxtui  # noqa: F401  (OpenBLAS before mlx)

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the trial folders")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kill_trials_"))
    tic = time.monotonic()
    try:
        results = trials(args.trials, args.seed, root, on_trial=lambda t: print(t.line(), flush=True))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    ok = sum(t.ok for t in results)
    resumed = sum(t.resumed_to is not None for t in results)
    by_mode = {m: sum(t.mode == m for t in results) for m in ("step", "write", "start")}
    print(f"{ok}/{len(results)} trials ok ({by_mode}); {resumed} resumed to step {ITERS} with the "
          f"uninterrupted run's losses; {time.monotonic() - tic:.0f} s")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

