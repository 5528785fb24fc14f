"""The soak's short version (benchmarks/soak.py runs 5,000 steps by hand): the dashboard on the
real engine and the tiny model keeps its UI message queue bounded and its loss plot decimated.
No timings are asserted here; the figures are in benchmarks/README.md."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from mlxtui.tui.widgets.loss_plot import (
    RECENT_POINTS,
    LossPlot,
    decimate_older,
    min_max_decimate,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def noisy_curve(n: int, seed: int = 0) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    points = [(i, 3.0 / (1 + i / 500) + rng.gauss(0, 0.1)) for i in range(1, n + 1)]
    spike = n // 3
    points[spike] = (spike + 1, 9.5)  # one spike, as a bad batch gives
    return points


def test_min_max_decimation_keeps_the_extremes_and_the_ends() -> None:
    points = noisy_curve(10_000)
    kept = min_max_decimate(points, 400)
    assert len(kept) <= 400
    assert kept[0] == points[0] and kept[-1] == points[-1]
    iterations = [it for it, _ in kept]
    assert iterations == sorted(set(iterations))  # in order, none twice
    assert set(kept) <= set(points)  # only real points, none made up
    assert min(p[1] for p in kept) == min(p[1] for p in points)
    assert max(p[1] for p in kept) == 9.5
    # every stretch of the run keeps its own extremes: each bucket of 50 original points
    # has its lowest and highest point inside the kept set's range over that stretch
    for lo in range(0, 10_000, 1000):
        window = points[lo : lo + 1000]
        inside = [p for p in kept if window[0][0] <= p[0] <= window[-1][0]]
        assert min(p[1] for p in inside) == min(p[1] for p in window)
        assert max(p[1] for p in inside) == max(p[1] for p in window)


def test_older_points_are_decimated_and_the_newest_stay_exact() -> None:
    plot = LossPlot()
    points = noisy_curve(20_000, seed=1)
    for it, loss in points:
        plot.add_train(it, loss)
    assert len(plot.train_points) <= 2000
    assert plot.train_points[-RECENT_POINTS:] == points[-RECENT_POINTS:]
    assert max(p[1] for p in plot.train_points) == 9.5
    assert min(p[1] for p in plot.train_points) == min(p[1] for p in points)
    assert decimate_older(points[:100], 2000, RECENT_POINTS) == points[:100]


async def test_a_short_soak_keeps_the_queue_bounded_and_the_plot_decimated(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from soak import soak

    figures = await soak(
        tiny_model_dir, tmp_path / "runs", 100, every=20, echo=False, plot_limit=40
    )
    assert figures.final_state == "done"
    # the bridge batches steps and memory samples: the UI never falls behind by more than a few
    assert figures.max_queue <= 20, figures.rows
    assert 0 < figures.plot_points <= 40
    assert [row["step"] for row in figures.rows][-1] == 100
