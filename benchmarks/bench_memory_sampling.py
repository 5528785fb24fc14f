"""Cost of one memory sample compared with one LoRA training step.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 uv run python benchmarks/bench_memory_sampling.py

Times 1000 `SystemMemoryProbe.sample()` calls and 1000 `Telemetry.sample_now()` calls (probe,
swap trend over a full history, armed guard, emission), then the trainer's compiled LoRA step
on a small inline llama (hidden 256, 4 layers, batch 4 x 128 tokens; a tiny model makes the
ratio look worse than any real run) and on the tiny test shape (hidden 64), and prints the
ratios. The telemetry thread samples once a second whatever the engine does, so its share of
one core is the cost of a sample per second; the step ratio is the worst case of sampling
once per step. For the cadence during real work see bench_memory_cadence.py.
"""

from __future__ import annotations

import time
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx_lm.models import llama
from mlx_lm.tuner.trainer import default_loss
from mlx_lm.tuner.utils import linear_to_lora_layers

from mlxtui.core.guard import MemoryGuard
from mlxtui.core.memory import SystemMemoryProbe
from mlxtui.core.telemetry import Telemetry


def step_seconds(hidden: int, layers: int, batch: int, tokens: int, steps: int = 10) -> float:
    """Seconds per compiled LoRA step (adam, rank 8, all layers), after two warm-up steps."""
    args = llama.ModelArgs(
        model_type="llama",
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=hidden * 2,
        num_attention_heads=max(hidden // 32, 2),
        num_key_value_heads=max(hidden // 64, 1),
        rms_norm_eps=1e-5,
        vocab_size=4096,
        tie_word_embeddings=True,
    )
    model = llama.Model(args)
    model.freeze()
    linear_to_lora_layers(model, layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
    optimizer = optim.Adam(learning_rate=1e-5)
    loss_and_grad = nn.value_and_grad(model, default_loss)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(batch_arr: mx.array, lengths: mx.array) -> mx.array:
        (lvalue, _), grad = loss_and_grad(model, batch_arr, lengths)
        optimizer.update(model, grad)
        return lvalue

    data = mx.random.randint(0, args.vocab_size, (batch, tokens + 1))
    lengths = mx.array([[0, tokens]] * batch)
    for i in range(steps + 2):
        if i == 2:
            t = time.perf_counter()
        mx.eval(state, step(data, lengths))
    return (time.perf_counter() - t) / steps


def main() -> None:
    probe = SystemMemoryProbe()
    probe.sample()
    n = 1000
    t = time.perf_counter()
    for _ in range(n):
        probe.sample()
    per_sample = (time.perf_counter() - t) / n
    print(f"memory sample: {per_sample * 1e6:.0f} µs ({n} samples)")
    telemetry = Telemetry(lambda event: None, probe=probe)
    telemetry.arm(MemoryGuard("pause"))
    for _ in range(350):  # fill the history (300 samples): the swap trend's worst case
        telemetry.sample_now()
    t = time.perf_counter()
    for _ in range(n):
        telemetry.sample_now()
    per_tick = (time.perf_counter() - t) / n
    print(
        f"Telemetry.sample_now (probe, swap trend, guard, event): {per_tick * 1e6:.0f} µs; "
        f"at one a second that is {100 * per_tick:.3f}% of one core"
    )
    for hidden, layers, batch, tokens in ((256, 4, 4, 128), (64, 4, 4, 64)):
        step = step_seconds(hidden, layers, batch, tokens)
        print(
            f"LoRA step hidden {hidden}, {layers} layers, {batch}x{tokens} tokens: "
            f"{step * 1e3:.1f} ms; one sample per step costs {100 * per_sample / step:.2f}%"
        )


if __name__ == "__main__":
    main()
