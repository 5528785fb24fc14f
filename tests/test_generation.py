"""Chat streaming, adapter on/off and adapter switching on the tiny model and the demo model."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import pytest
from demo_slice import demo_slice
from mlx.utils import tree_flatten
from mlx_lm import load as mlx_load

from mlxtui.core.generation import (
    WeightsChoice,
    adapter_disabled,
    adapter_enabled,
    adapter_scales,
    ensure_adapter_layers,
    fold_system,
    generate_reply,
    load_adapter_file,
    read_adapter_config,
    render_prompt,
    select_weights,
    set_adapter_enabled,
    stream_reply,
)

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def make_adapter(
    model_dir: Path,
    adapter_dir: Path,
    *,
    rank: int = 8,
    num_layers: int = 2,
    fine_tune_type: str = "lora",
    seeds: tuple[int, ...] = (1,),
    std: float = 0.05,
    names: tuple[str, ...] = ("adapters.safetensors",),
) -> Path:
    """An adapter folder as the trainer leaves it, with random non-zero weights (one file per name).

    LoRA's lora_b starts at zero, so an untrained adapter changes nothing: fill it with noise.
    """
    from mlx_lm.tuner.utils import linear_to_lora_layers

    adapter_dir.mkdir(parents=True, exist_ok=True)
    lora = {"rank": rank, "scale": 20.0, "dropout": 0.0}
    for seed, name in zip(seeds, names, strict=True):
        model, _ = mlx_load(str(model_dir))
        model.freeze()
        mx.random.seed(seed)
        if fine_tune_type == "full":
            for layer in model.layers[-num_layers:]:
                layer.unfreeze()
            params = dict(tree_flatten(model.trainable_parameters()))
            weights = {
                k: v + std * mx.random.normal(v.shape).astype(v.dtype) for k, v in params.items()
            }
        else:
            linear_to_lora_layers(model, num_layers, lora, use_dora=fine_tune_type == "dora")
            params = dict(tree_flatten(model.trainable_parameters()))
            weights = {}
            for k, v in params.items():
                leaf = k.rsplit(".", 1)[-1]
                if leaf == "lora_b":
                    v = std * mx.random.normal(v.shape).astype(v.dtype)
                elif leaf == "m":
                    v = v * (1 + 0.2 * mx.random.uniform(shape=v.shape))
                weights[k] = v
        mx.save_safetensors(str(adapter_dir / name), weights)
    config = {
        "model": str(model_dir),
        "fine_tune_type": fine_tune_type,
        "num_layers": num_layers,
        "lora_parameters": lora,
    }
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    return adapter_dir


def greedy(model, tokenizer, messages=QUESTION, max_tokens=12) -> str:
    return generate_reply(model, tokenizer, messages, temperature=0.0, max_tokens=max_tokens)[0]


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's adapters/ folder: final, best and a periodic checkpoint, all different."""
    return make_adapter(
        tiny_model_dir,
        tmp_path_factory.mktemp("run") / "adapters",
        seeds=(1, 2, 3),
        names=("adapters.safetensors", "best_adapters.safetensors", "0000010_adapters.safetensors"),
    )


@pytest.fixture(scope="module")
def tiny_base_answer(tiny_model_dir: Path) -> str:
    model, tok = mlx_load(str(tiny_model_dir))
    return greedy(model, tok)


# ------------------------------------------------------------------ streaming


def test_stream_reply_chunks_and_stats(tiny_model_dir: Path) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    chunks = list(stream_reply(model, tok, QUESTION, temperature=0.0, max_tokens=8))
    assert chunks, "no chunks"
    assert all(c.finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length")
    assert 0 < last.generation_tokens <= 8
    assert last.prompt_tokens == len(render_prompt(tok, QUESTION))
    assert last.prompt_tps > 0 and last.generation_tps > 0 and last.peak_memory > 0
    # greedy is deterministic; sampling with a seed is reproducible
    assert greedy(model, tok, max_tokens=8) == "".join(c.text for c in chunks)
    a = generate_reply(model, tok, QUESTION, temperature=1.0, seed=7, max_tokens=8)[0]
    b = generate_reply(model, tok, QUESTION, temperature=1.0, seed=7, max_tokens=8)[0]
    assert a == b


def test_stream_reply_stops_when_asked(tiny_model_dir: Path) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    seen = []
    chunks = []
    for c in stream_reply(
        model, tok, QUESTION, temperature=0.0, max_tokens=50, should_stop=lambda: len(seen) >= 3
    ):
        seen.append(c)
        chunks.append(c)
    assert chunks[-1].finish_reason == "stopped"
    assert len(chunks) == 4
    assert chunks[-1].generation_tokens == 4
    stopped_at_once = list(stream_reply(model, tok, QUESTION, should_stop=lambda: True))
    assert [c.finish_reason for c in stopped_at_once] == ["stopped"]


def test_system_prompt_rendered_or_folded(tiny_model_dir: Path) -> None:
    _, tok = mlx_load(str(tiny_model_dir))
    msgs = [{"role": "system", "content": "Be brief."}, *QUESTION]
    text = tok.decode(render_prompt(tok, msgs))
    assert "<|im_start|>system\nBe brief." in text
    assert text.endswith("<|im_start|>assistant\n")
    # A template without a system role: the system text goes in front of the first user turn.
    tok._tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    text = tok.decode(render_prompt(tok, msgs))
    assert "system" not in text
    assert "<|im_start|>user\nBe brief.\n\nWhat is the capital of France?" in text
    assert fold_system([{"role": "system", "content": "S"}]) == [{"role": "user", "content": "S"}]


# ------------------------------------------------------------------ adapter on/off and switching


def test_adapter_on_off_equals_fresh_base(
    tiny_model_dir: Path, tiny_run: Path, tiny_base_answer: str
) -> None:
    model, tok = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_run))
    adapted = greedy(model, tok)
    assert adapted != tiny_base_answer, (
        "a random non-trivial adapter should change the greedy answer"
    )
    scales = [s for _, s in adapter_scales(model)]
    assert scales and all(s == 20.0 for s in scales)
    with adapter_disabled(model):
        assert not adapter_enabled(model)
        assert all(m.scale == 0.0 for m, _ in adapter_scales(model))
        assert greedy(model, tok) == tiny_base_answer
    assert adapter_enabled(model)
    assert greedy(model, tok) == adapted
    # switching off twice and on twice is harmless
    set_adapter_enabled(model, False)
    set_adapter_enabled(model, False)
    assert [s for _, s in adapter_scales(model)] == scales
    set_adapter_enabled(model, True)
    set_adapter_enabled(model, True)
    assert greedy(model, tok) == adapted


def test_switch_between_checkpoints_without_reload(
    tiny_model_dir: Path, tiny_run: Path, tiny_base_answer: str
) -> None:
    model, tok = mlx_load(str(tiny_model_dir))
    assert select_weights(model, "base") is None
    assert greedy(model, tok) == tiny_base_answer
    with pytest.raises(ValueError, match="no adapter is loaded"):
        select_weights(model, "adapter")

    answers = {}
    for name in (
        "adapters.safetensors",
        "best_adapters.safetensors",
        "0000010_adapters.safetensors",
    ):
        cfg = select_weights(model, WeightsChoice.parse(str(tiny_run / name)))
        assert cfg is not None and cfg["lora_parameters"]["rank"] == 8
        answers[name] = greedy(model, tok)
    assert len(set(answers.values())) == 3, answers
    # the final adapter loaded in place equals mlx-lm's own load of the same folder
    select_weights(model, str(tiny_run / "adapters.safetensors"))
    fresh, _ = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_run))
    assert greedy(model, tok) == greedy(fresh, tok) == answers["adapters.safetensors"]
    # base, then "adapter" brings back the last loaded file; a folder means its adapters.safetensors
    select_weights(model, "base")
    assert greedy(model, tok) == tiny_base_answer
    select_weights(model, "adapter")
    assert greedy(model, tok) == answers["adapters.safetensors"]
    select_weights(model, "base")
    load_adapter_file(model, tiny_run / "0000010_adapters.safetensors")  # loading turns it back on
    assert greedy(model, tok) == answers["0000010_adapters.safetensors"]


def test_other_layout_is_refused_clearly(
    tiny_model_dir: Path, tiny_run: Path, tmp_path: Path
) -> None:
    model, _ = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_run))
    other = make_adapter(tiny_model_dir, tmp_path / "r4", rank=4)
    with pytest.raises(ValueError, match=r"rank 4 \(loaded: 8\).*reload the base"):
        load_adapter_file(model, other / "adapters.safetensors")
    with pytest.raises(ValueError, match=r"num_layers 3 \(loaded: 2\)"):
        ensure_adapter_layers(
            model,
            {
                "fine_tune_type": "lora",
                "num_layers": 3,
                "lora_parameters": {"rank": 8, "scale": 20.0},
            },
        )
    with pytest.raises(ValueError, match="type dora"):
        ensure_adapter_layers(
            model,
            {
                "fine_tune_type": "dora",
                "num_layers": 2,
                "lora_parameters": {"rank": 8, "scale": 20.0},
            },
        )
    # a file whose tensors do not match its config (here: another model's shapes) is refused too
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text((tiny_run / "adapter_config.json").read_text())
    mx.save_safetensors(
        str(bad / "adapters.safetensors"),
        {"model.layers.3.self_attn.q_proj.lora_a": mx.zeros((3, 8))},
    )
    with pytest.raises(ValueError, match="does not fit the model"):
        load_adapter_file(model, bad)
    with pytest.raises(FileNotFoundError, match="no adapter weights"):
        load_adapter_file(model, tmp_path / "nope" / "adapters.safetensors")
    # a missing folder is named as missing, not as its parent lacking adapter_config.json
    with pytest.raises(FileNotFoundError, match=r"no adapter at .*nope.*mlxtui runs"):
        read_adapter_config(tmp_path / "nope")
    (tmp_path / "lonely").mkdir()
    mx.save_safetensors(str(tmp_path / "lonely" / "x.safetensors"), {"a": mx.zeros((1,))})
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_adapter_file(model, tmp_path / "lonely" / "x.safetensors")


def test_dora_off_equals_base(tiny_model_dir: Path, tmp_path: Path, tiny_base_answer: str) -> None:
    ad = make_adapter(tiny_model_dir, tmp_path / "dora", fine_tune_type="dora")
    model, tok = mlx_load(str(tiny_model_dir))
    load_adapter_file(model, ad)
    adapted = greedy(model, tok)
    assert adapted != tiny_base_answer
    with adapter_disabled(model):
        assert greedy(model, tok) == tiny_base_answer
    assert greedy(model, tok) == adapted


def test_full_finetune_keeps_base(
    tiny_model_dir: Path, tmp_path: Path, tiny_base_answer: str
) -> None:
    ad = make_adapter(
        tiny_model_dir, tmp_path / "full", fine_tune_type="full", num_layers=2, std=0.2
    )
    model, tok = mlx_load(str(tiny_model_dir))
    select_weights(model, str(ad / "adapters.safetensors"))
    tuned = greedy(model, tok)
    assert tuned != tiny_base_answer
    select_weights(model, "base")
    assert greedy(model, tok) == tiny_base_answer
    select_weights(model, "adapter")
    assert greedy(model, tok) == tuned


# ------------------------------------------------------------------ the real demo model


@pytest.mark.slow
@pytest.mark.demo
def test_demo_model_chat_with_each_choice(demo_model_dir: Path, tmp_path: Path) -> None:
    from mlxtui.core.models import dequantize_model

    run = make_adapter(
        demo_model_dir,
        tmp_path / "run" / "adapters",
        num_layers=4,
        std=0.02,
        seeds=(1, 2, 3),
        names=("adapters.safetensors", "best_adapters.safetensors", "0000010_adapters.safetensors"),
    )
    model, tok = mlx_load(str(demo_model_dir))
    dequantize_model(model)  # quantized matmuls skip BLAS on CPU: keep the test short
    base = greedy(model, tok, max_tokens=8)
    assert "Paris" in base
    answers = {}
    for name in (
        "0000010_adapters.safetensors",
        "best_adapters.safetensors",
        "adapters.safetensors",
    ):
        select_weights(model, str(run / name))
        answers[name] = greedy(model, tok, max_tokens=6)
    assert len(set(answers.values())) == 3 and base[:20] not in answers.values()
    select_weights(model, "base")
    assert greedy(model, tok, max_tokens=8) == base
    select_weights(model, "adapter")  # the last loaded file: the final adapter
    with adapter_disabled(model):
        assert greedy(model, tok, max_tokens=8) == base
    assert greedy(model, tok, max_tokens=6) == answers["adapters.safetensors"]


# ------------------------------------------------------------------ a real run of the trainer


@pytest.mark.parametrize("fine_tune_type", ["lora", "full"])
def test_every_checkpoint_of_a_trained_run_loads_in_place(
    tiny_model_dir: Path, tmp_path: Path, tiny_base_answer: str, fine_tune_type: str
) -> None:
    from mlxtui.core.config import TrainConfig
    from mlxtui.core.engine import Engine, Train
    from mlxtui.core.runs import adapter_choices

    data = demo_slice(tmp_path / "data", train=16, valid=4)
    cfg = TrainConfig().with_values(
        model=str(tiny_model_dir), data=str(data), runs_dir=str(tmp_path / "runs"), fine_tune_type=fine_tune_type,
        num_layers=2, batch_size=4, iters=6, learning_rate=5e-3, steps_per_report=3, steps_per_eval=3,
        save_every=3, val_batches=1, max_seq_length=128, sample_prompts=0, memory_guard="off",
    )  # fmt: skip
    engine = Engine(lambda e: None)
    engine.start()
    try:
        engine.run_sync(Train(cfg), timeout=300)
    finally:
        engine.shutdown()
    choices = adapter_choices(tmp_path / "runs")
    labels = [label.rsplit(" ", 1)[-1] if "step" not in label else "step" for label, _ in choices]
    assert {"final", "best", "step"} <= set(labels), choices

    model, tok = mlx_load(str(tiny_model_dir))
    for _, path in choices:
        select_weights(model, WeightsChoice.parse(str(path)))
        greedy(model, tok, max_tokens=6)
    final = next(p for label, p in choices if label.endswith("final"))
    select_weights(model, str(final))
    fresh, _ = mlx_load(str(tiny_model_dir), adapter_path=str(final.parent))
    assert greedy(model, tok) == greedy(fresh, tok)
    select_weights(model, "base")
    assert greedy(model, tok) == tiny_base_answer
