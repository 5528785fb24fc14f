"""A tiny random-init llama model folder with a real byte-level BPE tokenizer, for fast tests.

`make_tiny_model(out_dir)` writes config.json, model.safetensors, tokenizer.json and
tokenizer_config.json (ChatML template) so `mlx_lm.load(out_dir)` works like on a real model.
The weights are random (seeded), so generations are gibberish but deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = ["<|endoftext|>", IM_START, IM_END]

# ChatML, the template of SmolLM2/Qwen: `<|im_start|>role\ncontent<|im_end|>\n`.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Enough plain English for a BPE to learn common words; the byte alphabet covers everything else.
CORPUS = """\
The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.
What is the capital of Spain? The capital of Spain is Madrid.
A language model predicts the next token. Fine-tuning adapts a model to a new task.
The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore.
Hello, how are you today? I am fine, thank you. What can I help you with?
The user asks a question and the assistant answers it clearly and politely.
Water boils at one hundred degrees. The sun rises in the east and sets in the west.
Two plus two is four. Three times three is nine. Ten minus one is nine.
Please write a short poem about the ocean. The ocean is deep and blue and wide.
Translate this sentence into French. Summarize the following text in one line.
Training loss goes down, validation loss goes down, then the model is saved.
"""


def train_tokenizer(vocab_size: int = 512):
    """A byte-level BPE `tokenizers.Tokenizer` trained on CORPUS, ChatML special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS.splitlines()
    tok.train_from_iterator(lines * 4, trainer=trainer)
    return tok


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "additional_special_tokens": [IM_START, IM_END],
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
    }


def write_tokenizer(out_dir: Path, vocab_size: int = 512) -> int:
    """Write tokenizer.json + tokenizer_config.json into out_dir; return the real vocab size."""
    tok = train_tokenizer(vocab_size)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": IM_END, "pad_token": "<|endoftext|>"}, indent=2)
    )
    return tok.get_vocab_size()


def tiny_config(vocab_size: int, num_layers: int, hidden: int) -> dict:
    heads = max(hidden // 16, 2)
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": num_layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": heads,
        "num_key_value_heads": max(heads // 2, 1),
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }


def make_tiny_model(
    out_dir: Path,
    *,
    num_layers: int = 4,
    hidden: int = 64,
    quantize_bits: int | None = None,
    seed: int = 0,
) -> Path:
    """Create a random-init llama MLX model folder in out_dir and return it.

    quantize_bits (4 or 8) stores the linear and embedding layers quantized (group size 32),
    the way `mlx_lm.convert -q` does, for QLoRA tests.
    """
    from mlx_lm.models import llama
    from mlx_lm.utils import quantize_model, save_config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(out_dir)
    config = tiny_config(vocab_size, num_layers, hidden)
    tok_cfg = json.loads((out_dir / "tokenizer_config.json").read_text())
    # The tokenizer's id of <|im_end|>: special tokens are added first, in order.
    config["eos_token_id"] = SPECIAL_TOKENS.index(tok_cfg["eos_token"])

    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    # nn.Linear's default init is fine; make the embedding small like real models so logits are sane.
    model.model.embed_tokens.weight = mx.random.normal((vocab_size, hidden)) * 0.02
    if quantize_bits is not None:
        # quantize_model prints a bits-per-weight line; harmless in tests.
        model, config = quantize_model(model, config, group_size=32, bits=quantize_bits)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    save_config(config, out_dir / "config.json")
    return out_dir


# GGML tensor types make_tiny_gguf can write (the gguf package quantizes these in Python).
GGUF_QUANT_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0")


def _permute_for_gguf(w, n_head: int):
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows (for interleaved RoPE)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def make_tiny_gguf(
    model_dir: Path,
    out_path: Path,
    *,
    qtype: str = "F32",
    arch: str = "llama",
    overrides: dict[str, str] | None = None,
) -> Path:
    """Write the float tiny model in model_dir as a GGUF file the way llama.cpp's converter does.

    qtype is the type of the 2-D weights (norms stay F32); overrides maps a GGUF tensor name to
    another type, e.g. {"token_embd.weight": "Q8_0"}, or to a raw type such as "Q6_K" (written
    as zero bytes: only for checking that a type is handled, the values are all zero).
    """
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    config = json.loads((model_dir / "config.json").read_text())
    weights = {
        k: np.array(v.astype(mx.float32))
        for k, v in mx.load(str(model_dir / "model.safetensors")).items()
    }
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    vocab: dict[str, int] = tok["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    special = {a["content"] for a in tok["added_tokens"] if a["special"]}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]

    w = GGUFWriter(str(out_path), arch)
    w.add_name("tiny")
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(config["rope_theta"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_dimension_count(config["hidden_size"] // heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3 if t in special else 1 for t in tokens])
    w.add_eos_token_id(vocab[tok_cfg["eos_token"]])
    w.add_add_bos_token(False)
    w.add_chat_template(tok_cfg["chat_template"])

    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
    }
    block = {
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }  # fmt: skip
    for name, arr in weights.items():
        if name in names:
            gname = names[name]
        else:
            _, _, layer, *rest = name.split(".")
            gname = f"blk.{layer}.{block['.'.join(rest[:-1])]}.weight"
        if name.endswith("q_proj.weight"):
            arr = _permute_for_gguf(arr, heads)
        elif name.endswith("k_proj.weight"):
            arr = _permute_for_gguf(arr, kv_heads)
        ttype = (overrides or {}).get(gname, qtype if arr.ndim == 2 else "F32")
        qt = GGMLQuantizationType[ttype]
        if qt == GGMLQuantizationType.F32:
            w.add_tensor(gname, arr)
        elif qt == GGMLQuantizationType.F16:
            w.add_tensor(gname, arr.astype(np.float16))
        elif ttype in GGUF_QUANT_TYPES:
            w.add_tensor(gname, quantize(arr, qt), raw_dtype=qt)
        else:
            block_size, type_size = GGML_QUANT_SIZES[qt]
            raw = np.zeros((arr.shape[0], arr.shape[1] // block_size * type_size), np.uint8)
            w.add_tensor(gname, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out_path


if __name__ == "__main__":
    import sys
    import time

    t = time.perf_counter()
    path = make_tiny_model(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny_model"))
    print(path, f"{time.perf_counter() - t:.2f}s")
