"""Fuse (equivalence with base + adapter), GGUF round trip, hub upload failing fast, CLI."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from gguf import GGUFReader
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm import load as mlx_load
from mlx_lm.gguf import permute_weights, translate_weight_names
from test_generation import greedy, make_adapter

from mlxtui.cli.export import add_parser as add_export_parser
from mlxtui.cli.fuse import add_parser as add_fuse_parser
from mlxtui.core import export
from mlxtui.core.export import (
    NO_TOKEN,
    ExportError,
    export_gguf,
    fuse_adapter,
    upload_to_hub,
)
from mlxtui.core.generation import adapter_disabled, adapter_modules, load_adapter_file

COLOURS = [{"role": "user", "content": "Name three colours."}]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlxtui")
    sub = p.add_subparsers(dest="command", required=True)
    add_fuse_parser(sub)
    add_export_parser(sub)
    return p


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("export") / "adapters")


# ------------------------------------------------------------------ fuse


@pytest.mark.parametrize("fine_tune_type", ["lora", "dora", "full"])
def test_fused_tiny_answers_like_base_plus_adapter(
    tiny_model_dir: Path, tmp_path: Path, fine_tune_type: str
) -> None:
    ad = make_adapter(
        tiny_model_dir,
        tmp_path / "ad",
        fine_tune_type=fine_tune_type,
        std=0.2 if fine_tune_type == "full" else 0.05,
    )
    model, tok = mlx_load(str(tiny_model_dir))
    load_adapter_file(model, ad)
    adapted = greedy(model, tok, max_tokens=20)
    with adapter_disabled(model):
        base = greedy(model, tok, max_tokens=20)
    assert adapted != base
    seen = []
    out = fuse_adapter(
        None, ad, tmp_path / "fused", progress=lambda m, d, t: seen.append((d, t))
    )  # base from adapter_config
    assert [d for d, _ in seen] == [0, 1, 2, 3] and {t for _, t in seen} == {3}  # no gap
    fused, ftok = mlx_load(str(out))
    assert not adapter_modules(fused)
    names = mx.load(str(out / "model.safetensors")).keys()
    assert not any("lora" in k for k in names)
    assert greedy(fused, ftok, max_tokens=20) == adapted
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], (
        "temporary folders left behind"
    )


def test_fuse_quantized_tiny(tiny_quant_model_dir: Path, tmp_path: Path) -> None:
    ad = make_adapter(tiny_quant_model_dir, tmp_path / "ad")
    model, tok = mlx_load(str(tiny_quant_model_dir), adapter_path=str(ad))
    adapted = greedy(model, tok, max_tokens=20)
    out = fuse_adapter(tiny_quant_model_dir, ad, tmp_path / "float", dequantize=True)
    config = json.loads((out / "config.json").read_text())
    assert "quantization" not in config and "quantization_config" not in config
    fused, ftok = mlx_load(str(out))
    assert greedy(fused, ftok, max_tokens=20) == adapted
    # kept quantized (re-quantized after fusing, as mlx_lm.fuse does): loads and answers
    out = fuse_adapter(tiny_quant_model_dir, ad, tmp_path / "quant")
    assert json.loads((out / "config.json").read_text())["quantization"]["bits"] == 4
    fused, ftok = mlx_load(str(out))
    assert greedy(fused, ftok, max_tokens=4)


def test_fuse_never_overwrites_without_force(
    tiny_model_dir: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fused"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty.*allow replacing it") as refused:
        fuse_adapter(tiny_model_dir, tiny_adapter, out)
    assert "--force" not in str(refused.value)  # the core names no flag: each front end words it
    assert (out / "precious.txt").read_text() == "keep me"
    # --force replaces an earlier model only: never a folder of other things, never a file
    with pytest.raises(ExportError, match="not a model folder"):
        fuse_adapter(tiny_model_dir, tiny_adapter, out, force=True)
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="is a file"):
        fuse_adapter(tiny_model_dir, tiny_adapter, out / "precious.txt", force=True)
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(ExportError, match="must end in .gguf"):
        fuse_adapter(
            tiny_model_dir,
            tiny_adapter,
            tmp_path / "f2",
            gguf_file=out / "precious.txt",
            force=True,
        )
    assert (out / "precious.txt").read_text() == "keep me"
    out = tmp_path / "fused_model"
    fuse_adapter(tiny_model_dir, tiny_adapter, out)
    (out / "stale.txt").write_text("old")
    fuse_adapter(tiny_model_dir, tiny_adapter, out, force=True)
    assert (out / "config.json").is_file() and not (out / "stale.txt").exists()
    # the base model's own folder (or one holding it) is refused even with force
    with pytest.raises(ExportError, match="the base model or the adapter"):
        fuse_adapter(tiny_model_dir, tiny_adapter, tiny_model_dir, force=True)
    with pytest.raises(ExportError, match="the base model or the adapter"):
        fuse_adapter(tiny_model_dir, tiny_adapter, tiny_adapter.parent, force=True)
    assert (tiny_model_dir / "model.safetensors").is_file() and (
        tiny_adapter / "adapters.safetensors"
    ).is_file()
    # a failure half-way leaves nothing behind
    other = make_adapter(tiny_model_dir, tmp_path / "r4", rank=4)
    shutil.copy(
        tiny_adapter / "adapter_config.json", other / "adapter_config.json"
    )  # config says rank 8
    with pytest.raises(ValueError, match="does not fit"):
        fuse_adapter(tiny_model_dir, other, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fuse_needs_a_model_when_the_adapter_names_none(tiny_adapter: Path, tmp_path: Path) -> None:
    ad = tmp_path / "ad"
    shutil.copytree(tiny_adapter, ad)
    cfg = json.loads((ad / "adapter_config.json").read_text())
    del cfg["model"]
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="names no base model.*--model"):
        fuse_adapter(None, ad, tmp_path / "out")


# ------------------------------------------------------------------ GGUF


def test_gguf_round_trip_tiny(tiny_model_dir: Path, tiny_adapter: Path, tmp_path: Path) -> None:
    out = export_gguf(tiny_model_dir, tiny_adapter, tmp_path / "tiny.gguf")
    # the expected tensors: mlx-lm's own load + fuse of the same adapter
    model, tok = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    model.update_modules(
        tree_unflatten([(n, m.fuse()) for n, m in model.named_modules() if hasattr(m, "fuse")])
    )
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert not config.get("rope_traditional", False)  # so Q/K must come out permuted
    expected = {}
    for k, v in tree_flatten(model.parameters()):
        if "q_proj.weight" in k:
            v = permute_weights(v, config["num_attention_heads"], config["num_attention_heads"])
        elif "k_proj.weight" in k:
            v = permute_weights(v, config["num_attention_heads"], config["num_key_value_heads"])
        expected[translate_weight_names(k)] = np.array(v.astype(mx.float32))

    reader = GGUFReader(str(out))
    got = {
        t.name: np.asarray(t.data, dtype=np.float32).reshape(expected[t.name].shape)
        for t in reader.tensors
    }
    assert set(got) == set(expected)
    assert "blk.0.attn_q.weight" in got and "token_embd.weight" in got
    for name, v in expected.items():
        np.testing.assert_allclose(got[name], v, rtol=2e-3, atol=2e-3, err_msg=name)
    # the adapter is really in there: layer 3 differs from the base
    base, _ = mlx_load(str(tiny_model_dir))
    base_q = np.array(base.model.layers[3].self_attn.v_proj.weight)
    assert not np.allclose(got["blk.3.attn_v.weight"], base_q, atol=1e-3)

    def field(name: str):
        f = reader.fields[name]
        return f.parts[f.data[0]]

    assert bytes(field("general.architecture")).decode() == "llama"
    assert bytes(field("tokenizer.ggml.model")).decode() == "gpt2"
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == len(tok.get_vocab())
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 0
    assert "<|im_start|>" in bytes(field("tokenizer.chat_template")).decode()
    assert int(field("llama.block_count")[0]) == config["num_hidden_layers"]


def _expected_fused(tiny_model_dir: Path, tiny_adapter: Path) -> dict[str, np.ndarray]:
    """GGUF name -> float32 weights of mlx-lm's own load + fuse, Q/K permuted as GGUF wants."""
    model, _ = mlx_load(str(tiny_model_dir), adapter_path=str(tiny_adapter))
    model.update_modules(
        tree_unflatten([(n, m.fuse()) for n, m in model.named_modules() if hasattr(m, "fuse")])
    )
    config = json.loads((tiny_model_dir / "config.json").read_text())
    out = {}
    for k, v in tree_flatten(model.parameters()):
        if "q_proj.weight" in k:
            v = permute_weights(v, config["num_attention_heads"], config["num_attention_heads"])
        elif "k_proj.weight" in k:
            v = permute_weights(v, config["num_attention_heads"], config["num_key_value_heads"])
        out[translate_weight_names(k)] = np.array(v.astype(mx.float32))
    return out


def test_gguf_q8_0_read_back_matches_the_source(
    tiny_model_dir: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    f16 = export_gguf(tiny_model_dir, tiny_adapter, tmp_path / "f16" / "tiny.gguf")
    out = export_gguf(tiny_model_dir, tiny_adapter, tmp_path / "q8" / "tiny.gguf", gguf_type="q8_0")
    expected = _expected_fused(tiny_model_dir, tiny_adapter)
    reader = GGUFReader(str(out))
    assert {t.name for t in reader.tensors} == set(expected)
    types = {}
    for t in reader.tensors:
        want = expected[t.name]
        got = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(want.shape)
        types[t.name] = t.tensor_type
        if t.tensor_type == GGMLQuantizationType.Q8_0:
            # 32 values share one float16 scale d = absmax / 127: rounding to a step of d
            # costs d / 2, the float16 rounding of d up to 127 * d * 2**-11 more
            blocks = want.reshape(-1, 32)
            step = np.abs(blocks).max(axis=1, keepdims=True) / 127
            err = np.abs(got.reshape(-1, 32) - blocks)
            assert (err <= step * (0.5 + 127 * 2**-11) + 1e-8).all(), t.name
            assert (err <= step * 0.5 * 1.01).mean() > 0.9, t.name
            assert not np.array_equal(got, want)  # really quantized, not a float copy
        else:
            np.testing.assert_array_equal(got, want, err_msg=t.name)  # norms stay float32
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType.Q8_0
    assert types["token_embd.weight"] == GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32
    # the adapter is in there
    base, _ = mlx_load(str(tiny_model_dir))
    v = next(t for t in reader.tensors if t.name == "blk.3.attn_v.weight")
    got_v = dequantize(v.data, v.tensor_type).reshape(expected["blk.3.attn_v.weight"].shape)
    assert not np.allclose(got_v, np.array(base.model.layers[3].self_attn.v_proj.weight), atol=1e-3)
    # the same metadata as the float16 file, with Q8_0's file type (7)
    ref = GGUFReader(str(f16))
    for key in (
        "general.architecture",
        "tokenizer.ggml.model",
        "tokenizer.chat_template",
        "llama.block_count",
    ):
        f, g = reader.fields[key], ref.fields[key]
        assert bytes(f.parts[f.data[0]]) == bytes(g.parts[g.data[0]]), key
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == len(
        ref.fields["tokenizer.ggml.tokens"].data
    )
    ft = reader.fields["general.file_type"]
    assert int(ft.parts[ft.data[0]][0]) == 7
    assert out.stat().st_size < 0.75 * f16.stat().st_size
    # and MLX itself loads it back (as its own 8-bit layout: weights, scales, biases)
    loaded = mx.load(str(out))
    assert {k for k in loaded if not k.endswith((".scales", ".biases"))} == set(expected)
    assert "blk.0.attn_q.scales" in loaded


def test_gguf_writes_an_ollama_modelfile_for_chatml(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = export_gguf(tiny_model_dir, None, tmp_path / "tiny.gguf")
    text = (tmp_path / "Modelfile").read_text()
    lines = text.splitlines()
    assert lines[0] == "FROM ./tiny.gguf"
    assert 'PARAMETER stop "<|im_end|>"' in lines and 'PARAMETER stop "<|im_start|>"' in lines
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    # what Ollama's Go template renders for a chat is what the model's Jinja template renders
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three colours."},
        {"role": "assistant", "content": "Red, green, blue."},
        {"role": "user", "content": "One more?"},
    ]
    head, rest = template.split("{{- range .Messages }}", 1)
    body, tail = rest.split("{{ end }}", 1)
    rendered = (
        head
        + "".join(
            body.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"])
            for m in chat
        )
        + tail
    )
    _, tok = mlx_load(str(tiny_model_dir))
    assert rendered == tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    # exporting again over our own Modelfile is fine; someone else's needs --force
    (tmp_path / "tiny.gguf").unlink()
    export_gguf(tiny_model_dir, None, out)
    other = tmp_path / "other"
    other.mkdir()
    (other / "Modelfile").write_text("FROM llama3\n")
    with pytest.raises(ExportError, match="Modelfile exists.*allow replacing it"):
        export_gguf(tiny_model_dir, None, other / "tiny.gguf")
    assert (other / "Modelfile").read_text() == "FROM llama3\n" and not (
        other / "tiny.gguf"
    ).exists()


def test_modelfile_of_chatml_with_a_default_system_prompt_and_of_unknown_templates() -> None:
    from mlxtui.core.gguf_export import modelfile_text

    smol = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
        "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    text = modelfile_text(Path("m.gguf"), smol, ["<|im_end|>"])
    assert (
        'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    )
    assert text.count("PARAMETER stop") == 2  # the end token is one of ChatML's already
    real_newline = smol.replace("\\n", "\n")  # the demo model's template has real newlines
    assert modelfile_text(Path("m.gguf"), real_newline, []) == text
    llama3 = (
        "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>...{% endfor %}"
    )
    text = modelfile_text(Path("m.gguf"), llama3, ["<|eot_id|>"])
    assert text.startswith("FROM ./m.gguf\n")
    assert not any(line.startswith(("TEMPLATE", "SYSTEM")) for line in text.splitlines())
    assert "not ChatML" in text and 'PARAMETER stop "<|eot_id|>"' in text


def test_gguf_keeps_qk_order_of_a_traditional_rope_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    trad = tmp_path / "trad"
    shutil.copytree(tiny_model_dir, trad)
    cfg = json.loads((trad / "config.json").read_text())
    cfg["rope_traditional"] = True  # weights already in GGUF's interleaved order (a GGUF import)
    (trad / "config.json").write_text(json.dumps(cfg))
    reader = GGUFReader(str(export_gguf(trad, None, tmp_path / "t.gguf")))
    q = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    want = np.array(
        mx.load(str(trad / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
    )
    np.testing.assert_allclose(
        np.asarray(q.data, dtype=np.float32).reshape(want.shape), want, atol=2e-3
    )


def test_gguf_refusals(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "gemma"
    shutil.copytree(tiny_model_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model_type"] = "gemma"
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ExportError, match=r"'gemma' architecture; supported: llama, mistral, mixtral"
    ):
        export_gguf(other, None, tmp_path / "x.gguf")
    existing = tmp_path / "there.gguf"
    existing.write_text("mine")
    with pytest.raises(ExportError, match="exists.*allow replacing it"):
        export_gguf(tiny_model_dir, None, existing)
    assert existing.read_text() == "mine"
    with pytest.raises(ExportError, match="must end in .gguf"):
        export_gguf(tiny_model_dir, None, tmp_path / "x.bin")


# ------------------------------------------------------------------ hub


def test_upload_fails_fast_without_token(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ExportError) as e:
        upload_to_hub(tiny_model_dir, "someone/tiny")
    assert str(e.value) == NO_TOKEN
    with pytest.raises(ExportError, match="not a model folder"):
        upload_to_hub(tmp_path, "someone/tiny", token="hf_x")


def test_upload_fails_fast_when_hub_unreachable(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a closed local port stands for "no network" deterministically; the real host is tried below
    monkeypatch.setattr(export, "HUB_HOST", "127.0.0.1")
    monkeypatch.setattr(export, "HUB_PORT", 9)
    with pytest.raises(ExportError, match="cannot be reached"):
        upload_to_hub(tiny_model_dir, "someone/tiny", token="hf_not_a_real_token")


def test_upload_with_fake_token_on_the_real_host_errors(tiny_model_dir: Path) -> None:
    # offline: "cannot be reached" within ~3 s; online: the hub rejects the fake token
    with pytest.raises(ExportError, match="cannot be reached|upload to someone/tiny failed"):
        upload_to_hub(tiny_model_dir, "someone/tiny", token="hf_not_a_real_token")


# ------------------------------------------------------------------ CLI


def test_cli_fuse_and_export(
    tiny_model_dir: Path,
    tiny_adapter: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = _parser()
    save = tmp_path / "fused"
    args = p.parse_args(
        ["fuse", "--adapter-path", str(tiny_adapter), "--save-path", str(save), "--export-gguf"]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr()
    out = printed.out.split()
    assert out == [str(save), str(save / "ggml-model-f16.gguf")]
    assert "fusing the adapter 4/4" in printed.err, printed.err  # the engine's Fuse job's phase
    assert GGUFReader(str(save / "ggml-model-f16.gguf")).tensors

    assert args.func(args) == 1  # now the folder exists
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert err.startswith("mlxtui fuse: error:") and "--force" in err

    args = p.parse_args(
        ["export", "gguf", "--model", str(tiny_model_dir), "--out", str(tmp_path / "base.gguf")]
    )
    assert args.func(args) == 0 and (tmp_path / "base.gguf").is_file()
    assert (tmp_path / "Modelfile").read_text().startswith("FROM ./base.gguf")
    assert "exporting GGUF 3/3" in capsys.readouterr().err

    from gguf import GGMLQuantizationType

    q8 = tmp_path / "q8" / "base.gguf"
    args = p.parse_args(
        ["export", "gguf", "--model", str(tiny_model_dir), "--out", str(q8), "--gguf-type", "q8_0"]
    )
    assert args.func(args) == 0
    assert GGMLQuantizationType.Q8_0 in {t.tensor_type for t in GGUFReader(str(q8)).tensors}
    save8 = tmp_path / "fused8"
    args = p.parse_args(
        [
            "fuse",
            "--adapter-path",
            str(tiny_adapter),
            "--save-path",
            str(save8),
            "--export-gguf",
            "--gguf-type",
            "q8_0",
        ]
    )
    assert args.func(args) == 0
    assert capsys.readouterr().out.split()[-1] == str(save8 / "ggml-model-q8_0.gguf")
    assert (save8 / "Modelfile").read_text().startswith("FROM ./ggml-model-q8_0.gguf")

    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    args = p.parse_args(["export", "hub", str(save), "someone/tiny"])
    assert args.func(args) == 1
    assert NO_TOKEN in capsys.readouterr().err
    args = p.parse_args(
        [
            "fuse",
            "--adapter-path",
            str(tiny_adapter),
            "--save-path",
            str(tmp_path / "f2"),
            "--upload-repo",
            "a/b",
        ]
    )
    assert args.func(args) == 1
    assert NO_TOKEN in capsys.readouterr().err
    assert not (tmp_path / "f2").exists()  # refused before doing the slow part


# ------------------------------------------------------------------ the real demo model


@pytest.mark.slow
@pytest.mark.demo
def test_fused_demo_answers_like_base_plus_adapter(demo_model_dir: Path, tmp_path: Path) -> None:
    from mlxtui.core.models import dequantize_model

    ad = make_adapter(demo_model_dir, tmp_path / "ad", num_layers=2, std=0.015)
    # float32 copies on both sides: quantized matmuls skip BLAS on CPU (DESIGN.md)
    model, tok = mlx_load(str(demo_model_dir))
    dequantize_model(model)
    load_adapter_file(model, ad)
    adapted = greedy(model, tok, COLOURS, max_tokens=20)
    with adapter_disabled(model):
        assert not adapted.startswith(
            greedy(model, tok, COLOURS, max_tokens=3)
        )  # the adapter matters
    out = fuse_adapter(demo_model_dir, ad, tmp_path / "fused", dequantize=True)
    fused, ftok = mlx_load(str(out))
    fused.set_dtype(mx.float32)
    assert greedy(fused, ftok, COLOURS, max_tokens=20) == adapted


@pytest.mark.slow
@pytest.mark.demo
def test_demo_gguf_matches_the_original_gguf(demo_model_dir: Path, tmp_path: Path) -> None:
    """Export the demo model and compare with the GGUF it came from (an independent reference).

    The demo's Q/K weights are already in GGUF order (rope_traditional): permuting them again,
    as mlx-lm's converter would, makes attn_q/attn_k differ here.
    """
    from gguf.quants import dequantize

    from mlxtui.core.models import demo_gguf_path

    out = export_gguf(demo_model_dir, None, tmp_path / "demo.gguf")
    original = {t.name: t for t in GGUFReader(str(demo_gguf_path())).tensors}
    exported = {t.name: t for t in GGUFReader(str(out)).tensors}
    assert set(exported) == set(original)
    for name in (
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.29.ffn_down.weight",
        "output_norm.weight",
    ):
        want = (
            dequantize(original[name].data, original[name].tensor_type)
            .astype(np.float32)
            .reshape(-1)
        )
        got = np.asarray(exported[name].data, dtype=np.float32).reshape(-1)
        np.testing.assert_allclose(got, want, atol=5e-3, err_msg=name)


def test_the_fuse_command_names_the_gguf_file_as_the_export_code_does() -> None:
    from mlxtui.cli import fuse as fuse_cmd

    assert fuse_cmd.DEFAULT_GGUF_NAME == export.DEFAULT_GGUF_NAME
    from mlxtui.core import gguf_export

    assert fuse_cmd.GGUF_TYPES == gguf_export.GGUF_TYPES
    assert gguf_export.default_gguf_name("f16") == export.DEFAULT_GGUF_NAME
