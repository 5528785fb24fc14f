"""Generation speed of the demo model: base and with a random LoRA adapter, quantized and float.

Run with OpenBLAS preloaded for real CPU speed:
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 uv run python benchmarks/bench_inference.py

Prints prompt and generation tokens/s (mean ± std over --runs greedy answers, after a warm-up)
and peak MLX memory. The adapter is random (rank 8, scale 20, the last --lora-layers blocks),
so its answers are nonsense; only its cost matters here.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.tuner.utils import linear_to_lora_layers

from mlxtui.cli.eval import format_bench
from mlxtui.core.evaluation import DEFAULT_BENCH_PROMPT, benchmark_base_and_adapter
from mlxtui.core.generation import load_adapter_file
from mlxtui.core.models import demo_model_dir, dequantize_model


def random_adapter(model_dir: Path, out: Path, num_layers: int) -> Path:
    lora = {"rank": 8, "scale": 20.0, "dropout": 0.0}
    model, _ = load(str(model_dir))
    model.freeze()
    linear_to_lora_layers(model, num_layers, lora)
    mx.random.seed(0)
    weights = {
        k: (0.01 * mx.random.normal(v.shape) if k.endswith("lora_b") else v)
        for k, v in tree_flatten(model.trainable_parameters())
    }
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    config = {
        "model": str(model_dir),
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": lora,
    }
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--lora-layers", type=int, default=16)
    ap.add_argument("--prompt", default=DEFAULT_BENCH_PROMPT)
    ap.add_argument(
        "--skip-quantized", action="store_true", help="only the float (de-quantized) copy"
    )
    args = ap.parse_args()

    model_dir = demo_model_dir()
    print(
        f"device {mx.default_device()}, {platform.machine()}, mlx {mx.__version__}", file=sys.stderr
    )
    print(
        f"model  {model_dir.name}; prompt {args.prompt!r}; {args.runs} runs x {args.max_tokens} tokens\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        adapter = random_adapter(model_dir, Path(tmp) / "adapter", args.lora_layers)
        variants = [("float32 (de-quantized)", True)]
        if not args.skip_quantized:
            variants.insert(0, ("4-bit (as shipped)", False))
        for title, dq in variants:
            model, tok = load(str(model_dir))
            if dq:
                dequantize_model(model)
            load_adapter_file(model, adapter)
            base, tuned = benchmark_base_and_adapter(
                model, tok, args.prompt, args.runs, args.max_tokens
            )
            print(f"== {title}; adapter: LoRA rank 8 on {args.lora_layers} blocks")
            print(format_bench({"base": base, "adapter": tuned}))
            print(f"   prompt {base.prompt_tokens} tokens; answers {base.generation_tokens:.0f} / "
                  f"{tuned.generation_tokens:.0f} tokens on average (base / adapter)\n")  # fmt: skip
            del model
            mx.clear_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
