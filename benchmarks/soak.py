"""Soak: a long training on the tiny model with the dashboard running (run_test, real engine).

    uv run python benchmarks/soak.py                 # 5,000 steps (issue 13's figure)
    uv run python benchmarks/soak.py --steps 300     # a quick look

Prints, every `--every` steps: the step, the process RSS, the UI's pending message count (the
largest seen since the last line), the loss plot's stored points and the median time of its
redraws. At the end: RSS growth after warm-up (target < 5%), the largest message queue seen,
and the plot's redraw time early vs late (flat = its cost does not grow with the run).
tests/test_soak.py runs a short version that checks the queue bound and the decimation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
# The dashboards started here remember their session like any other (session_memory): in a
# folder of this run's own, never over the user's remembered settings.
os.environ.setdefault("MLXTUI_CONFIG_DIR", tempfile.mkdtemp(prefix="mlxtui-bench-config-"))

import mlxtui  # noqa: E402, F401  (OpenBLAS before MLX, as the CLI does)


@dataclass
class SoakFigures:
    steps: int
    rows: list[dict[str, float]] = field(default_factory=list)
    max_queue: int = 0
    redraws: list[tuple[int, float]] = field(default_factory=list)  # (iteration, seconds)
    final_state: str = ""
    seconds: float = 0.0
    plot_points: int = 0

    def rss_growth(self, warmup_fraction: float = 0.2) -> float | None:
        """RSS growth from the end of warm-up to the end, as a fraction of the warm-up value."""
        rows = [r for r in self.rows if r["step"] >= self.steps * warmup_fraction]
        if len(rows) < 2:
            return None
        return (rows[-1]["rss"] - rows[0]["rss"]) / rows[0]["rss"]

    def redraw_median(self, lo: float, hi: float) -> float | None:
        """Median redraw time over iterations in [lo, hi) as fractions of the run."""
        times = [t for it, t in self.redraws if self.steps * lo <= it < self.steps * hi]
        return statistics.median(times) if times else None


def soak_config(model: Path, runs: Path, steps: int) -> Any:
    from mlxtui.core.config import TrainConfig

    return TrainConfig.quick_start(
        model=str(model),
        iters=steps,
        batch_size=2,
        num_layers=2,
        max_seq_length=128,
        steps_per_report=10,
        steps_per_eval=max(steps // 10, 50),  # validation now and then, as a real run has
        val_batches=2,
        save_every=max(steps // 5, 100),
        sample_prompts=0,
        dequantize="no",
        runs_dir=str(runs),
    )


async def soak(
    model: Path,
    runs: Path,
    steps: int,
    every: int = 250,
    echo: bool = True,
    plot_limit: int | None = None,
) -> SoakFigures:
    import psutil

    from mlxtui.core.engine import Engine
    from mlxtui.tui.app import MlxtuiApp
    from mlxtui.tui.widgets import loss_plot
    from mlxtui.tui.widgets.loss_plot import LossPlot

    figures = SoakFigures(steps)
    process = psutil.Process()
    redraw, kept = LossPlot._redraw, loss_plot.MAX_KEPT_POINTS
    if plot_limit is not None:
        loss_plot.MAX_KEPT_POINTS = plot_limit

    def timed_redraw(self: LossPlot) -> None:
        start = time.perf_counter()
        redraw(self)
        if self.train_points:
            figures.redraws.append((self.train_points[-1][0], time.perf_counter() - start))

    LossPlot._redraw = timed_redraw  # type: ignore[method-assign]
    try:
        app = MlxtuiApp(soak_config(model, runs, steps), engine_factory=Engine)
        started = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            while app.status.model == "" or app.model_info is None:
                await pilot.pause(0.05)
            await pilot.press("t")
            next_row, queue_peak = 0, 0
            while True:
                await pilot.pause(0.02)
                queue_peak = max(queue_peak, app._message_queue.qsize())
                step = app.status.iteration or 0
                if step >= next_row or app.status.state in ("done", "failed"):
                    plot = app.query_one(LossPlot)
                    recent = [t for _it, t in figures.redraws[-20:]]
                    row = {
                        "step": step,
                        "rss": process.memory_info().rss,
                        "queue": queue_peak,
                        "points": len(plot.train_points),
                        "redraw_ms": 1000 * statistics.median(recent) if recent else 0.0,
                    }
                    figures.rows.append(row)
                    figures.max_queue = max(figures.max_queue, queue_peak)
                    queue_peak = 0
                    next_row = step + every
                    if echo:
                        print(
                            f"step {step:6d}  rss {row['rss'] / 2**20:7.1f} MiB  "
                            f"queue max {row['queue']:3d}  plot points {row['points']:5d}  "
                            f"redraw {row['redraw_ms']:6.2f} ms",
                            flush=True,
                        )
                if app.status.state in ("done", "failed", "stopped"):
                    break
            figures.final_state = app.status.state
            figures.plot_points = len(app.query_one(LossPlot).train_points)
        figures.seconds = time.perf_counter() - started
    finally:
        LossPlot._redraw = redraw  # type: ignore[method-assign]
        loss_plot.MAX_KEPT_POINTS = kept
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--every", type=int, default=250, help="print a line every N steps")
    args = parser.parse_args()
    from tiny_model import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_tiny_model(root / "model")
        figures = asyncio.run(soak(model, root / "runs", args.steps, args.every))
    growth = figures.rss_growth()
    early, late = figures.redraw_median(0.1, 0.3), figures.redraw_median(0.8, 1.01)
    print(f"\n{figures.steps} steps in {figures.seconds:.0f} s, final state {figures.final_state}")
    if growth is not None:
        print(f"RSS growth after warm-up (first 20% of steps): {100 * growth:+.2f}% (target < 5%)")
    print(f"largest pending UI message count: {figures.max_queue}")
    print(f"loss plot points kept: {figures.plot_points}")
    if early and late:
        print(
            f"loss plot redraw median: {1000 * early:.2f} ms at 10-30% of the run, "
            f"{1000 * late:.2f} ms at 80-100% (ratio {late / early:.2f})"
        )
    return 0 if figures.final_state == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
