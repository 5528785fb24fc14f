"""A real full disk under `mlxtui train`: the run folder and --adapter-path on a small tmpfs.

Needs root (it mounts a tmpfs). It starts a headless run on the tiny test model with
--save-every 1, fills the tmpfs once training is under way, checks that the run pauses with a
message naming the folder and the space needed while the previous checkpoint stays loadable,
frees the space and checks that the run continues by itself to the end.

    uv run python benchmarks/disk_full_trial.py [--trials 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import mlxtui  # noqa: E402,F401  (OpenBLAS before mlx)


def small_data(out: Path) -> Path:
    from mlxtui.demo_data import demo_data_dir

    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", 16), ("valid", 4)):
        lines = (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def fill(folder: Path) -> Path:
    """Write one file until the filesystem is full; return it."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def trial(model: Path, data: Path, root: Path, n: int) -> dict[str, object]:
    import mlx.core as mx

    mnt = root / f"tmpfs{n}"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], check=True)
    proc: subprocess.Popen[str] | None = None
    try:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlxtui", "train", "--model", str(model), "--data", str(data),
             "--num-layers", "2", "--iters", "30", "--save-every", "1", "--steps-per-report", "1",
             "--steps-per-eval", "1000000", "--runs-dir", str(mnt / "runs"), "--memory-guard", "off",
             "--adapter-path", str(mnt / "adapter")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        err_lines: list[str] = []
        threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
        out: dict[str, object] = {"trial": n}
        filler: Path | None = None
        for line in proc.stdout:
            if line.startswith("step 5/") and filler is None:
                filler = fill(mnt)
            if line.startswith("paused at step") and "disk full" in line:
                out["pause"] = line.strip()
                run = next((mnt / "runs").iterdir())
                w = mx.load(str(run / "adapters" / "adapters.safetensors"))
                out["previous_loads"] = all(bool(mx.all(mx.isfinite(v)).item()) for v in w.values())
                out["state_iteration_while_full"] = json.loads(
                    (run / "state" / "state.json").read_text())["iteration"]
                time.sleep(1.0)  # paused, not dead
                out["alive_while_full"] = proc.poll() is None
                assert filler is not None
                filler.unlink(missing_ok=True)
            if line.startswith("continuing at step"):
                out["continued"] = line.strip()
        proc.wait(timeout=300)
        out["returncode"] = proc.returncode
        run = next((mnt / "runs").iterdir())
        out["final_state"] = json.loads((run / "state" / "state.json").read_text())["iteration"]
        out["adapter_dir_has_30"] = (mnt / "adapter" / "0000030_adapters.safetensors").is_file() or (
            mnt / "adapter" / "adapters.safetensors").is_file()
        out["tracebacks_on_stderr"] = sum("Traceback" in x for x in err_lines)
        if proc.returncode:
            out["stderr_tail"] = "".join(err_lines)[-1500:]
        return out
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["umount", str(mnt)], check=False)


def main() -> int:
    from tiny_model import make_tiny_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="disk_full_"))
    model = make_tiny_model(root / "model")
    data = small_data(root / "data")
    ok = 0
    for n in range(args.trials):
        r = trial(model, data, root, n)
        print(json.dumps(r))
        good = (r.get("previous_loads") and r.get("alive_while_full") and r.get("continued")
                and r["returncode"] == 0 and r["final_state"] == 30)
        ok += bool(good)
    print(f"{ok}/{args.trials} trials: paused on the full disk, previous checkpoint loadable, "
          "continued after the space was freed, completed")
    return 0 if ok == args.trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
