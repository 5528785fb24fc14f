"""Peak memory of one training step's loss and gradients: mlx-lm's loss vs mlxtui's chunked loss.

A Llama-shaped model with a 128k vocabulary (Llama 3's 128256), a small hidden size and few
layers, so that the logits dominate as they do on a 16 GB Mac; batch 4 x 2048 tokens. Each
variant runs in its own process (a clean peak), alternating, and prints the peak and the loss.
`--compile` runs the step under mx.compile as mlx-lm's trainer does; `--train-head` trains the
tied embedding/head too (full fine-tuning), else LoRA on the last `--layers` blocks.

    uv run python benchmarks/bench_chunked_loss.py --batch 2 --seq 1024      # CPU, float32
    python3 benchmarks/bench_chunked_loss.py --hidden 2048 --layers 2 --compile   # GPU, bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(a: argparse.Namespace) -> dict[str, float]:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import llama
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    import mlxtui  # noqa: F401  (OpenBLAS first on the Linux CPU)
    from mlxtui.core.training.loss import train_loss

    mx.random.seed(0)
    args = llama.ModelArgs.from_dict(
        {
            "model_type": "llama", "hidden_size": a.hidden, "num_hidden_layers": a.layers,
            "intermediate_size": a.hidden * 4, "num_attention_heads": max(1, a.hidden // 64),
            "num_key_value_heads": max(1, a.hidden // 256), "rms_norm_eps": 1e-5,
            "vocab_size": a.vocab, "rope_theta": 500000.0, "tie_word_embeddings": True,
        }
    )
    model = llama.Model(args)
    if mx.default_device() == mx.gpu:
        model.set_dtype(mx.bfloat16)
    model.freeze()
    linear_to_lora_layers(model, a.layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
    if a.train_head:
        model.model.embed_tokens.unfreeze()
    mx.eval(model.parameters())
    tokens = mx.random.randint(0, a.vocab, (a.batch, a.seq + 1))
    lengths = mx.array([[0, a.seq]] * a.batch)
    if a.variant == "mlx_lm":
        loss_fn = default_loss
    else:
        loss_fn = partial(train_loss, chunk_tokens=a.chunk_tokens or None)
    step = nn.value_and_grad(model, loss_fn)
    if a.compile:
        state = [model.state]
        step = mx.compile(partial(step, model), inputs=state, outputs=state)
    else:
        step = partial(step, model)
    mx.eval(tokens, lengths)
    base = mx.get_active_memory()
    if a.memory_limit_gb:
        mx.set_memory_limit(base + int(a.memory_limit_gb * 1e9))
    mx.reset_peak_memory()
    secs = 0.0
    for _ in range(a.steps):
        tic = time.perf_counter()
        (loss, _), grads = step(tokens, lengths)
        mx.eval(loss, grads)
        secs = time.perf_counter() - tic  # the last step's (the first one also traces)
    return {
        "peak_gb": (mx.get_peak_memory() - base) / 1e9,
        "loss": float(loss.item()),
        "seconds": secs,
        "logits_gb": a.batch * a.seq * a.vocab * (2 if mx.default_device() == mx.gpu else 4) / 1e9,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--variant", default="mlx_lm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1, help="steps per process (peak over all)")
    ap.add_argument("--compile", action="store_true", help="mx.compile the step (mlx-lm does)")
    ap.add_argument("--train-head", action="store_true", help="train the tied embedding/head")
    ap.add_argument("--chunk-tokens", type=int, default=0, help="tokens per chunk; 0 = default")
    ap.add_argument("--memory-limit-gb", type=float, default=0.0,
                    help="mx.set_memory_limit this much above the weights (both variants)")
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a)), flush=True)
        return
    shape = ["--hidden", str(a.hidden), "--layers", str(a.layers), "--vocab", str(a.vocab),
             "--batch", str(a.batch), "--seq", str(a.seq), "--steps", str(a.steps),
             "--chunk-tokens", str(a.chunk_tokens), "--memory-limit-gb", str(a.memory_limit_gb)]
    shape += ["--compile"] * a.compile + ["--train-head"] * a.train_head
    got: dict[str, list[dict[str, float]]] = {"mlx_lm": [], "chunked": []}
    for r in range(a.rounds):
        for variant in got:
            out = subprocess.run([sys.executable, __file__, "--worker", "--variant", variant, *shape],
                                 capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                print(f"{variant} failed: {out.stderr[-2000:]}", flush=True)
                continue
            res = json.loads(line[-1][7:])
            got[variant].append(res)
            print(f"round {r + 1} {variant:8s} peak {res['peak_gb']:.2f} GB above the weights "
                  f"(logits alone {res['logits_gb']:.2f} GB), loss {res['loss']:.5f}, {res['seconds']:.2f} s", flush=True)
    if got["mlx_lm"] and got["chunked"]:
        full = statistics.median(x["peak_gb"] for x in got["mlx_lm"])
        ours = statistics.median(x["peak_gb"] for x in got["chunked"])
        t_full = statistics.median(x["seconds"] for x in got["mlx_lm"])
        t_ours = statistics.median(x["seconds"] for x in got["chunked"])
        how = ("compiled" if a.compile else "eager") + (", head trained" if a.train_head else ", LoRA")
        print(f"vocab {a.vocab}, batch {a.batch} x {a.seq}, hidden {a.hidden}, {a.layers} layers, "
              f"{how}: peak {ours:.2f} GB chunked vs {full:.2f} GB mlx-lm = {ours / full:.2f}x; "
              f"step {t_ours:.2f} s vs {t_full:.2f} s = {t_ours / t_full:.2f}x", flush=True)


if __name__ == "__main__":
    main()
