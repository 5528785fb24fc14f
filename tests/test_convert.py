"""`mlxtui convert`: mlx_lm.convert's options on the tiny model, Hugging Face layout out, refusals,
and (slow) the demo model quantized to 8 and 4 bits and written back in Hugging Face layout."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm import load as mlx_load

from mlxtui.cli.main import build_parser
from mlxtui.core.convert import ConvertError, convert_to_hf, convert_to_mlx
from mlxtui.core.export import NO_TOKEN
from mlxtui.core.generation import generate_reply, render_prompt

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def _logits(folder: Path) -> np.ndarray:
    model, tok = mlx_load(str(folder))
    ids = render_prompt(tok, FRANCE)
    return np.array(model(mx.array([ids]))[0, -1].astype(mx.float32))


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    args = build_parser().parse_args(["convert", *argv])
    return args.func(args), out.getvalue(), err.getvalue()


# ------------------------------------------------------------------ to MLX


def test_quantize_8_and_4_bit_load_and_stay_close_to_the_float_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    base = _logits(tiny_model_dir)
    errors = {}
    for bits in (8, 4):
        out = convert_to_mlx(
            tiny_model_dir, tmp_path / f"q{bits}", quantize=True, q_bits=bits, q_group_size=32
        )
        q = _config(out)["quantization"]
        assert (q["bits"], q["group_size"]) == (bits, 32)
        model, tok = mlx_load(str(out))
        assert any(hasattr(m, "bits") for _, m in model.named_modules())
        assert generate_reply(model, tok, FRANCE, temperature=0.0, max_tokens=8)[0]
        errors[bits] = float(np.abs(_logits(out) - base).max())
    # 8 bits lose less than 4 bits (and both lose something: the weights really were quantized)
    assert 0 < errors[8] < errors[4]


def test_dequantize_gives_the_same_model_in_floats(
    tiny_quant_model_dir: Path, tmp_path: Path
) -> None:
    out = convert_to_mlx(tiny_quant_model_dir, tmp_path / "float", dequantize=True)
    cfg = _config(out)
    assert "quantization" not in cfg and "quantization_config" not in cfg
    model, _ = mlx_load(str(out))
    assert not any(hasattr(m, "bits") for _, m in model.named_modules())
    np.testing.assert_allclose(_logits(out), _logits(tiny_quant_model_dir), atol=1e-4)


def test_dtype_casts_the_float_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = convert_to_mlx(tiny_model_dir, tmp_path / "bf16", dtype="bfloat16")
    weights = mx.load(str(out / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {mx.bfloat16}


def test_mixed_recipe_quantizes_layers_differently(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = convert_to_mlx(
        tiny_model_dir,
        tmp_path / "mixed",
        quantize=True,
        q_group_size=32,
        quant_predicate="mixed_3_6",
    )
    q = _config(out)["quantization"]
    per_layer = {v["bits"] for k, v in q.items() if isinstance(v, dict)}
    assert per_layer == {3, 6}


def test_refusals_say_what_to_do(
    tiny_model_dir: Path, tiny_quant_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    with pytest.raises(ConvertError, match="either --quantize or --dequantize"):
        convert_to_mlx(tiny_model_dir, tmp_path / "x", quantize=True, dequantize=True)
    with pytest.raises(ConvertError, match="already quantized.*--dequantize"):
        convert_to_mlx(tiny_quant_model_dir, tmp_path / "x", quantize=True)
    torch_only = tmp_path / "torch_only"
    torch_only.mkdir()
    shutil.copy(tiny_model_dir / "config.json", torch_only)
    (torch_only / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ConvertError, match="no .safetensors weights.*safe_serialization"):
        convert_to_mlx(torch_only, tmp_path / "x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(
        ConvertError,
        match="Qwen/Qwen2.5-3B-Instruct is not in the local Hugging Face cache.*hf download",
    ):
        convert_to_mlx("Qwen/Qwen2.5-3B-Instruct", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_existing_destination_is_replaced_only_with_force_and_only_a_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConvertError, match="exists and is not empty.*allow replacing it"):
        convert_to_mlx(tiny_model_dir, out)  # the core names no flag: the CLI says --force
    with pytest.raises(ConvertError, match="not a model folder"):
        convert_to_mlx(tiny_model_dir, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    model_out = convert_to_mlx(tiny_model_dir, tmp_path / "model")
    convert_to_mlx(tiny_model_dir, model_out, force=True, quantize=True, q_group_size=32)
    assert _config(model_out)["quantization"]["bits"] == 4
    with pytest.raises(ConvertError, match="overlap"):
        convert_to_mlx(tiny_model_dir, tiny_model_dir / "inside")
    assert not list(tmp_path.glob(".*partial*"))


# ------------------------------------------------------------------ to Hugging Face


def test_to_hf_writes_float_weights_under_hf_names(
    tiny_quant_model_dir: Path, tmp_path: Path
) -> None:
    out = convert_to_hf(tiny_quant_model_dir, tmp_path / "hf")
    cfg = _config(out)
    assert "quantization" not in cfg and "quantization_config" not in cfg
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["torch_dtype"] in (
        "float16",
        "bfloat16",
        "float32",
    )
    weights, meta = mx.load(str(out / "model.safetensors"), return_metadata=True)
    assert meta["format"] == "pt"
    assert (
        "model.layers.0.self_attn.q_proj.weight" in weights
        and "model.embed_tokens.weight" in weights
    )
    assert not any(k.endswith((".scales", ".biases")) for k in weights)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).is_file()
    np.testing.assert_allclose(_logits(out), _logits(tiny_quant_model_dir), atol=1e-4)


def test_to_hf_reads_back_with_transformers_and_safetensors(
    tiny_quant_model_dir: Path, tmp_path: Path
) -> None:
    """What loads without torch here: the config, the tokenizer, the tensors (numpy)."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    out = convert_to_hf(tiny_quant_model_dir, tmp_path / "hf")
    config = AutoConfig.from_pretrained(out)
    assert (
        type(config).__name__ == "LlamaConfig"
        and config.num_hidden_layers == _config(out)["num_hidden_layers"]
    )
    _, mlx_tok = mlx_load(str(out))
    hf_tok = AutoTokenizer.from_pretrained(out)
    hf_ids = hf_tok.apply_chat_template(FRANCE, add_generation_prompt=True, return_dict=False)
    assert list(hf_ids) == render_prompt(mlx_tok, FRANCE)
    with safe_open(str(out / "model.safetensors"), "numpy") as f:
        assert f.metadata()["format"] == "pt"
        assert f.get_tensor("model.embed_tokens.weight").shape == (
            config.vocab_size,
            config.hidden_size,
        )


def test_to_hf_undoes_the_gguf_qk_order_of_a_traditional_rope_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A model imported from GGUF keeps Q/K interleaved with rope_traditional; HF has neither."""
    trad = tmp_path / "trad"
    shutil.copytree(tiny_model_dir, trad)
    cfg = _config(trad)
    cfg["rope_traditional"] = True
    (trad / "config.json").write_text(json.dumps(cfg))
    out = convert_to_hf(trad, tmp_path / "hf")
    assert "rope_traditional" not in _config(out)
    src = mx.load(str(trad / "model.safetensors"))
    hf = mx.load(str(out / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not np.allclose(np.array(src[key]), np.array(hf[key]))  # rows really moved
    np.testing.assert_allclose(_logits(out), _logits(trad), atol=1e-4)


def test_the_skills_two_convert_lines_as_written(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlx_lm.convert --hf-path Qwen/Qwen2.5-3B-Instruct --mlx-path models/Qwen2.5-3B-Instruct-mlx
    --quantize` (a local folder for the hub id) and, after fusing, `mlx_lm.convert --mlx-path
    models/fused-model --hf-path models/hf-export`, with `mlxtui convert` in place of the program."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "Qwen" / "Qwen2.5-3B-Instruct")
    argv = [
        "--hf-path",
        "Qwen/Qwen2.5-3B-Instruct",
        "--mlx-path",
        "models/Qwen2.5-3B-Instruct-mlx",
        "--quantize",
    ]
    code, out, err = _cli(argv, monkeypatch)
    assert code == 0, err
    assert _config(tmp_path / "models" / "Qwen2.5-3B-Instruct-mlx")["quantization"]["bits"] == 4
    # the same line again: the MLX folder exists, so it is refused (not read as the way back)
    code, _, err = _cli(argv, monkeypatch)
    assert code == 1 and "--force" in err and "Hugging Face layout" not in err

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "fused-model")
    code, out, err = _cli(
        ["--mlx-path", "models/fused-model", "--hf-path", "models/hf-export"], monkeypatch
    )
    assert code == 0, err
    assert "Hugging Face layout" in err and out.strip() == "models/hf-export"
    assert _config(tmp_path / "models" / "hf-export")["architectures"] == ["LlamaForCausalLM"]
    # again: the destination exists now, so it is refused without --force
    code, _, err = _cli(
        ["--to-hf", "--mlx-path", "models/fused-model", "--hf-path", "models/hf-export"],
        monkeypatch,
    )
    assert code == 1 and "--force" in err
    code, _, err = _cli(["--mlx-path", "x"], monkeypatch)
    assert code == 1 and "pass --hf-path" in err


def test_cli_quantize_and_upload_without_token_fails_before_converting(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _cli(
        ["--hf-path", str(tiny_model_dir), "--mlx-path", str(tmp_path / "q8"), "-q", "--q-bits", "8",
         "--q-group-size", "32"],
        monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == str(tmp_path / "q8") and "bits per weight" in err
    assert _config(tmp_path / "q8")["quantization"]["bits"] == 8
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    code, _, err = _cli(
        [
            "--hf-path",
            str(tiny_model_dir),
            "--mlx-path",
            str(tmp_path / "up"),
            "--upload-repo",
            "me/tiny",
        ],
        monkeypatch,
    )
    assert code == 1 and NO_TOKEN in err
    assert not (tmp_path / "up").exists()


# ------------------------------------------------------------------ the demo model


@pytest.mark.slow
def test_demo_quantized_to_8_and_4_bits_and_back_to_hf(
    demo_model_dir: Path, tmp_path: Path
) -> None:
    """The issue's test: the demo (Q4_1) de-quantized, then quantized to 8 and 4 bits; each loads
    and answers; 8-bit still knows Paris; the HF layout reloads and answers like the original."""
    # float32: on the CPU back-end float16 matmuls skip BLAS and answer several times slower
    float_dir = convert_to_mlx("demo", tmp_path / "float", dequantize=True, dtype="float32")
    answers = {}
    for name, folder in [
        ("float", float_dir),
        ("8bit", convert_to_mlx(float_dir, tmp_path / "q8", quantize=True, q_bits=8)),
        ("4bit", convert_to_mlx(float_dir, tmp_path / "q4", quantize=True, q_bits=4)),
        ("hf", convert_to_hf(float_dir, tmp_path / "hf")),  # keeps GGUF's Q/K order until then
    ]:
        model, tok = mlx_load(str(folder))
        n = 4 if name == "4bit" else 8  # "The capital of France is Paris." is 8 tokens
        answers[name] = generate_reply(model, tok, FRANCE, temperature=0.0, max_tokens=n)[0]
        del model
    assert "Paris" in answers["float"] and "Paris" in answers["8bit"], answers
    assert answers["4bit"].strip(), answers
    assert answers["hf"] == answers["float"], answers
    assert _config(tmp_path / "q8")["quantization"]["bits"] == 8
    assert "rope_traditional" not in _config(tmp_path / "hf")
