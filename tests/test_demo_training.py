"""The real demo model (SmolLM2-135M-Instruct) trains on the demo dataset through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Generate, Train


def test_lora_steps_on_the_demo_lower_the_loss_and_the_chat_uses_the_adapter(demo_model_dir, tmp_path):
    """Six steps of 2 examples at a rate of 1e-3 (the demo's examples fit in 128 tokens): the
    loss falls from about 4.5 to about 2 (a step costs about 1 s on 2 CPU cores; twenty steps of
    4 at the quick start's rate took 112 s for the same check)."""
    events: list[ev.Event] = []
    engine = Engine(events.append)
    engine.start()
    try:
        cfg = TrainConfig.quick_start(
            iters=6,
            batch_size=2,
            learning_rate=1e-3,
            steps_per_eval=6,
            val_batches=1,
            num_layers=4,
            max_seq_length=128,
            sample_prompts=0,
            runs_dir=str(tmp_path / "runs"),
        )
        result = engine.run_sync(Train(cfg), timeout=1200)
        assert result.status == "completed"
        losses = [e.loss for e in events if isinstance(e, ev.TrainStep)]
        assert len(losses) == 6
        assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2
        vals = [e.val_loss for e in events if isinstance(e, ev.ValReport)]
        assert vals[-1] < vals[0]
        assert (Path(result.adapter_path) / "adapters.safetensors").is_file()
        # the chat answers with the adapter just trained, then with the base (adapter off)
        question = [{"role": "user", "content": "What does error E3 mean on my Lumo pot?"}]
        tuned = engine.run_sync(Generate(question, temperature=0.0, max_tokens=12, weights="adapter"))
        base = engine.run_sync(Generate(question, temperature=0.0, max_tokens=12, weights="base"))
        assert tuned["text"] and base["text"] and tuned["text"] != base["text"]
        assert any(isinstance(e, ev.GenerationToken) for e in events)
    finally:
        engine.shutdown()


@pytest.mark.slow
def test_a_learning_rate_far_too_high_gets_the_spike_advice(demo_model_dir, tmp_path):
    """The tiny test model cannot show this: its small tied embeddings bound the loss near
    ln(vocab), so a huge rate only flattens it. The real demo model's loss blows up."""
    events: list[ev.Event] = []
    engine = Engine(events.append)
    engine.start()
    try:
        cfg = TrainConfig.quick_start(
            iters=3,  # the spike is told at step 3
            batch_size=2,
            learning_rate=3e-2,
            steps_per_report=1,
            steps_per_eval=100,
            val_batches=1,
            num_layers=4,
            max_seq_length=128,
            sample_prompts=0,
            memory_guard="off",
            runs_dir=str(tmp_path / "runs"),
        )
        result = engine.run_sync(Train(cfg), timeout=1200)
    finally:
        engine.shutdown()
    advice = [e for e in events if isinstance(e, ev.Diagnosis)]
    assert [a.kind for a in advice] == ["spike"], [e.loss for e in events if isinstance(e, ev.TrainStep)]
    spike = advice[0]
    assert spike.numbers["ratio"] > 1.5
    assert spike.numbers["suggested_learning_rate"] == pytest.approx(1.5e-2)
    assert "halve the learning rate" in spike.message
    norms = [e.grad_norm for e in events if isinstance(e, ev.TrainStep)]
    assert all(n is not None and n > 0 for n in norms)
    lines = [json.loads(x) for x in (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines if x["event"] == "diagnosis"] == ["spike"]
