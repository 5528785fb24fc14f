"""Estimated vs measured training peak memory for a table of configurations.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 uv run python benchmarks/bench_estimate.py
    ... bench_estimate.py --model /path/to/mlx/model   # also a real model folder (mlx_lm.load)
    ... bench_estimate.py --quick                      # small shapes only

Models are random-init llama models of given shapes (memory depends on shapes, not values),
among them SmolLM2-135M's shapes (30 layers, hidden 576, FFN 1536, 9 heads, vocab 49152).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import mlx.core as mx
from mlx_lm.models import llama
from mlx_lm.utils import quantize_model

from mlxtui.core.estimate import EstimateInputs, estimate_peak, measure_peak, profile_model

SHAPES = {
    # name: hidden, layers, ffn, heads, kv heads, vocab
    "tiny": (64, 4, 128, 4, 2, 512),
    "small": (256, 4, 512, 4, 4, 1024),
    "wide-vocab": (96, 4, 384, 6, 3, 8192),
    "smollm2-135m": (576, 30, 1536, 9, 3, 49152),
}


def random_llama(
    shape: str, bits: int | None = None, dtype: Any = None, group_size: int = 32
) -> Any:
    hidden, layers, ffn, heads, kv, vocab = SHAPES[shape]
    args = llama.ModelArgs(
        model_type="llama",
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=ffn,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        rms_norm_eps=1e-5,
        vocab_size=vocab,
        tie_word_embeddings=True,
    )
    model = llama.Model(args)
    if dtype is not None:
        model.set_dtype(dtype)
    if bits:
        model, _ = quantize_model(model, {}, group_size=group_size, bits=bits)
    mx.eval(model.parameters())
    return model


def lengths(n: int, longest: int) -> tuple[int, ...]:
    return tuple([longest] + [max(longest // 2, 1)] * (n - 1))


def configs(quick: bool) -> list[tuple[str, Callable[[], Any], EstimateInputs]]:
    base = EstimateInputs(num_layers=4, batch_size=4, token_lengths=lengths(8, 100))
    rows: list[tuple[str, Callable[[], Any], EstimateInputs]] = []
    for shape in ("tiny", "small", "wide-vocab"):
        rows += [
            (f"{shape} lora", lambda s=shape: random_llama(s), base),
            (f"{shape} qlora 4-bit", lambda s=shape: random_llama(s, bits=4), base),
            (f"{shape} lora bf16", lambda s=shape: random_llama(s, dtype=mx.bfloat16), base),
            (f"{shape} full", lambda s=shape: random_llama(s), replace(base, fine_tune_type="full")),
            (f"{shape} dora", lambda s=shape: random_llama(s), replace(base, fine_tune_type="dora")),
            (f"{shape} grad ckpt", lambda s=shape: random_llama(s), replace(base, grad_checkpoint=True)),
            (f"{shape} sgd rank 32", lambda s=shape: random_llama(s), replace(base, optimizer="sgd", lora_rank=32)),
            (f"{shape} adafactor L250", lambda s=shape: random_llama(s), replace(base, optimizer="adafactor", token_lengths=lengths(8, 250))),
            (f"{shape} lora 2 layers B8", lambda s=shape: random_llama(s), replace(base, num_layers=2, batch_size=8)),
        ]  # fmt: skip
    if not quick:
        demo = "smollm2-135m"
        d = EstimateInputs(num_layers=8, batch_size=4, token_lengths=lengths(8, 120))
        rows += [
            (f"{demo} lora 8 layers", lambda: random_llama(demo), d),
            (f"{demo} lora 16 layers B2", lambda: random_llama(demo), replace(d, num_layers=16, batch_size=2)),
            (f"{demo} lora L250", lambda: random_llama(demo), replace(d, token_lengths=lengths(8, 250))),
            (f"{demo} grad ckpt all", lambda: random_llama(demo), replace(d, num_layers=-1, grad_checkpoint=True)),
            (f"{demo} full 2 layers", lambda: random_llama(demo), replace(d, fine_tune_type="full", num_layers=2, batch_size=2)),
            (f"{demo} bf16 lora", lambda: random_llama(demo, dtype=mx.bfloat16), d),
            (f"{demo} dora 4 layers", lambda: random_llama(demo), replace(d, fine_tune_type="dora", num_layers=4, batch_size=2)),
            (f"{demo} q4 lora B1", lambda: random_llama(demo, bits=4), replace(d, batch_size=1, token_lengths=(60,))),
        ]  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", action="append", default=[], help="an MLX model folder")
    args = ap.parse_args()
    rows = configs(args.quick)
    for path in args.model:
        import mlx_lm

        def load(p: str = path) -> Any:
            return mlx_lm.load(p)[0]

        d = EstimateInputs(num_layers=4, batch_size=2, token_lengths=lengths(4, 60))
        rows += [
            (f"{path} lora", load, d),
            (f"{path} lora ckpt", load, replace(d, grad_checkpoint=True)),
        ]
    print(f"{'config':34s} {'estimate MB':>12s} {'measured MB':>12s} {'error':>7s} {'s':>5s}")
    worst = 0.0
    for name, make, inputs in rows:
        t = time.perf_counter()
        model = make()
        est = estimate_peak(profile_model(model), inputs).total_bytes
        peak = measure_peak(model, inputs)
        err = est / peak - 1
        worst = max(worst, abs(err))
        print(
            f"{name:34s} {est / 1e6:12.1f} {peak / 1e6:12.1f} {100 * err:+6.1f}% "
            f"{time.perf_counter() - t:5.1f}",
            flush=True,
        )
        del model
        mx.clear_cache()
    print(f"worst error: {100 * worst:.1f}%")


if __name__ == "__main__":
    main()
