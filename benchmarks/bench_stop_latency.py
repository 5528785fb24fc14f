"""Stop latency on the demo model: from the stop request to adapters.safetensors on disk.

    uv run python benchmarks/bench_stop_latency.py
    uv run python benchmarks/bench_stop_latency.py --layers 8 --batch-size 4 --repeats 3

Trains the demo model (SmolLM2-135M-Instruct, converted from the bundled GGUF) on the demo
dataset and presses stop, from another thread as a person would, at three moments:
  (a) during a training step (half a step after the previous one ended),
  (b) during the first validation (half a batch into its second batch),
  (c) during the sample answers (a moment after the first answer began).
Each line prints the time from the request to the stop's CheckpointSaved event (emitted
right after the atomic rename of adapters.safetensors), checks the file is there, and the
median step time, a full validation and the sample answers for comparison: before the stop
was made immediate, a stop waited for the step, a full validation and the sample answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def run_once(cfg: Any, when: str) -> dict[str, Any]:
    from mlxtui.core import events as ev
    from mlxtui.core.engine import Engine, Train

    box: dict[str, Any] = {"steps": [], "phases": {}}
    state = {"armed": False}
    engine: Engine | None = None

    def stop_later(delay: float) -> None:
        def fire() -> None:
            time.sleep(delay)
            box["requested"] = time.perf_counter()
            assert engine is not None
            engine.stop()

        threading.Thread(target=fire, daemon=True).start()

    def sink(e: ev.Event) -> None:
        now = time.perf_counter()
        if isinstance(e, ev.TrainStep):
            box["steps"].append(1.0 / e.iterations_per_second if e.iterations_per_second else 0.0)
            if when == "step" and e.iteration == 3 and not state["armed"]:
                state["armed"] = True
                stop_later(statistics.median(box["steps"]) / 2)
        elif isinstance(e, ev.PhaseStarted):
            box["phases"].setdefault(e.phase, []).append(now)
            if when == "samples" and e.phase == "samples" and not state["armed"]:
                state["armed"] = True
                stop_later(0.2)
        elif isinstance(e, ev.PhaseProgress):
            if when == "validation" and e.phase == "validate" and e.done == 1 and not state["armed"]:
                state["armed"] = True
                first_batch = now - box["phases"]["validate"][-1]
                stop_later(first_batch / 2)
        elif isinstance(e, ev.PhaseFinished):
            box.setdefault("durations", []).append((e.phase, e.seconds, e.outcome))
        elif isinstance(e, ev.CheckpointSaved) and e.kind == "stop":
            box["saved"] = now
            box["path"] = e.path

    engine = Engine(sink)
    engine.start()
    try:
        result = engine.run_sync(Train(cfg), timeout=3600)
    finally:
        engine.shutdown()
    box["result"] = result
    return box


def main() -> None:
    from mlxtui.core.blas import maybe_reexec_with_openblas

    maybe_reexec_with_openblas(sys.argv)  # Linux CPU: measure with OpenBLAS, as mlxtui runs
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument("--sample-prompts", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    import mlx.core as mx

    from mlxtui.core.blas import blas_status
    from mlxtui.core.config import TrainConfig
    from mlxtui.core.models import demo_model_dir

    model = demo_model_dir()
    print(f"device {mx.default_device()}  blas {blas_status().kind}  model {model}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig.quick_start(
            model=str(model),
            data="demo",
            iters=60,
            batch_size=args.batch_size,
            num_layers=args.layers,
            max_seq_length=args.max_seq_length,
            steps_per_eval=1000,
            val_batches=-1,
            save_every=1000,
            sample_prompts=args.sample_prompts,
            memory_guard="off",
            runs_dir=str(Path(tmp) / "runs"),
        )
        for when in ("step", "validation", "samples"):
            for _ in range(args.repeats):
                box = run_once(cfg, when)
                result = box["result"]
                on_disk = Path(box.get("path", "")).is_file()
                latency = box["saved"] - box["requested"] if "saved" in box else float("nan")
                steps = box["steps"][1:] or box["steps"]
                durations = box.get("durations", [])
                val = [s for p, s, o in durations if p == "validate" and o == "done"]
                samples = [s for p, s, o in durations if p == "samples" and o == "done"]
                save = [s for p, s, o in durations if p == "save"]
                print(
                    f"stop during {when:<10}: {latency:6.3f} s from request to adapters.safetensors "
                    f"(on disk: {on_disk}; status {result.status} at step {result.final_iteration}; "
                    f"the save itself {save[-1]:.3f} s)"
                    + (f"; median step {statistics.median(steps):.3f} s" if steps else "")
                    + (f"; a full validation {val[0]:.2f} s" if val else "")
                    + (f"; sample answers {samples[0]:.2f} s" if samples else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()
