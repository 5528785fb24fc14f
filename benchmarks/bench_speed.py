"""Training speed side by side: mlxtui (padded, packed) vs bare mlx_lm.lora (vs PyTorch+PEFT).

Every run is its own process; the variants alternate (A B C A B C ...) so that drift of the
machine falls on all of them, and the ratio quoted is the median of the per-round ratios.
Real tokens per second (scored tokens, not padding) over the steps after `--skip`, peak
memory, the last reported loss.

    # this CPU, the demo model (a float copy, so that both train the same weights)
    uv run python benchmarks/bench_speed.py --model demo --data demo --iters 30 --skip 10
    # the GPU, random-init Llama-3.2 shapes, synthetic chat data of 150-400 tokens
    python3 benchmarks/bench_speed.py --preset llama-3.2-1b --layers 16 --peft
    # mlxtui's fast LoRA (default) against mlx-lm's LoRA layers inside mlxtui
    python3 benchmarks/bench_speed.py --preset llama-3.2-1b --layers 16 --variants mlx_lm.lora,mlxtui,mlxtui--plain-lora
    # primitives in one step's graph (loss + LoRA gradients), mlx-lm's LoRA vs the fast one
    python3 benchmarks/bench_speed.py --preset llama-3.2-1b --layers 16 --count-graph

The model folder and data are made once, in a temporary folder, before the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

REPORT_EVERY = 5
WORDS = (
    "the a model data train step loss token batch layer weight answer question river mountain "
    "light green small large quick slow read write count number city garden window music paper "
    "stone cloud north south east west morning evening simple careful open close"
).split()


# ------------------------------------------------------------------ data and model


def chat_ids(tok: Any, msgs: list[dict[str, str]]) -> list[int]:
    out = tok.apply_chat_template(msgs, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def synthetic_chat(out: Path, tokenizer_dir: Path, n_train: int, seed: int = 0) -> list[int]:
    """Chat examples of 150-400 tokens (by the model's tokenizer); returns their lengths."""
    import random

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    lengths: list[int] = []
    for split, n in (("train", n_train), ("valid", 32)):  # 32: enough for packed batches of 32 rows
        lines = []
        for _ in range(n):
            target = rng.randint(150, 400)
            q = " ".join(rng.choice(WORDS) for _ in range(12)) + "?"
            words: list[str] = []
            msgs: list[dict[str, str]] = []
            while True:
                words += [rng.choice(WORDS) for _ in range(16)]
                msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": " ".join(words)}]
                ids = chat_ids(tok, msgs)
                if len(ids) >= target:
                    break
            if split == "train":
                lengths.append(len(ids))
            lines.append(json.dumps({"messages": msgs}))
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return lengths


def demo_float_model(out: Path) -> Path:
    """The demo model, dequantized (mlxtui would dequantize it on the CPU; mlx_lm would not)."""
    from mlx_lm.convert import convert

    from mlxtui.core.models import demo_model_dir

    convert(str(demo_model_dir()), mlx_path=str(out), dequantize=True)
    return out


def demo_data(out: Path, n_train: int) -> None:
    from mlxtui.demo_data import demo_data_dir

    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", 8)):
        lines = (demo_data_dir() / f"{split}.jsonl").read_text().splitlines()[:n]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------ workers (one process each)


def _window_summary(rows: list[dict[str, float]], skip: int) -> dict[str, float]:
    """rows: {it, tokens, seconds, loss, peak_gb, n} for the n steps (default 1) ending at step
    `it`; the figures of the steps after `skip`.

    The trainers' rows are single steps: per report window, a run whose last window is short
    (iters not a multiple of the report interval) weighed its last step as a whole window in
    mlxtui's figures and as one step in mlx-lm's. "loss" is the mean of the last rows' losses.
    """
    use = [r for r in rows if r["it"] - r.get("n", 1) >= skip]
    tokens = sum(r["tokens"] for r in use)
    seconds = sum(r["seconds"] for r in use)
    steps = sum(r.get("n", 1) for r in use)
    last = [r["loss"] for r in rows[-max(1, REPORT_EVERY // int(rows[-1].get("n", 1))):]] if rows else []
    return {
        "tokens_per_s": tokens / seconds if seconds else 0.0,
        "step_s": seconds / steps if steps else 0.0,
        "tokens_per_step": tokens / steps if steps else 0.0,
        "steps": steps,
        "loss": sum(last) / len(last) if last else float("nan"),
        "peak_gb": max((r["peak_gb"] for r in rows), default=0.0),
    }


def worker_mlxtui(a: argparse.Namespace) -> dict[str, float]:
    import mlxtui  # noqa: F401  (OpenBLAS first on the Linux CPU)
    from mlxtui import TrainConfig, TrainPipeline
    from mlxtui.core import events as ev

    if a.plain_lora:
        from mlxtui.core.training import fast_lora

        # mlx-lm's LoRALinear as linear_to_lora_layers made it (core/training/fast_lora.py off)
        fast_lora.speed_up_lora = lambda model: 0
    if a.qmm:
        from mlxtui.core.training import dequant_matmul

        # the quantized base multiplied by MLX's quantized kernel (dequant_matmul.py off)
        dequant_matmul.wanted = lambda: False

    rows: list[dict[str, float]] = []

    def on_event(e: Any) -> None:
        # every step's own figures (mlxtui's trainer reports each step to its callback)
        if isinstance(e, ev.TrainStep) and e.iterations_per_second > 0:
            secs = 1.0 / e.iterations_per_second
            rows.append(
                {"it": e.iteration, "tokens": e.tokens_per_second * secs, "seconds": secs,
                 "loss": e.loss, "peak_gb": e.peak_memory}
            )

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig().with_values(
            model=a.model, data=a.data, iters=a.iters, batch_size=a.batch_size,
            num_layers=a.layers, max_seq_length=a.max_seq_length, grad_checkpoint=a.grad_checkpoint,
            learning_rate=1e-5, steps_per_report=REPORT_EVERY, steps_per_eval=10**6,
            save_every=10**6, val_batches=1, sample_prompts=0, dequantize="no",
            memory_guard="off", runs_dir=tmp, pack=a.pack,
        )
        TrainPipeline(cfg, on_event=on_event).execute()
    return _window_summary(rows, a.skip)


class _Collect:
    """mlx-lm's TrainingCallback: the per-report figures its trainer computes."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_loss_report(self, info: dict[str, Any]) -> None:
        # steps_per_report is 1 (as inside mlxtui): the figures of one step; the trainer's
        # report runs after its step timer stops, so reporting every step costs it nothing
        secs = 1.0 / info["iterations_per_second"]
        self.rows.append({"it": info["iteration"], "tokens": info["tokens_per_second"] * secs,
                          "seconds": secs, "loss": info["train_loss"], "peak_gb": info["peak_memory"]})

    def on_val_loss_report(self, info: dict[str, Any]) -> None:
        pass

    def on_train_start(self, *a: Any, **k: Any) -> None:  # newer mlx-lm hooks, if called
        pass


def worker_mlx_lm(a: argparse.Namespace) -> dict[str, float]:
    """Bare `mlx_lm.lora`: its own parser, defaults and run(), with a callback to read figures.

    `import mlxtui` first only loads OpenBLAS on the Linux CPU (MLX's own CPU BLAS is ~20x
    slower); on the GPU it changes nothing. clear_cache_threshold stays mlx-lm's default (0).
    """
    import types

    import mlxtui  # noqa: F401  (before mlx_lm: mlx_lm imports mlx, and OpenBLAS must load first)

    # isort: split
    from mlx_lm import lora

    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "--model", a.model, "--train", "--data", a.data,
            "--iters", str(a.iters), "--batch-size", str(a.batch_size), "--num-layers", str(a.layers),
            "--max-seq-length", str(a.max_seq_length), "--learning-rate", "1e-5",
            "--steps-per-report", "1", "--steps-per-eval", str(10**6),
            "--val-batches", "1", "--save-every", str(10**6), "--adapter-path", tmp,
        ] + (["--grad-checkpoint"] if a.grad_checkpoint else [])
        args = vars(lora.build_parser().parse_args(argv))
        for k, v in lora.CONFIG_DEFAULTS.items():
            if args.get(k) is None:
                args[k] = v
        cb = _Collect()
        # run() builds its callback from report_to (None here): hand it ours instead
        lora.get_reporting_callbacks = lambda *_a, **_k: cb
        lora.run(types.SimpleNamespace(**args))
    return _window_summary(cb.rows, a.skip)


def worker_peft(a: argparse.Namespace) -> dict[str, float]:
    """PyTorch + PEFT, eager, the same model shape, LoRA rank 8 on the same 7 projections of the
    last `layers` blocks, the same batches as mlx-lm pads them (1 + a multiple of 32)."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
    n = cfg.num_hidden_layers
    lcfg = LoraConfig(
        r=8, lora_alpha=160, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        layers_to_transform=list(range(n - a.layers, n)),
    )
    model = get_peft_model(model, lcfg)
    if a.grad_checkpoint:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    tok = AutoTokenizer.from_pretrained(a.model)
    data = [json.loads(x) for x in Path(a.data, "train.jsonl").read_text().splitlines()]
    seqs = [chat_ids(tok, d["messages"]) for d in data]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    groups = [order[i : i + a.batch_size] for i in range(0, len(order) - a.batch_size + 1, a.batch_size)]
    rng = np.random.default_rng(0)
    rows = []
    tokens = 0.0
    torch.cuda.synchronize()
    tic = time.perf_counter()
    torch.cuda.reset_peak_memory_stats()
    for it in range(1, a.iters + 1):
        g = groups[int(rng.integers(len(groups)))]
        lens = [min(len(seqs[i]), a.max_seq_length) for i in g]
        width = min(1 + 32 * -(-max(lens) // 32), a.max_seq_length)
        x = torch.zeros((len(g), width), dtype=torch.long)
        for j, i in enumerate(g):
            x[j, : lens[j]] = torch.tensor(seqs[i][: lens[j]])
        x = x.cuda()
        mask = (torch.arange(1, width, device="cuda")[None] <= torch.tensor(lens, device="cuda")[:, None]).float()
        logits = model(input_ids=x[:, :-1]).logits
        ce = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")
        loss = (ce * mask).sum() / mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += float(mask.sum())
        if it % REPORT_EVERY == 0:
            torch.cuda.synchronize()
            now = time.perf_counter()
            rows.append({"it": it, "tokens": tokens, "seconds": now - tic, "loss": float(loss),
                         "peak_gb": torch.cuda.max_memory_allocated() / 1e9, "n": REPORT_EVERY})
            tokens, tic = 0.0, time.perf_counter()
    return _window_summary(rows, a.skip)


# ------------------------------------------------------------------ the rounds


def flops_per_token(model_dir: Path, layers: int) -> float:
    """Useful FLOPs per trained token of LoRA with a frozen base: 2 x all weights forward,
    2 x the weights the gradient flows back through (the trained blocks and the head); the
    LoRA matrices, attention scores (~1% at 300 tokens) and recomputation are not counted."""
    c = json.loads((model_dir / "config.json").read_text())
    d, f, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    hd = d // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    block = d * d * 2 + d * kv * 2 + 3 * d * f
    head = d * c["vocab_size"]
    return 2 * (L * block + head) + 2 * (min(layers, L) * block + head)


# Primitives that only describe a view of their input (no kernel of their own).
VIEWS = {"Reshape", "Broadcast", "Transpose", "Slice", "Split", "Squeeze", "ExpandDims",
         "StopGradient", "AsStrided", "Depends", "Copy", "Flatten", "Unflatten"}


def _primitives(outputs: list[Any], path: Path) -> dict[str, int]:
    """Count the primitives in the graph that computes `outputs` (through MLX's DOT export)."""
    import collections
    import re

    import mlx.core as mx

    mx.export_to_dot(str(path), *outputs)
    return dict(collections.Counter(re.findall(r'label ="([^"]+)", shape=rectangle', path.read_text())))


def count_graph(a: argparse.Namespace, tmp: Path) -> None:
    """Primitives in one training step's graph (loss and LoRA gradients, no checkpointing):
    mlx-lm's LoRA layers against fast_lora's, traced plainly and through mx.compile (which is
    how mlx-lm's trainer runs the step: elementwise chains become one Compiled primitive)."""
    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    import mlxtui  # noqa: F401  (OpenBLAS first on the Linux CPU)
    from mlxtui.core.training.fast_lora import speed_up_lora

    width = 257
    rng = np.random.default_rng(0)
    batch = mx.array(rng.integers(1, 500, (a.batch_size, width)))
    lengths = mx.array([[0, width]] * a.batch_size)
    print(f"graph of one step: model {a.preset or a.model}, dtype {a.graph_dtype or 'as stored'}, "
          f"{a.layers} LoRA layers (rank 8, all 7 projections), batch {a.batch_size} x {width - 1}")
    for name, fast in (("mlx-lm LoRA", False), ("fast LoRA", True)):
        model, _ = load(a.model)
        if a.graph_dtype:
            model.set_dtype(getattr(mx, a.graph_dtype))
        model.freeze()
        linear_to_lora_layers(model, a.layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
        if fast:
            speed_up_lora(model)
        mx.eval(model.parameters())
        step = nn.value_and_grad(model, default_loss)
        def call(b: Any, n: Any, step: Any = step, model: Any = model) -> Any:
            return step(model, b, n)

        for how, fn in (("traced", call), ("compiled", mx.compile(call, inputs=model.state))):
            try:
                (loss, _), grads = fn(batch, lengths)
            except Exception as e:  # a back-end without compile support: say so, go on
                print(f"  {name:12s} {how:8s} failed: {e}")
                continue
            counts = _primitives([loss, *(v for _, v in tree_flatten(grads))], tmp / "graph.dot")
            kernels = sum(n for k, n in counts.items() if k not in VIEWS)
            top = ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
                            if k not in VIEWS and n >= 8)
            print(f"  {name:12s} {how:8s} {kernels:6d} primitives that compute "
                  f"({sum(counts.values())} with views): {top}", flush=True)
        del model


def run_worker(kind: str, a: argparse.Namespace, **over: Any) -> dict[str, float]:
    args = [
        sys.executable, __file__, "--worker", kind, "--model", a.model, "--data", a.data,
        "--iters", str(a.iters), "--skip", str(a.skip), "--batch-size", str(over.get("batch_size", a.batch_size)),
        "--layers", str(a.layers), "--max-seq-length", str(a.max_seq_length),
    ]
    if a.grad_checkpoint:
        args.append("--grad-checkpoint")
    if over.get("pack"):
        args.append("--pack")
    if over.get("plain_lora"):
        args.append("--plain-lora")
    if over.get("qmm"):
        args.append("--qmm")
    out = subprocess.run(args, capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode or not line:
        print(f"{kind} failed:\n{out.stdout[-1500:]}\n{out.stderr[-3000:]}", flush=True)
        return {}
    return json.loads(line[-1][7:])


def main() -> None:
    from bench_train import PRESETS, make_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["mlxtui", "mlx_lm", "peft"])
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--bits", type=int, default=None)
    ap.add_argument("--model", default=None, help="a model folder, or 'demo' (a float copy)")
    ap.add_argument("--data", default=None, help="a data folder, or 'demo'; default synthetic chat")
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--skip", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--pack-batch-size", type=int, default=None, help="rows per packed step (default: batch size)")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--max-seq-length", type=int, default=2048)
    ap.add_argument("--grad-checkpoint", action="store_true")
    ap.add_argument("--pack", action="store_true")
    ap.add_argument("--plain-lora", action="store_true", help="worker: mlx-lm's LoRA layers, not fast_lora's")
    ap.add_argument("--qmm", action="store_true", help="worker: quantized kernels, not dequant_matmul's float ones")
    ap.add_argument("--count-graph", action="store_true",
                    help="print the primitives of one step's graph, mlx-lm's LoRA vs fast_lora's, and exit")
    ap.add_argument("--graph-dtype", default=None, help="with --count-graph: cast the base (e.g. bfloat16)")
    ap.add_argument("--peft", action="store_true", help="also PyTorch + PEFT (CUDA)")
    ap.add_argument("--variants", default="mlx_lm.lora,mlxtui,mlxtui--pack",
                    help="comma-separated, names without spaces: mlx_lm.lora, mlxtui, mlxtui--pack, "
                    "mlxtui--plain-lora, mlxtui--pack--plain-lora (mlx-lm's LoRA layers inside mlxtui)")
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    a = ap.parse_args()

    if a.worker:
        fn = {"mlxtui": worker_mlxtui, "mlx_lm": worker_mlx_lm, "peft": worker_peft}[a.worker]
        print("RESULT " + json.dumps(fn(a)), flush=True)
        return

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if a.model == "demo":
            a.model = str(demo_float_model(Path(tmp) / "model"))
        elif a.model is None:
            import mlx.core as mx

            a.model = str(make_model(Path(tmp) / "model", a.preset, a.bits))
            mx.clear_cache()
        if a.count_graph:
            count_graph(a, Path(tmp))
            return
        if a.data == "demo":
            demo_data(Path(tmp) / "data", a.n_train)
            a.data = str(Path(tmp) / "data")
        elif a.data is None:
            lengths = synthetic_chat(Path(tmp) / "data", Path(a.model), a.n_train)
            a.data = str(Path(tmp) / "data")
            print(f"data: {len(lengths)} examples, {min(lengths)}-{max(lengths)} tokens, mean {statistics.mean(lengths):.0f}", flush=True)
        print(f"setup {time.perf_counter() - t0:.0f} s; model {a.preset or a.model} bits {a.bits} layers {a.layers} "
              f"batch {a.batch_size} ckpt {a.grad_checkpoint} iters {a.iters} (measured after step {a.skip})", flush=True)
        variants: list[tuple[str, str, dict[str, Any]]] = [
            ("mlx_lm.lora", "mlx_lm", {}),
            ("mlxtui", "mlxtui", {}),
            ("mlxtui --pack", "mlxtui", {"pack": True, "batch_size": a.pack_batch_size or a.batch_size}),
            ("mlxtui --plain-lora", "mlxtui", {"plain_lora": True}),
            ("mlxtui --qmm", "mlxtui", {"qmm": True}),
            ("mlxtui --pack --plain-lora", "mlxtui",
             {"pack": True, "plain_lora": True, "batch_size": a.pack_batch_size or a.batch_size}),
        ]
        if a.peft:
            variants.append(("torch+peft", "peft", {}))
        wanted = set(a.variants.split(",")) | {"mlx_lm.lora"} | ({"torch+peft"} if a.peft else set())
        variants = [v for v in variants if v[0].replace(" ", "") in wanted]
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
        for r in range(a.rounds):
            for name, kind, over in variants:
                res = run_worker(kind, a, **over)
                results[name].append(res)
                if res:
                    print(f"round {r + 1} {name:26s} {res['tokens_per_s']:>9,.0f} tok/s  {res['step_s'] * 1000:7.1f} ms/step "
                          f"{res['tokens_per_step']:7.0f} tok/step  peak {res['peak_gb']:.2f} GB  loss {res['loss']:.3f}", flush=True)
        fpt = flops_per_token(Path(a.model), a.layers)
        base = results["mlx_lm.lora"]
        print(f"summary ({a.preset or 'demo'}{f' {a.bits}-bit' if a.bits else ''}, {a.layers} layers, batch {a.batch_size}):")
        for name, runs in results.items():
            ok = [x for x in runs if x]
            if not ok:
                print(f"  {name:26s} failed")
                continue
            tps = statistics.median(x["tokens_per_s"] for x in ok)
            ratios = [x["tokens_per_s"] / b["tokens_per_s"] for x, b in zip(runs, base, strict=True)
                      if x and b and b["tokens_per_s"] > 0]
            ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
            mfu = tps * fpt / (a.peak_tflops * 1e12)
            print(f"  {name:26s} {tps:>9,.0f} tok/s  ratio {ratio:>6s}  peak {max(x['peak_gb'] for x in ok):.2f} GB  "
                  f"final loss {ok[-1]['loss']:.3f}  MFU {mfu:.1%}", flush=True)
        for fast, plain in (("mlxtui", "mlxtui --plain-lora"), ("mlxtui --pack", "mlxtui --pack --plain-lora")):
            if fast in results and plain in results:
                pairs = [f["tokens_per_s"] / p["tokens_per_s"] for f, p in zip(results[fast], results[plain], strict=True)
                         if f and p and p["tokens_per_s"] > 0]
                if pairs:
                    print(f"  fast LoRA: {fast} / {plain} = median {statistics.median(pairs):.2f}x "
                          f"(rounds: {', '.join(f'{x:.2f}' for x in pairs)})", flush=True)


if __name__ == "__main__":
    main()
