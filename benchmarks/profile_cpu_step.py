"""Where a LoRA training step's time goes on the CPU: whole steps and their parts, per column.

One process, the demo model (a float copy) with LoRA on the last `--layers` blocks as mlxtui
applies it, batches made from the demo data's real lengths:

    uv run python benchmarks/profile_cpu_step.py --layers 8 --reps 3

Each case is timed as mlx-lm's trainer runs it (loss and LoRA gradients under mx.compile,
evaluated once per step), median of `--reps` after one warm-up call; "ms/col" divides by the
model's input columns (rows x width), which is what the CPU pays for, padding included. The
parts (forward alone, head + cross-entropy, attention) say which of them grows with the row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import mlxtui  # noqa: E402,F401  (OpenBLAS before mlx on the Linux CPU)


def timed(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of fn() (its outputs evaluated), after one warm-up call."""
    import mlx.core as mx

    mx.eval(fn())
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        mx.eval(fn())
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def demo_lengths_and_tokens(model_dir: Path, n: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    from mlxtui.demo_data import demo_data_dir

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    seqs = []
    for line in (demo_data_dir() / "train.jsonl").read_text().splitlines()[:n]:
        ids = tok.apply_chat_template(json.loads(line)["messages"], tokenize=True)
        seqs.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return seqs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="a float model folder (default: a float copy of the demo)")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--ab", action="store_true", help="interleaved A/B of whole steps: mlx-lm's loss vs "
                    "mlxtui's, frozen weights as stored vs float32, on one grouped batch")
    ap.add_argument("--cases", default="mlx_lm,unpacked,pack512x2,pack192x5,pack256x4,parts")
    a = ap.parse_args()

    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from mlxtui.core.training.batches import collate, model_width
    from mlxtui.core.training.fast_lora import speed_up_lora
    from mlxtui.core.training.loss import packed_train_loss, train_loss
    from mlxtui.core.training.packing import collate_packed, pack_rows

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(a.model) if a.model else None
        if model_dir is None:
            from mlx_lm.convert import convert

            from mlxtui.core.models import demo_model_dir

            model_dir = Path(tmp) / "model"
            convert(str(demo_model_dir()), mlx_path=str(model_dir), dequantize=True)
        seqs = demo_lengths_and_tokens(model_dir, 200)
        model, _ = load(str(model_dir))
    model.freeze()
    linear_to_lora_layers(model, a.layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
    speed_up_lora(model)
    mx.eval(model.parameters())
    model.train()
    lengths = [len(s) for s in seqs]
    order = sorted(range(len(seqs)), key=lambda i: lengths[i])
    print(f"demo data: {len(seqs)} examples, {min(lengths)}-{max(lengths)} tokens, mean {np.mean(lengths):.0f}; "
          f"{a.layers} LoRA layers; {'eager' if a.no_compile else 'compiled'}; {mx.default_device()}", flush=True)

    def step_of(loss: Callable[..., Any]) -> Callable[..., Any]:
        vg = nn.value_and_grad(model, loss)

        def step(*batch: Any) -> Any:
            (lv, toks), grad = vg(model, *batch)
            return lv, toks, grad

        return step if a.no_compile else mx.compile(step, inputs=model.state, outputs=model.state)

    def report(name: str, secs: float, cols: int, real: int) -> None:
        print(f"  {name:34s} {secs * 1000:8.0f} ms/step  {cols:5d} cols  {real:5d} real  "
              f"{secs * 1000 / cols:6.2f} ms/col  {secs * 1000 / real:6.2f} ms/real token", flush=True)

    if a.ab:
        ab(model, model_dir, seqs, order, a)
        return
    cases = set(a.cases.split(","))
    # an unpacked batch of 4 from the middle of the length order (mlxtui's grouping)
    mid = [seqs[i] for i in order[96:100]]
    if "mlx_lm" in cases:
        # mlx-lm pads a random group of 4 to 1 + a multiple of 32
        rng = np.random.default_rng(0)
        group = [seqs[i] for i in rng.choice(len(seqs), 4, replace=False)]
        w = 1 + 32 * -(-max(len(s) for s in group) // 32)
        arr = np.zeros((4, w), np.int32)
        for j, s in enumerate(group):
            arr[j, : len(s)] = s
        batch = (mx.array(arr), mx.array([[0, len(s)] for s in group]))
        report("mlx-lm default_loss, random group", timed(lambda: step_of(default_loss)(*batch), a.reps),
               4 * (w - 1), sum(len(s) for s in group))
        batch = collate(mid, 2048, 32)
        report("mlx-lm default_loss, grouped", timed(lambda: step_of(default_loss)(*batch), a.reps),
               4 * model_width(max(len(s) for s in mid), 2048, 32), sum(len(s) for s in mid))
    if "unpacked" in cases:
        batch = collate(mid, 2048, 32)
        report("mlxtui train_loss, grouped", timed(lambda: step_of(train_loss)(*batch), a.reps),
               4 * model_width(max(len(s) for s in mid), 2048, 32), sum(len(s) for s in mid))
    for name in sorted(c for c in cases if c.startswith("pack")):
        row, n_rows = (int(x) for x in name[4:].split("x"))
        rows = pack_rows([min(n, row) for n in lengths], row)
        items = [[seqs[j] for j in rows[r]] for r in range(n_rows)]
        batch = collate_packed(items, row, row, n_rows)
        real = int(batch[2].sum().item())
        report(f"mlxtui packed {n_rows} x {row}", timed(lambda b=batch: step_of(packed_train_loss)(*b), a.reps),
               n_rows * row, real)
    if "parts" in cases:
        parts(model, seqs, order, a)


def ab(model: Any, model_dir: Path, seqs: list[list[int]], order: list[int], a: argparse.Namespace) -> None:
    """Whole compiled steps on one grouped batch, the variants called in turn (A B C A B C ...),
    so that the machine's drift falls on all of them; median per variant."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from mlxtui.core.training.batches import collate
    from mlxtui.core.training.fast_lora import speed_up_lora
    from mlxtui.core.training.loss import train_loss

    batch = collate([seqs[i] for i in order[96:100]], 2048, 32)
    f32, _ = load(str(model_dir))
    f32.set_dtype(mx.float32)
    f32.freeze()
    linear_to_lora_layers(f32, a.layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
    speed_up_lora(f32)
    f32.update(model.trainable_parameters())
    mx.eval(f32.parameters())
    f32.train()

    def compiled(m: Any, loss: Any) -> Any:
        vg = nn.value_and_grad(m, loss)

        def step(*b: Any) -> Any:
            (lv, toks), grad = vg(m, *b)
            return lv, toks, grad

        return mx.compile(step, inputs=m.state, outputs=m.state)

    variants = {
        "mlx-lm loss, weights as stored": compiled(model, default_loss),
        "mlxtui loss, weights as stored": compiled(model, train_loss),
        "mlx-lm loss, float32 weights": compiled(f32, default_loss),
        "mlxtui loss, float32 weights": compiled(f32, train_loss),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    losses = {}
    for name, fn in variants.items():
        out = fn(*batch)
        mx.eval(out)
        losses[name] = out[0].item()
    for _ in range(a.reps):
        for name, fn in variants.items():
            t = time.perf_counter()
            mx.eval(fn(*batch))
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"  {name:34s} median {statistics.median(ts) * 1000:7.0f} ms  ({', '.join(f'{x * 1000:.0f}' for x in ts)})"
              f"  loss {losses[name]:.6f}", flush=True)


def parts(model: Any, seqs: list[list[int]], order: list[int], a: argparse.Namespace) -> None:
    """Forward alone, the head + cross-entropy alone, attention alone, one plain matmul."""
    import mlx.core as mx
    import numpy as np

    from mlxtui.core.training.chunked_loss import _ce

    n_cols = 1024
    rng = np.random.default_rng(0)
    x = mx.array(rng.integers(1, 40000, (2, 512)).astype(np.int32))
    fwd = timed(lambda: model(x), a.reps)
    print(f"  forward only, 2 x 512, all layers:  {fwd * 1000:8.0f} ms  {fwd * 1000 / n_cols:6.2f} ms/col", flush=True)
    x4 = mx.array(rng.integers(1, 40000, (4, 128)).astype(np.int32))
    f4 = timed(lambda: model(x4), a.reps)
    print(f"  forward only, 4 x 128:              {f4 * 1000:8.0f} ms  {f4 * 1000 / 512:6.2f} ms/col", flush=True)
    emb = model.model.embed_tokens
    d = emb.weight.shape[1]
    h = mx.random.normal((n_cols, d)) * 0.1
    t = mx.array(rng.integers(1, 40000, (n_cols,)).astype(np.int32))

    def head_loss(h: Any) -> Any:
        return _ce(emb.as_linear(h), t).sum()

    g = mx.grad(head_loss)
    hd = timed(lambda: g(h), a.reps)
    hf = timed(lambda: head_loss(h), a.reps)
    hm = timed(lambda: emb.as_linear(h), a.reps)
    print(f"  head+CE fwd+bwd, {n_cols} tokens:       {hd * 1000:8.0f} ms (fwd {hf * 1000:.0f}, matmul alone {hm * 1000:.0f})"
          f"  {hd * 1000 / n_cols:6.2f} ms/col", flush=True)
    gc = mx.compile(g)
    hdc = timed(lambda: gc(h), a.reps)
    print(f"  head+CE fwd+bwd compiled:           {hdc * 1000:8.0f} ms", flush=True)
    w = mx.random.normal((1536, d))
    xx = mx.random.normal((n_cols, d))
    mm = timed(lambda: xx @ w.T, a.reps)
    print(f"  matmul {n_cols}x{d} @ {d}x1536:          {mm * 1000:8.2f} ms = {2 * n_cols * d * 1536 / mm / 1e9:.0f} GFLOP/s", flush=True)
    args = model.args
    heads, kv = args.num_attention_heads, args.num_key_value_heads
    hdim = d // heads
    for b, L in ((4, 128), (2, 512), (5, 192)):
        q = mx.random.normal((b, heads, L, hdim))
        k = mx.random.normal((b, kv, L, hdim))
        v = mx.random.normal((b, kv, L, hdim))
        seg = mx.array(np.repeat(np.arange(L // 64), 64)[None].repeat(b, 0))
        from mlxtui.core.training.packing import block_causal_mask

        bm = block_causal_mask(seg)
        mx.eval(bm)
        for mname, mask in (("causal", "causal"), ("block bool", bm)):
            def att(q: Any, mask: Any = mask, k: Any = k, v: Any = v) -> Any:
                return mx.fast.scaled_dot_product_attention(q, k, v, scale=hdim**-0.5, mask=mask).sum()

            f = timed(lambda q=q, att=att: att(q), a.reps)
            gq = mx.grad(att)
            fb = timed(lambda q=q, gq=gq: gq(q), a.reps)
            print(f"  attention {b} x {L} {mname:10s}: fwd {f * 1000:7.1f} ms, fwd+bwd {fb * 1000:7.1f} ms per layer"
                  f"  -> x{args.num_hidden_layers} fwd + x{a.layers} bwd = {(f * args.num_hidden_layers + (fb - f) * a.layers) * 1000:6.0f} ms/step"
                  f" = {(f * args.num_hidden_layers + (fb - f) * a.layers) * 1000 / (b * L):5.2f} ms/col", flush=True)


if __name__ == "__main__":
    main()
