"""Tests of the tiny test models and of mlxtui.core.models."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx_lm


def test_tiny_model_loads_and_generates(tiny_model_dir):
    model, tok = mlx_lm.load(str(tiny_model_dir))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>"
    ids = tok.encode(prompt)
    assert tok.decode(ids) == prompt
    out = mlx_lm.generate(model, tok, prompt, max_tokens=5)
    assert isinstance(out, str)


def test_tiny_quant_model_is_quantized(tiny_quant_model_dir):
    model, _ = mlx_lm.load(str(tiny_quant_model_dir))
    kinds = {type(m) for _, m in model.named_modules()}
    assert nn.QuantizedLinear in kinds
    logits = model(mx.array([[1, 2, 3]]))
    assert logits.shape[-1] == model.args.vocab_size


# ---------------------------------------------------------------- GGUF import

import argparse  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402
from tiny_model import make_tiny_gguf, make_tiny_model  # noqa: E402

from mlxtui.cli.models import add_parser as add_models_parser  # noqa: E402
from mlxtui.core import models  # noqa: E402
from mlxtui.core.models import ModelError  # noqa: E402

PROMPT_IDS = mx.array([[1, 40, 41, 42, 43, 44, 100, 200, 300, 2]])


def _logits(model_dir) -> mx.array:
    model, _ = mlx_lm.load(str(model_dir))
    return model(PROMPT_IDS).astype(mx.float32)


def _rel_err(a: mx.array, b: mx.array) -> float:
    return float(mx.abs(a - b).max() / mx.abs(b).max())


@pytest.fixture(scope="module")
def reference_logits(tiny_model_dir):
    return _logits(tiny_model_dir)


def _roundtrip_logits(model_dir, qtype: str) -> mx.array:
    """Logits of the original model with each 2-D weight passed through GGML quantization."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    model, _ = mlx_lm.load(str(model_dir))
    qt = GGMLQuantizationType[qtype]
    updated = []
    for name, w in __import__("mlx.utils").utils.tree_flatten(model.parameters()):
        if w.ndim == 2:
            w = mx.array(dequantize(quantize(np.array(w), qt), qt).astype(np.float32))
        updated.append((name, w))
    model.load_weights(updated)
    return model(PROMPT_IDS).astype(mx.float32)


@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0", "Q4_0", "Q4_1"])
def test_import_gguf_matches_original(tiny_model_dir, tmp_path, reference_logits, qtype):
    gguf_file = make_tiny_gguf(tiny_model_dir, tmp_path / f"tiny.{qtype}.gguf", qtype=qtype)
    out = models.import_gguf(gguf_file, tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    assert config["rope_traditional"] is True
    assert config["tie_word_embeddings"] is True
    assert ("quantization" in config) == qtype.startswith("Q")
    imported = _logits(out)
    # Same weights after GGML rounding -> same logits (this also checks the Q/K un-permutation).
    expected = reference_logits if qtype == "F32" else _roundtrip_logits(tiny_model_dir, qtype)
    assert _rel_err(imported, expected) < 1e-3
    # And the quantized model still computes the same function, roughly.
    loose = {"F32": 1e-5, "F16": 2e-3, "Q8_0": 3e-2}.get(qtype, 0.5)
    assert _rel_err(imported, reference_logits) < loose


def test_import_gguf_tokenizer_matches_original(tiny_model_dir, tmp_path):
    out = models.import_gguf(make_tiny_gguf(tiny_model_dir, tmp_path / "t.gguf"), tmp_path / "o")
    _, original = mlx_lm.load(str(tiny_model_dir))
    _, imported = mlx_lm.load(str(out))
    messages = [{"role": "user", "content": "What is the capital of France? 123 ok"}]
    prompt = imported.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == original.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    for text in (prompt, "Hello, world!\n  The  quick fox.", "ünïcödé ✓"):
        assert imported.encode(text) == original.encode(text)
        assert imported.decode(imported.encode(text)) == text
    assert imported.eos_token == "<|im_end|>"


def test_import_gguf_mixed_types_get_per_module_config(tiny_model_dir, tmp_path, reference_logits):
    gguf_file = make_tiny_gguf(
        tiny_model_dir,
        tmp_path / "mixed.gguf",
        qtype="Q4_0",
        overrides={"token_embd.weight": "Q8_0", "blk.0.ffn_down.weight": "F16"},
    )
    out = models.import_gguf(gguf_file, tmp_path / "out")
    quant = json.loads((out / "config.json").read_text())["quantization"]
    assert quant["bits"] == 4 and quant["group_size"] == 32
    assert quant["model.embed_tokens"]["bits"] == 8
    assert quant["model.layers.0.mlp.down_proj"] is False
    model, _, info = models.load_model(str(out))
    assert isinstance(model.model.layers[0].mlp.down_proj, nn.Linear)
    assert model.model.embed_tokens.bits == 8
    assert info.quantization_bits == 4
    assert _rel_err(model(PROMPT_IDS).astype(mx.float32), reference_logits) < 0.5


def test_import_gguf_requantizes_k_quants(tmp_path):
    # Q6_K is written as zero blocks (the gguf package cannot quantize K types): this checks the
    # plumbing (6-bit MLX layer, loadable folder), not the values. K blocks hold 256 values.
    model_dir = make_tiny_model(tmp_path / "wide", num_layers=2, hidden=256)
    gguf_file = make_tiny_gguf(
        model_dir, tmp_path / "k.gguf", overrides={"blk.1.attn_v.weight": "Q6_K"}
    )
    out = models.import_gguf(gguf_file, tmp_path / "out")
    quant = json.loads((out / "config.json").read_text())["quantization"]
    assert quant["bits"] == 6
    assert quant["model.layers.0.self_attn.v_proj"] is False
    model, _ = mlx_lm.load(str(out))
    assert model.model.layers[1].self_attn.v_proj.bits == 6
    assert model(PROMPT_IDS).shape[-1] == model.args.vocab_size


def test_import_gguf_refuses_unsupported_architecture(tiny_model_dir, tmp_path):
    gguf_file = make_tiny_gguf(tiny_model_dir, tmp_path / "g.gguf", arch="gpt2")
    with pytest.raises(ModelError, match=r"architecture 'gpt2' is not supported; supported: llama"):
        models.import_gguf(gguf_file, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_import_gguf_refuses_unsupported_tensor_type(tiny_model_dir, tmp_path):
    gguf_file = make_tiny_gguf(
        tiny_model_dir, tmp_path / "q5.gguf", overrides={"blk.2.ffn_up.weight": "Q5_0"}
    )
    with pytest.raises(ModelError, match=r"blk\.2\.ffn_up\.weight is Q5_0.*Q4_0, Q4_1, Q8_0"):
        models.import_gguf(gguf_file, tmp_path / "out")


def test_import_gguf_refuses_non_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(ModelError, match="not a GGUF file"):
        models.import_gguf(bad, tmp_path / "out")


def test_import_gguf_never_overwrites_without_permission(tiny_model_dir, tmp_path):
    gguf_file = make_tiny_gguf(tiny_model_dir, tmp_path / "t.gguf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="already exists and is not empty.*allow replacing it") as refused:
        models.import_gguf(gguf_file, out)
    assert "--force" not in str(refused.value)  # the core names no flag: the CLI says --force
    assert (out / "notes.txt").read_text() == "mine"
    # --force replaces an earlier model, never a folder of other things (`import-gguf x.gguf .`)
    with pytest.raises(ModelError, match="not a model folder"):
        models.import_gguf(gguf_file, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ModelError, match="holds the GGUF file itself"):
        models.import_gguf(gguf_file, tmp_path, overwrite=True)
    assert gguf_file.is_file()
    with pytest.raises(ModelError, match="is a file"):
        models.import_gguf(gguf_file, out / "notes.txt", overwrite=True)
    models.import_gguf(gguf_file, tmp_path / "model")
    (tmp_path / "model" / "old.txt").write_text("stale")
    models.import_gguf(gguf_file, tmp_path / "model", overwrite=True)
    assert (tmp_path / "model" / "config.json").is_file()
    assert not (tmp_path / "model" / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_import_gguf_refuses_empty_file_and_folder(tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.gguf: not a GGUF file"):
        models.import_gguf(empty, tmp_path / "out")
    with pytest.raises(ModelError, match="is a folder"):
        models.import_gguf(tmp_path, tmp_path / "out")


def test_import_gguf_leaves_nothing_behind_on_failure(tiny_model_dir, tmp_path, monkeypatch):
    from mlxtui.core import gguf_import

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_import, "_replace_dir", fail)
    gguf_file = make_tiny_gguf(tiny_model_dir, tmp_path / "t.gguf")
    with pytest.raises(ModelError, match="No space left"):
        models.import_gguf(gguf_file, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.gguf"]


# ---------------------------------------------------------------- resolve and load


def test_resolve_model_local_folder(tiny_model_dir):
    assert models.resolve_model(str(tiny_model_dir)) == tiny_model_dir


def test_resolve_model_errors(tmp_path):
    with pytest.raises(ModelError, match=r"no such folder 'nowhere'.*a \.gguf file.*'demo'"):
        models.resolve_model("nowhere")
    with pytest.raises(ModelError, match="config.json is missing"):
        models.resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="no model.*safetensors"):
        models.resolve_model(str(tmp_path))
    with pytest.raises(ModelError, match="no such GGUF file"):
        models.resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="no such folder"):
        models.resolve_model(f"{tmp_path}/typo")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelError, match="is a file, not a model"):
        models.resolve_model(str(tmp_path / "notes.txt"))


def test_resolve_model_hub_id_is_returned_as_is():
    assert models.resolve_model("mlx-community/Llama-3.2-1B-Instruct-4bit") == (
        "mlx-community/Llama-3.2-1B-Instruct-4bit"
    )


def test_load_model_unknown_hub_id_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        models.load_model("nobody-here/no-such-model")


def test_resolve_gguf_file_imports_once_into_cache(tiny_model_dir, tmp_path, mlxtui_cache_dir):
    gguf_file = make_tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf", qtype="Q8_0")
    first = models.resolve_model(str(gguf_file))
    assert isinstance(first, type(tmp_path)) and first.parent == mlxtui_cache_dir / "models"
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert models.resolve_model(str(gguf_file)) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_load_model_info_float(tiny_model_dir):
    model, tok, info = models.load_model(str(tiny_model_dir))
    assert info.model_type == "llama"
    assert info.num_layers == 4 and info.hidden_size == 64
    assert info.quantization_bits is None and info.group_size is None
    assert info.dtype == "float32"
    assert info.has_chat_template and not info.dequantized
    n = sum(v.size for _, v in __import__("mlx.utils").utils.tree_flatten(model.parameters()))
    assert info.num_parameters == n
    assert info.size_bytes == 4 * n


def test_load_model_dequantize(tiny_quant_model_dir, tiny_model_dir):
    quant, _, qinfo = models.load_model(str(tiny_quant_model_dir))
    deq, _, dinfo = models.load_model(str(tiny_quant_model_dir), dequantize=True)
    _, _, finfo = models.load_model(str(tiny_model_dir))
    assert qinfo.quantization_bits == 4 and qinfo.group_size == 32
    assert not qinfo.dequantized and dinfo.dequantized
    assert dinfo.quantization_bits is None and dinfo.dtype == "float32"
    # Unpacked quantized weights count as the float model's parameters.
    assert qinfo.num_parameters == dinfo.num_parameters == finfo.num_parameters
    assert qinfo.size_bytes < dinfo.size_bytes
    kinds = {type(m) for _, m in deq.named_modules()}
    assert nn.QuantizedLinear not in kinds and nn.QuantizedEmbedding not in kinds
    a, b = quant(PROMPT_IDS).astype(mx.float32), deq(PROMPT_IDS)
    assert _rel_err(b, a) < 1e-3


def test_load_model_missing_adapter(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="no such adapter folder"):
        models.load_model(str(tiny_model_dir), adapter_path=tmp_path / "nope")


# ---------------------------------------------------------------- CLI


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mlxtui")
    add_models_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_info(tiny_model_dir, capsys):
    assert _cli("models", "info", str(tiny_model_dir)) == 0
    out = capsys.readouterr().out
    assert "llama, 4 layers, hidden 64" in out and "chat template" in out


def test_cli_import_gguf(tiny_model_dir, tmp_path, capsys):
    gguf_file = make_tiny_gguf(tiny_model_dir, tmp_path / "t.gguf")
    assert _cli("models", "import-gguf", str(gguf_file), str(tmp_path / "o")) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "o")
    assert "[5/5]" in captured.err
    # the conversion is a phase, printed as the other commands print theirs
    assert "converting t.gguf to MLX" in captured.err and "converting t.gguf to MLX 5/5" in captured.err
    assert _cli("models", "import-gguf", str(gguf_file), str(tmp_path / "o")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mlxtui models: error:") and "pass --force to replace it" in err[-1]
    assert "(failed)" in err[-2]  # the phase that stopped says so
    assert _cli("models", "import-gguf", str(gguf_file), str(tmp_path / "o"), "--force") == 0
