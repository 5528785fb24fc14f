"""Comparing real runs: the config diff, best step, val-train gap, overlay data and the plot file."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_folders import small_data, train_run

from mlxtui.core import run_compare as rc
from mlxtui.core.plot_export import PlotError, write_overlay
from mlxtui.core.run_history import summarize


@pytest.fixture(scope="module")
def two_runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("compare")
    data = small_data(root / "data")
    a = train_run(tiny_model_dir, data, root / "runs", run_name="slow", learning_rate=1e-3)
    b = train_run(
        tiny_model_dir, data, root / "runs", run_name="fast", learning_rate=3e-3, num_layers=1,
        lora_parameters={"rank": 4, "dropout": 0.0, "scale": 20.0},
    )  # fmt: skip
    return [a, b]


def test_the_diff_lists_only_settings_that_differ(two_runs):
    result = rc.compare([summarize(p) for p in two_runs])
    assert result.names == ("slow", "fast")
    diff = dict(result.diff)
    assert diff["learning_rate"] == (1e-3, 3e-3)
    assert diff["num_layers"] == (2, 1)
    assert diff["lora_parameters.rank"] == (8, 4)
    # paths that differ for every run are not settings
    assert not {"adapter_path", "run_name", "runs_dir"} & set(diff)
    assert "batch_size" not in diff and "model" not in diff


def test_best_step_and_gap_come_from_the_curves(two_runs):
    for path in two_runs:
        s = summarize(path)
        f = rc.figures(s)
        best = min(s.val_curve, key=lambda p: p.loss)
        assert (f.best_step, f.best_val_loss) == (best.iteration, best.loss)
        last_val = s.val_curve[-1]
        train_at = [p for p in s.train_curve if p.iteration <= last_val.iteration][-1]
        assert f.gap_step == last_val.iteration == 6
        assert f.val_train_gap == pytest.approx(last_val.loss - train_at.loss)


def test_overlay_against_steps_or_tokens(two_runs):
    runs = [summarize(p) for p in two_runs]
    by_steps = rc.overlay(runs, "steps")
    by_tokens = rc.overlay(runs, "tokens")
    assert [(s.run, s.kind) for s in by_steps] == [
        ("slow", "train"),
        ("slow", "val"),
        ("fast", "train"),
        ("fast", "val"),
    ]
    assert by_steps[0].x == tuple(float(p.iteration) for p in runs[0].train_curve)
    assert by_tokens[0].x == tuple(float(p.tokens) for p in runs[0].train_curve)
    assert by_tokens[0].y == by_steps[0].y
    assert by_tokens[1].x[0] == 0.0 and by_tokens[1].x[-1] == runs[0].train_curve[-1].tokens
    with pytest.raises(ValueError, match="x axis"):
        rc.overlay(runs, "epochs")
    with pytest.raises(ValueError, match="two runs"):
        rc.compare(runs[:1])


def test_two_runs_with_one_name_are_told_apart_by_folder(two_runs, tmp_path):
    runs = [summarize(two_runs[0]), summarize(two_runs[0])]
    assert rc.unique_names(runs) == (two_runs[0].name, two_runs[0].name)
    assert rc.compare(runs).diff == ()


def test_plot_png_and_svg(two_runs, tmp_path):
    result = rc.compare([summarize(p) for p in two_runs])
    png = write_overlay(result, tmp_path / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    svg = write_overlay(result, tmp_path / "cmp.svg", x_axis="tokens")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for words in ("slow (train)", "fast (validation)", "tokens trained"):
        assert words in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(PlotError, match=r"\.png or \.svg"):
        write_overlay(result, tmp_path / "cmp.pdf")
