"""The real demo model (SmolLM2-135M-Instruct) trains on the demo dataset through the engine."""

from __future__ import annotations

from pathlib import Path

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Generate, Train


def test_twenty_lora_steps_on_the_demo_lower_the_loss_and_the_chat_uses_the_adapter(demo_model_dir, tmp_path):
    events: list[ev.Event] = []
    engine = Engine(events.append)
    engine.start()
    try:
        cfg = TrainConfig.quick_start(
            iters=20,
            steps_per_eval=20,
            val_batches=1,
            num_layers=4,
            max_seq_length=256,
            sample_prompts=0,
            runs_dir=str(tmp_path / "runs"),
        )
        result = engine.run_sync(Train(cfg), timeout=1200)
        assert result.status == "completed"
        losses = [e.loss for e in events if isinstance(e, ev.TrainStep)]
        assert len(losses) == 20
        assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
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
