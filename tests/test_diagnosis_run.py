"""The diagnosis on real tiny-model runs: a run that overfits, and the advice kept across a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig


@pytest.fixture(scope="module")
def learning_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its (tied) embedding 20x larger: the conftest model's logits are
    nearly uniform (loss ln 512 whatever it learns), this one can memorize, and so overfit."""
    import shutil

    import mlx.core as mx

    out = tmp_path_factory.mktemp("learning_model") / "m"
    shutil.copytree(tiny_model_dir, out)
    weights = mx.load(str(out / "model.safetensors"))
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"] * 20.0
    mx.save_safetensors(str(out / "model.safetensors"), weights)
    return out


@pytest.fixture(scope="module")
def two_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two training examples (memorized in a few steps) and eight others to validate on."""
    from mlxtui.demo_data import demo_data_dir

    data = tmp_path_factory.mktemp("two_examples")
    lines = (demo_data_dir() / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (data / "valid.jsonl").write_text("\n".join(lines[20:28]) + "\n")
    return data


def _config(model: Path, data: Path, runs: Path, **kw) -> TrainConfig:
    values = dict(
        model=str(model), data=str(data), runs_dir=str(runs), fine_tune_type="full", num_layers=4,
        iters=30, batch_size=2, max_seq_length=64, learning_rate=1e-2, steps_per_report=5,
        steps_per_eval=5, save_every=100, sample_prompts=0, memory_guard="off",
    )  # fmt: skip
    return TrainConfig(**(values | kw))


def _train(cfg: TrainConfig, stop_after: int | None = None) -> tuple[object, list[ev.Event]]:
    """Run; with stop_after, press stop once step `stop_after` is done."""
    from mlxtui import TrainPipeline

    seen: list[ev.Event] = []

    def on_event(e: ev.Event) -> None:
        seen.append(e)
        if stop_after is not None and isinstance(e, ev.TrainStep) and e.iteration == stop_after:
            pipeline.stop()

    pipeline = TrainPipeline(cfg, on_event=on_event)
    return pipeline.execute(), seen


def _advice(seen: list[ev.Event]) -> list[ev.Diagnosis]:
    """The advice this part of the run gave (not the earlier advice a resume shows again)."""
    return [e for e in seen if isinstance(e, ev.Diagnosis) and not e.earlier]


def _earlier(seen: list[ev.Event]) -> list[ev.Diagnosis]:
    return [e for e in seen if isinstance(e, ev.Diagnosis) and e.earlier]


@pytest.fixture(scope="module")
def straight_run(learning_model, two_examples, tmp_path_factory) -> tuple[object, list[ev.Event]]:
    """The run of 30 steps without a stop, shared by both tests."""
    return _train(_config(learning_model, two_examples, tmp_path_factory.mktemp("straight")))


def test_a_run_that_overfits_is_told_the_best_step(straight_run):
    """Two examples, 30 steps: the training loss falls all the way while validation turns and
    rises; the advice comes once, when it has risen twice, naming the best checkpoint."""
    result, seen = straight_run
    vals = [(e.iteration, e.val_loss) for e in seen if isinstance(e, ev.ValReport)]
    reports = [e.train_loss for e in seen if isinstance(e, ev.TrainReport)]
    assert reports[-1] < reports[0] / 2, reports  # training fell
    best_it, best_loss = min(vals, key=lambda v: v[1])
    assert 0 < best_it < 30 and vals[-1][1] > best_loss, vals  # validation turned and rose
    advice = _advice(seen)
    assert [a.kind for a in advice] == ["overfitting"], [a.message for a in advice]
    over = advice[0]
    at = [it for it, _ in vals].index(over.iteration)
    assert vals[at][1] > vals[at - 1][1] > vals[at - 2][1]  # two rises in a row, said at the second
    assert over.numbers["best_iteration"] == best_it and over.numbers["best_val_loss"] == pytest.approx(best_loss)
    assert f"best checkpoint is step {best_it}" in over.message and f"--iters {best_it}" in over.message
    assert (Path(result.run_dir) / "adapters" / "best_adapters.safetensors").is_file()
    lines = [json.loads(x) for x in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines if x["event"] == "diagnosis"] == ["overfitting"]


def test_a_resumed_run_remembers_the_losses_and_what_was_said(straight_run, learning_model, two_examples, tmp_path):
    """Stopped between the two rises, resumed: the advice comes in the resumed part, from losses
    seen before the stop. Stopped again after it, resumed: it is not said a second time."""
    _, straight = straight_run
    said = _advice(straight)[0]
    first_rise = said.iteration - 5
    runs = tmp_path / "runs"
    first, seen1 = _train(_config(learning_model, two_examples, runs), stop_after=first_rise + 1)
    assert first.status == "stopped" and _advice(seen1) == []
    resume = dict(resume_run=str(first.run_dir))
    second, seen2 = _train(_config(learning_model, two_examples, runs, **resume), stop_after=said.iteration + 1)
    assert [(a.kind, a.iteration) for a in _advice(seen2)] == [("overfitting", said.iteration)]
    # the same validation figures (the train mean differs: the stop made a report of step 21)
    again = {k: v for k, v in _advice(seen2)[0].numbers.items() if k != "train_loss"}
    assert again == pytest.approx({k: said.numbers[k] for k in again}, rel=1e-4)
    state = json.loads((Path(first.run_dir) / "state" / "state.json").read_text())
    assert state["diagnosis"]["given"] == ["overfitting"]
    third, seen3 = _train(_config(learning_model, two_examples, runs, **resume))
    assert third.status == "completed"
    vals = [e.val_loss for e in seen3 if isinstance(e, ev.ValReport)]
    # still overfit (above the best); whether it rises further after the stop depends on float
    # details (it fell back a little once the packing/width changes came in), so the check of
    # "not said twice" rests on the state's `given` above and on no advice here
    assert vals and vals[-1] > said.numbers["best_val_loss"]
    assert _advice(seen3) == []
    # ... but the advice of the part before the stop is shown again, right after the start
    earlier = _earlier(seen3)
    assert [(a.kind, a.iteration) for a in earlier] == [("overfitting", said.iteration)]
    assert earlier[0].message == _advice(seen2)[0].message
    started = next(i for i, e in enumerate(seen3) if isinstance(e, ev.TrainStarted))
    assert seen3.index(earlier[0]) == started + 1
    assert _earlier(seen2) == [], "nothing was said before the first resume"
    lines = [json.loads(x) for x in (Path(first.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines if x["event"] == "diagnosis"] == ["overfitting"], "written once"
