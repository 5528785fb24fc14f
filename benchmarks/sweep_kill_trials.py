"""kill -9 trials of `mlxtui sweep`: kill the process at random moments, start it again, repeat
until the sweep finishes; then check that every run finished, every resume started at the step of
the checkpoint it resumed from, and the resumed losses equal those of the same run never killed.

    uv run python benchmarks/sweep_kill_trials.py --trials 5 --seed 1

Prints one line per trial and a total. On the tiny model of the tests (4 layers, hidden 64).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlxtui  # noqa: F401  (OpenBLAS before MLX)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tiny_model import make_tiny_model  # noqa: E402

from mlxtui.core.runs import read_metrics  # noqa: E402
from mlxtui.demo_data import demo_data_dir  # noqa: E402

SWEEP = """
base: {{model: {model}, data: {data}, iters: 9, num_layers: 2, save_every: 3, steps_per_eval: 3,
        steps_per_report: 1, val_batches: 1, max_seq_length: 256, sample_prompts: 0}}
grid:
  learning_rate: [1e-3, 3e-3, 5e-3]
"""


def straight_losses(run_dir: Path, out: Path) -> dict[int, float]:
    from mlxtui import TrainPipeline
    from mlxtui.core.config import load_config

    config = load_config(run_dir / "config.yaml").with_values(
        runs_dir=str(out / "runs"), adapter_path=str(out / "adapters"), run_name="straight", resume_run=None
    )
    return dict(TrainPipeline(config).execute().train_losses)


def trial(root: Path, model: Path, data: Path, rng: random.Random) -> dict[str, int]:
    root.mkdir(parents=True)
    (root / "trio.yaml").write_text(SWEEP.format(model=model, data=data), encoding="utf-8")
    kills = starts = 0
    while True:
        starts += 1
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlxtui", "sweep", "trio.yaml", "--no-estimate"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait = rng.uniform(8.0, 40.0)  # startup takes ~8 s here; the first checkpoint comes at step 3
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        if proc.returncode != 0:
            raise SystemExit(f"{root}: the sweep exited {proc.returncode}")
        break
    queue = json.loads((root / "sweeps" / "trio" / "sweep.json").read_text())
    assert all(r["status"] == "done" for r in queue["runs"]), queue
    resumes = restarts = exact = 0
    for run in queue["runs"]:
        folder = root / run["run_dir"]
        starts_in = [m["start_iter"] for m in read_metrics(folder) if m.get("event") == "start"]
        assert starts_in[0] == 0 and starts_in[1:] == run["resumed_from"], (starts_in, run)
        resumes += len(run["resumed_from"])
        restarts += len(run["abandoned"])
        if run["resumed_from"]:
            got = {m["iteration"]: m["train_loss"] for m in read_metrics(folder) if m.get("event") == "train"}
            want = straight_losses(folder, root / f"straight-{run['label']}")
            assert sorted(got) == sorted(want), (sorted(got), sorted(want))
            assert all(abs(got[i] - want[i]) < 1e-5 for i in want), run["label"]
            exact += 1
    return {"starts": starts, "kills": kills, "resumes": resumes, "restarts": restarts, "exact": exact}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        model = make_tiny_model(base / "model")
        data = base / "data"
        data.mkdir()
        for name, n in (("train", 24), ("valid", 8), ("test", 4)):
            lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
            (data / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        total: dict[str, int] = {}
        t0 = time.time()
        for i in range(args.trials):
            figures = trial(base / f"trial{i}", model, data, rng)
            print(f"trial {i}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
            for k, v in figures.items():
                total[k] = total.get(k, 0) + v
        print(f"{args.trials} trials, all sweeps finished; " + ", ".join(f"{k} {v}" for k, v in total.items())
              + f"; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
