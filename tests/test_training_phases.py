"""Phases, progress and the stop: real MLX on the tiny model.

Every long stretch of a run reports PhaseStarted / PhaseProgress k of n / PhaseFinished; a stop
saves the adapter at the next safe point (step boundary, evaluation batch, generated token)
before anything else, and no validation runs after it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Evaluate, Train

NOISE = (ev.MemorySampled, ev.JobProgress, ev.Log, ev.PhaseProgress, ev.PhaseStarted, ev.PhaseFinished)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 training examples; all 30 validation examples (8 batches of 4: a slow-ish validation)."""
    return demo_slice(tmp_path_factory.mktemp("phase_data"), train=48, valid=30, test=8)


def config(model: Path, data: Path, runs: Path, **kw: Any) -> TrainConfig:
    values: dict[str, Any] = dict(
        model=str(model), data=str(data), runs_dir=str(runs), num_layers=2, batch_size=4,
        iters=12, learning_rate=1e-3, steps_per_report=4, steps_per_eval=6, save_every=100,
        val_batches=-1, max_seq_length=256, sample_prompts=0, memory_guard="off",
    )  # fmt: skip
    values.update(kw)
    return TrainConfig().with_values(**values)


class Recorder:
    """Collects events; `react(engine, event)` runs on the engine thread as each arrives."""

    def __init__(self, react: Any = None) -> None:
        self.events: list[ev.Event] = []
        self.react = react
        self.engine: Engine | None = None

    def __call__(self, e: ev.Event) -> None:
        self.events.append(e)
        if self.react is not None:
            self.react(self.engine, e)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def phases(self, cls: type, phase: str) -> list[Any]:
        return [e for e in self.of(cls) if e.phase == phase]


def train(cfg: TrainConfig, rec: Recorder) -> Any:
    engine = Engine(rec)
    rec.engine = engine
    engine.start()
    try:
        return engine.run_sync(Train(cfg), timeout=600)
    finally:
        engine.shutdown()


def stop_on(predicate: Any) -> Any:
    fired: list[bool] = []

    def react(engine: Engine, e: ev.Event) -> None:
        if not fired and predicate(e):
            fired.append(True)
            engine.stop()

    return react


def is_validation_progress(e: ev.Event, step: int | None = None) -> bool:
    return isinstance(e, ev.PhaseProgress) and e.phase == "validate" and e.done == 1


def test_a_validation_reports_batch_k_of_n_and_metrics_record_phase_durations(
    tiny_model_dir, data, tmp_path
):
    rec = Recorder()
    result = train(config(tiny_model_dir, data, tmp_path, iters=6), rec)
    assert result.status == "completed"
    started = rec.phases(ev.PhaseStarted, "validate")
    assert [s.total for s in started] == [7, 7]  # step 0 and step 6: 30 examples, batches of 4
    assert all(s.kind == "train" and s.label == "validation" for s in started)
    first = [p.done for p in rec.phases(ev.PhaseProgress, "validate")][:7]
    assert first == [1, 2, 3, 4, 5, 6, 7]
    finished = rec.phases(ev.PhaseFinished, "validate")
    assert [f.outcome for f in finished] == ["done", "done"] and all(f.seconds > 0 for f in finished)
    # the model load and the tokenizing are phases of the same job
    assert {"validate_data", "load", "tokenize", "save"} <= {e.phase for e in rec.of(ev.PhaseFinished)}
    metrics = [json.loads(line) for line in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    phases = [m for m in metrics if m["event"] == "phase"]
    assert {"load", "tokenize", "validate", "save"} <= {m["phase"] for m in phases}
    assert all(m["seconds"] >= 0 and m["outcome"] == "done" for m in phases)
    assert metrics[0]["event"] == "phase"  # what came before the run folder existed is kept
    assert metrics[-1]["event"] == "finished" and metrics[-1]["status"] == "completed"


def test_a_stop_during_the_first_validation_saves_the_adapter_and_validates_nothing_more(
    tiny_model_dir, data, tmp_path
):
    rec = Recorder(stop_on(is_validation_progress))
    result = train(config(tiny_model_dir, data, tmp_path, iters=50), rec)
    assert result.status == "stopped" and result.final_iteration == 0
    adapters = Path(result.adapter_path)
    assert (adapters / "adapters.safetensors").is_file()
    state = json.loads((Path(result.run_dir) / "state" / "state.json").read_text())
    assert state["status"] == "stopped" and state["iteration"] == 0
    assert rec.of(ev.ValReport) == []
    assert [f.outcome for f in rec.phases(ev.PhaseFinished, "validate")] == ["stopped"]
    # interrupted after its first batch of 8, not run to the end
    assert [p.done for p in rec.phases(ev.PhaseProgress, "validate")] == [1]
    assert rec.of(ev.TrainStep) == []
    assert [c.kind for c in rec.of(ev.CheckpointSaved)] == ["stop"]
    assert rec.of(ev.TrainFinished)[0].status == "stopped"


def test_a_stop_during_a_later_validation_keeps_the_steps_done(tiny_model_dir, data, tmp_path):
    rec = Recorder(
        stop_on(lambda e: is_validation_progress(e) and any(isinstance(x, ev.TrainStep) for x in rec.events))
    )
    result = train(config(tiny_model_dir, data, tmp_path, iters=50), rec)
    assert result.status == "stopped" and result.final_iteration == 6
    assert [v.iteration for v in rec.of(ev.ValReport)] == [0]
    saved = rec.of(ev.CheckpointSaved)
    assert [(c.kind, c.iteration) for c in saved] == [("stop", 6)]
    state = json.loads((Path(result.run_dir) / "state" / "state.json").read_text())
    assert state["iteration"] == 6


def test_a_stop_during_a_step_saves_first_and_runs_no_final_validation_nor_test(
    tiny_model_dir, data, tmp_path
):
    rec = Recorder(stop_on(lambda e: isinstance(e, ev.TrainStep) and e.iteration == 3))
    result = train(config(tiny_model_dir, data, tmp_path, iters=50, test=True), rec)
    assert result.status == "stopped" and result.final_iteration == 3
    assert [v.iteration for v in rec.of(ev.ValReport)] == [0]  # none at the stop
    assert not rec.phases(ev.PhaseStarted, "test") and result.test_loss is None
    finished = rec.of(ev.TrainFinished)[0]
    assert "test evaluation was skipped" in finished.message and "mlxtui eval" in finished.message
    # the first thing after step 3's report is the stop's save
    after = rec.events[rec.events.index(rec.of(ev.TrainStep)[-1]) + 1 :]
    first = [e for e in after if not isinstance(e, NOISE)][0]
    assert isinstance(first, ev.CheckpointSaved) and first.kind == "stop" and first.iteration == 3
    starts = [e.phase for e in after if isinstance(e, ev.PhaseStarted)]
    assert starts == ["save"]


def test_a_stop_during_the_sample_answers_interrupts_them_between_tokens(
    tiny_model_dir, data, tmp_path
):
    rec = Recorder(stop_on(lambda e: isinstance(e, ev.PhaseStarted) and e.phase == "samples"))
    result = train(config(tiny_model_dir, data, tmp_path, iters=50, sample_prompts=3), rec)
    assert result.status == "stopped" and result.final_iteration == 0
    assert [v.iteration for v in rec.of(ev.ValReport)] == [0]  # the validation itself finished
    assert rec.of(ev.SamplePredictions) == []
    assert rec.phases(ev.PhaseProgress, "samples") == []  # not even the first answer completed
    assert [f.outcome for f in rec.phases(ev.PhaseFinished, "samples")] == ["stopped"]
    assert (Path(result.adapter_path) / "adapters.safetensors").is_file()


def test_sample_answers_report_k_of_n(tiny_model_dir, data, tmp_path):
    rec = Recorder()
    train(config(tiny_model_dir, data, tmp_path, iters=2, steps_per_eval=100, sample_prompts=2), rec)
    assert [p.done for p in rec.phases(ev.PhaseProgress, "samples")] == [1, 2, 1, 2]
    assert len(rec.of(ev.SamplePredictions)) == 2


def test_pause_acts_between_validation_batches_and_the_run_stays_exact(tiny_model_dir, data, tmp_path):
    straight = Recorder()
    train(config(tiny_model_dir, data, tmp_path / "a", iters=6), straight)
    fired: list[bool] = []

    def react(engine: Engine, e: ev.Event) -> None:
        if not fired and isinstance(e, ev.PhaseProgress) and e.phase == "validate" and e.done == 3:
            fired.append(True)
            engine.pause()
        if isinstance(e, ev.TrainPaused):
            threading.Timer(0.3, engine.resume).start()

    paused = Recorder(react)
    result = train(config(tiny_model_dir, data, tmp_path / "b", iters=6), paused)
    assert result.status == "completed"
    assert [(p.iteration, p.reason) for p in paused.of(ev.TrainPaused)] == [(0, "user")]
    # the pause came between batches 3 and 4 of the first validation, before the steps
    order = [e for e in paused.events if isinstance(e, ev.TrainPaused | ev.PhaseProgress | ev.TrainStep)]
    i = order.index(paused.of(ev.TrainPaused)[0])
    assert isinstance(order[i - 1], ev.PhaseProgress) and order[i - 1].done == 3
    assert isinstance(order[i + 1], ev.PhaseProgress) and order[i + 1].done == 4
    for a, b in zip(straight.of(ev.ValReport), paused.of(ev.ValReport), strict=True):
        assert a.iteration == b.iteration and abs(a.val_loss - b.val_loss) < 1e-6
    for a, b in zip(straight.of(ev.TrainStep), paused.of(ev.TrainStep), strict=True):
        assert abs(a.loss - b.loss) < 1e-6


def test_evaluate_job_reports_phases_and_esc_stops_it_between_batches(tiny_model_dir, data, tmp_path):
    rec = Recorder()
    engine = Engine(rec)
    rec.engine = engine
    engine.start()
    try:
        engine.run_sync(Train(config(tiny_model_dir, data, tmp_path, iters=2, steps_per_eval=100)))
        rec.events.clear()
        engine.run_sync(Evaluate(data=str(data), n=2, max_tokens=3))
        labels = [(e.label, e.total) for e in rec.phases(ev.PhaseStarted, "evaluate")]
        assert labels == [
            ("test loss of the base", 2), ("test loss of the adapter", 2),
            ("base answers", 2), ("adapter answers", 2),
        ]  # fmt: skip
        assert [p.done for p in rec.phases(ev.PhaseProgress, "evaluate")] == [1, 2] * 4

        rec.events.clear()
        rec.react = lambda engine, e: (
            engine.cancel_generation() if isinstance(e, ev.PhaseProgress) and e.phase == "evaluate" else None
        )
        from mlxtui.core.engine import EngineError

        with pytest.raises(EngineError, match="evaluation stopped"):
            engine.run_sync(Evaluate(data=str(data), n=2, max_tokens=3))
        assert [p.done for p in rec.phases(ev.PhaseProgress, "evaluate")] == [1]
        assert [f.outcome for f in rec.phases(ev.PhaseFinished, "evaluate")] == ["stopped"]
    finally:
        engine.shutdown()


def test_a_stop_while_loading_ends_the_job_before_a_run_folder_is_made(tiny_model_dir, data, tmp_path):
    from mlxtui.core.engine import EngineError

    rec = Recorder(stop_on(lambda e: isinstance(e, ev.PhaseStarted) and e.phase == "tokenize"))
    with pytest.raises(EngineError, match="training stopped before it began"):
        train(config(tiny_model_dir, data, tmp_path / "runs"), rec)
    assert [f.outcome for f in rec.phases(ev.PhaseFinished, "tokenize")] == ["done"]
    assert rec.phases(ev.PhaseStarted, "estimate") == [] and rec.of(ev.TrainStarted) == []
    assert not (tmp_path / "runs").exists()


def test_the_model_is_freed_when_the_engine_shuts_down_without_waiting_for_the_gc(
    tiny_model_dir, data, tmp_path
):
    # A reference cycle through the run (its reporter, its safe point) would keep the model,
    # and all its memory, until the cycle collector happens to run.
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        engine = Engine(lambda e: None)
        engine.start()
        try:
            engine.run_sync(Train(config(tiny_model_dir, data, tmp_path, iters=2)), timeout=600)
            model = weakref.ref(engine.model)
        finally:
            engine.shutdown()
        del engine
        assert model() is None
    finally:
        gc.enable()
