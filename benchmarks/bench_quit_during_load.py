"""Quit during a model load: how long `Engine.shutdown()` takes when the user quits (q) while
the demo model is loading, and how long the load itself takes.

    uv run python benchmarks/bench_quit_during_load.py [--model demo] [--delay 0.5] [--repeats 3]

Each repeat starts an engine, submits the load, waits `--delay` seconds after the load job
started (inside the read of the weights), calls shutdown() as the dashboard's unmount does,
and prints the seconds shutdown() took and whether the process can exit cleanly afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any


def once(model: str, delay: float) -> tuple[float, float]:
    from mlxtui.core import events as ev
    from mlxtui.core.engine import Engine, LoadModel

    started = threading.Event()
    loaded = threading.Event()

    def sink(e: Any) -> None:
        if isinstance(e, ev.JobStarted) and e.kind == "load":
            started.set()
        if isinstance(e, ev.ModelLoaded):
            loaded.set()

    engine = Engine(sink)
    engine.start()
    t0 = time.perf_counter()
    engine.submit(LoadModel(spec=model))
    started.wait(60)
    time.sleep(delay)
    tic = time.perf_counter()
    engine.shutdown()
    quit_s = time.perf_counter() - tic
    return quit_s, (time.perf_counter() - t0) if loaded.is_set() else float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="demo")
    p.add_argument("--delay", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from mlxtui.core.models import demo_model_dir

    demo_model_dir()  # converted once beforehand: the figure is the load, not the conversion
    quits = []
    for i in range(args.repeats):
        quit_s, until_loaded = once(args.model, args.delay)
        quits.append(quit_s)
        done = "model loaded before the engine stopped" if until_loaded == until_loaded else "load abandoned"
        print(f"run {i + 1}: shutdown() took {quit_s:.2f} s ({done})", flush=True)
    print(f"quit during a load ({args.delay:.1f} s in): median {statistics.median(quits):.2f} s")


if __name__ == "__main__":
    main()
