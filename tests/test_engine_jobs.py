"""After training: chat with any checkpoint, A/B, evaluate, benchmark, fuse and export, all as engine jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import (
    Benchmark,
    Compare,
    Engine,
    EngineError,
    Evaluate,
    ExportGGUF,
    FreeModel,
    Fuse,
    Generate,
    Train,
    UseAdapter,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("data"), train=16, valid=4, test=4)


def test_jobs_after_training(tiny_model_dir, data, tmp_path):
    events: list[ev.Event] = []
    engine = Engine(events.append)
    engine.start()
    try:
        with pytest.raises(EngineError, match="no adapter"):
            engine.run_sync(Compare([{"role": "user", "content": "hi"}]))
        base_cfg = TrainConfig().with_values(
            model=str(tiny_model_dir), data=str(data), runs_dir=str(tmp_path / "runs"), num_layers=2,
            iters=4, save_every=2, steps_per_eval=2, val_batches=1, learning_rate=5e-2, memory_guard="off",
        )
        first = engine.run_sync(Train(base_cfg.with_values(lora_parameters={"rank": 4, "scale": 20.0, "dropout": 0.0})))
        second = engine.run_sync(Train(base_cfg))
        msgs = [{"role": "user", "content": "What does E3 mean?"}]

        ab = engine.run_sync(Compare(msgs, max_tokens=6))
        assert ab["A"]["slot"] == "A" and ab["B"]["slot"] == "B"
        assert {e.slot for e in events if isinstance(e, ev.GenerationToken)} >= {"A", "B"}

        # any checkpoint of any run, in place; a different layout (rank 4) reloads the base
        ckpt = Path(second.adapter_path) / "0000002_adapters.safetensors"
        out = engine.run_sync(Generate(msgs, temperature=0.0, max_tokens=6, weights=str(ckpt)))
        assert out["generation_tokens"] > 0
        other = Path(first.adapter_path) / "adapters.safetensors"
        engine.run_sync(Generate(msgs, temperature=0.0, max_tokens=6, weights=str(other)))
        assert any(isinstance(e, ev.Log) and "reloading the base" in e.message for e in events)
        with pytest.raises(EngineError, match="no adapter at"):
            engine.run_sync(Generate(msgs, weights=str(tmp_path / "missing.safetensors")))

        result = engine.run_sync(Evaluate(data=str(data), n=2, max_tokens=4))
        assert set(result["losses"]) == {"base", "adapter"}
        assert len(result["report"].rows) == 2
        assert 0.0 <= result["report"].adapter_mean <= 1.0

        bench = engine.run_sync(Benchmark(runs=2, max_tokens=4))
        assert bench["base"].runs == 2 and bench["adapter"].gen_tps_mean > 0

        fused = engine.run_sync(Fuse(save_path=str(tmp_path / "fused"), adapter_path=str(second.adapter_path)))
        assert (Path(fused) / "config.json").is_file()
        # with no path given, the checkpoint the chat uses now is the one fused
        chat = engine.run_sync(Generate(msgs, temperature=0.0, max_tokens=8, weights=str(ckpt)))
        fused_ckpt = engine.run_sync(Fuse(save_path=str(tmp_path / "fused_ckpt")))
        assert any(isinstance(e, ev.JobProgress) and e.kind == "fuse" for e in events)
        from mlx_lm import load

        from mlxtui.core.generation import generate_reply

        model, tok = load(fused_ckpt)
        text, _ = generate_reply(model, tok, msgs, temperature=0.0, max_tokens=8)
        assert text == chat["text"]
        gguf = engine.run_sync(ExportGGUF(out_file=str(tmp_path / "m.gguf"), adapter_path=str(second.adapter_path)))
        assert Path(gguf).stat().st_size > 0
    finally:
        engine.shutdown()


def test_esc_cancels_a_reply_queued_behind_training(tiny_model_dir, data, tmp_path):
    events: list[ev.Event] = []
    engine = Engine(events.append)
    engine.start()
    try:
        cfg = TrainConfig().with_values(
            model=str(tiny_model_dir), data=str(data), runs_dir=str(tmp_path), num_layers=2, iters=12,
            steps_per_eval=100, val_batches=1, memory_guard="off",
        )
        train_id = engine.submit(Train(cfg))
        gen = Generate([{"role": "user", "content": "hi"}], max_tokens=20)
        engine.submit(gen)
        engine.cancel_generation()  # esc while the answer is still queued
        done = engine.run_sync(Generate([{"role": "user", "content": "hi"}], temperature=0.0, max_tokens=3))
    finally:
        engine.shutdown()
    assert any(isinstance(e, ev.JobFinished) and e.job_id == train_id for e in events)
    stopped = [e for e in events if isinstance(e, ev.GenerationDone) and e.request_id == id(gen)]
    assert stopped and stopped[0].stopped and stopped[0].text == ""
    assert done["generation_tokens"] > 0  # a later question is answered normally


def test_a_freed_model_comes_back_with_its_adapter_for_chat_and_evaluation(tiny_model_dir, data, tmp_path):
    """FreeModel (the dashboard's copy while ranks train elsewhere): the slot lets go, and the
    next chat or evaluation loads the same base and the run's adapter again."""
    events: list[ev.Event] = []
    engine = Engine(events.append)
    engine.start()
    try:
        assert engine.run_sync(FreeModel()) is False  # nothing loaded yet: nothing said
        cfg = TrainConfig().with_values(
            model=str(tiny_model_dir), data=str(data), runs_dir=str(tmp_path / "runs"), num_layers=2,
            iters=2, save_every=2, steps_per_eval=2, val_batches=1, learning_rate=5e-2, memory_guard="off",
        )  # fmt: skip
        run = engine.run_sync(Train(cfg))
        msgs = [{"role": "user", "content": "What does E3 mean?"}]
        before = engine.run_sync(Generate(msgs, temperature=0.0, max_tokens=6))

        assert engine.run_sync(FreeModel()) is True
        assert engine.slot.model is None and engine.slot.tokenizer is None
        assert any(isinstance(e, ev.Log) and "freed" in e.message for e in events)
        loads = sum(isinstance(e, ev.ModelLoaded) for e in events)

        after = engine.run_sync(Generate(msgs, temperature=0.0, max_tokens=6))
        assert sum(isinstance(e, ev.ModelLoaded) for e in events) == loads + 1
        loaded = [e for e in events if isinstance(e, ev.ModelLoaded)][-1]
        assert loaded.adapter == str(run.adapter_path)
        assert after["text"] == before["text"]  # the same weights: the same greedy answer

        engine.run_sync(FreeModel())
        result = engine.run_sync(Evaluate(data=str(data), n=1, max_tokens=4))
        assert set(result["losses"]) == {"base", "adapter"}

        # a run across ranks saved an adapter while the slot was freed: it is only recorded,
        # and the next answer (here an A/B) loads the model with it
        engine.run_sync(FreeModel())
        engine.slot.adapter_path = None
        with pytest.raises(EngineError, match="no adapter weights"):
            engine.run_sync(UseAdapter(str(tmp_path / "nowhere")))
        assert engine.run_sync(UseAdapter(str(run.adapter_path))) == str(run.adapter_path)
        assert engine.slot.model is None and engine.slot.adapter_path == str(run.adapter_path)
        ab = engine.run_sync(Compare(msgs, temperature=0.0, max_tokens=6))
        assert ab["B"]["text"] == before["text"]  # B: the adapter's greedy answer, as before
        # with the model loaded, the adapter is loaded in place
        assert engine.run_sync(UseAdapter(str(run.adapter_path))) == str(run.adapter_path)
    finally:
        engine.shutdown()
