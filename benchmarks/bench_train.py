"""Training speed through mlxtui's engine on Llama-shaped random-init models.

Prints tokens/s (mean over the steps after the first few), step time and peak memory for
each preset, on whatever back-end MLX has here (CPU, CUDA or Metal). The data is the demo
dataset; the tokenizer is the tests' small BPE one (token ids < 512), the model has the
preset's real vocabulary, so the shapes and FLOPs are those of the real model.

    uv run python benchmarks/bench_train.py --preset smollm2-135m --iters 12
    uv run python benchmarks/bench_train.py --preset llama-3.2-1b --layers 16 --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PRESETS = {
    # hidden, layers, ffn, heads, kv heads, vocab, tied
    "smollm2-135m": (576, 30, 1536, 9, 3, 49152, True),
    "llama-3.2-1b": (2048, 16, 8192, 32, 8, 128256, True),
    "llama-3.2-3b": (3072, 28, 8192, 24, 8, 128256, True),
}


def make_model(out: Path, preset: str, bits: int | None) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tiny_model import write_tokenizer

    hidden, layers, ffn, heads, kv, vocab, tied = PRESETS[preset]
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out)
    config = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": ffn,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "rope_theta": 100000.0,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 8192,
    }
    model = llama.Model(llama.ModelArgs.from_dict(config))
    model.set_dtype(mx.bfloat16 if mx.default_device() != mx.cpu else mx.float32)
    if bits:
        import mlx.nn as nn

        nn.quantize(model, group_size=64, bits=bits)
        config["quantization"] = {"group_size": 64, "bits": bits}
    mx.eval(model.parameters())
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (out / "config.json").write_text(json.dumps(config))
    return out


def main() -> None:
    import mlxtui  # noqa: F401  Linux CPU: loads OpenBLAS before MLX, as mlxtui runs

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smollm2-135m")
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument("--bits", type=int, default=None, help="quantize the base (QLoRA)")
    ap.add_argument("--no-grad-checkpoint", action="store_true")
    args = ap.parse_args()

    import mlx.core as mx

    from mlxtui import TrainConfig, TrainPipeline
    from mlxtui.core import events as ev
    from mlxtui.core.blas import blas_status

    print(f"device {mx.default_device()}  blas {blas_status().kind}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model_dir = make_model(Path(tmp) / "model", args.preset, args.bits)
        print(f"made {args.preset} ({f'{args.bits}-bit' if args.bits else 'float'}) in {time.perf_counter() - t0:.1f} s", flush=True)
        steps: list[ev.TrainStep] = []
        cfg = TrainConfig.quick_start(
            model=str(model_dir),
            iters=args.iters,
            batch_size=args.batch_size,
            num_layers=args.layers,
            max_seq_length=args.max_seq_length,
            grad_checkpoint=not args.no_grad_checkpoint,
            steps_per_eval=10**6,
            save_every=10**6,
            sample_prompts=0,
            dequantize="no",
            runs_dir=str(Path(tmp) / "runs"),
        )
        result = TrainPipeline(cfg, on_event=lambda e: steps.append(e) if isinstance(e, ev.TrainStep) else None).execute()
    warm = steps[3:] or steps
    tps = [s.tokens_per_second for s in warm]
    secs = [1.0 / s.iterations_per_second for s in warm if s.iterations_per_second > 0]
    print(
        f"{args.preset} batch {args.batch_size} layers {args.layers} ckpt {not args.no_grad_checkpoint}: "
        f"{statistics.mean(tps):,.0f} tokens/s (± {statistics.pstdev(tps):,.0f}), "
        f"{statistics.mean(secs):.3f} s/step, peak {result.peak_memory_gb:.2f} GB, "
        f"loss {steps[0].loss:.3f} -> {steps[-1].loss:.3f}"
    )


if __name__ == "__main__":
    main()
