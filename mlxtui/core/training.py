"""The train job: mlx_lm.tuner.trainer.train, in-process, with our hands on the batch iterator.

mlx-lm's `train()` has no pause or stop hook, saves non-atomically and evaluates on its own
cadence. So we hand it:
- a batch iterator (grouped by real token length, seeded per epoch, resumable at any step)
  that is also where we pause, stop, evaluate, save checkpoints and run the memory guard:
  when it is asked for the batch of step g, steps 1..g-1 are done and evaluated;
- `steps_per_report=1`, so the callback sees every step's loss (NaN detection, live plot);
  we aggregate to the user's `steps_per_report` ourselves;
- no validation set and a scratch adapter file with saving disabled: evaluation and every
  save (atomic, never over a good checkpoint with NaN weights) are ours.
Everything here runs on the engine thread (the one-thread rule).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from mlxtui.core import events as ev
from mlxtui.core.config import (
    ConfigError,
    TrainConfig,
    build_lr_schedule,
    materialized_schedule,
    parse_size,
)
from mlxtui.core.fileio import atomic_save_safetensors, atomic_write_text
from mlxtui.core.runs import ADAPTER_FILE, BEST_FILE, STATE_DIR, new_run_dir, read_state

Emit = Callable[[ev.Event], None]


class TrainingError(RuntimeError):
    """A failure the user can act on; the message says what and where."""


# ------------------------------------------------------------------ control


class TrainControl:
    """Thread-safe flags the UI thread sets and the engine thread reads between steps."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self.pause_reason = ""

    def request_stop(self) -> None:
        self._stop.set()
        self._resume.set()

    def request_pause(self, reason: str = "user") -> None:
        self.pause_reason = reason
        self._resume.clear()

    def request_resume(self) -> None:
        self._resume.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._resume.is_set()

    def wait_while_paused(
        self, poll: Callable[[], None] | None = None, interval: float = 0.2
    ) -> None:
        while not self._resume.wait(interval):
            if poll is not None:
                poll()


# ------------------------------------------------------------------ batching


class BatchPlan:
    """Batches grouped by real token length, shuffled per epoch from (seed, epoch).

    mlx-lm 0.32.2 means to sort by length but sorts CacheDataset by the number of keys of the
    raw record (1 for chat/text), so its batches are padded to the longest of a random group
    (DESIGN.md). Sorting by the tokenized length removes most of that padding. The order is a
    pure function of (seed, step), which is what makes resume exact.
    """

    def __init__(self, dataset: Any, batch_size: int, max_seq_length: int, seed: int) -> None:
        if len(dataset) < batch_size:
            raise TrainingError(
                f"the training set has {len(dataset)} examples but batch_size is {batch_size}: "
                "lower the batch size or add examples"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.seed = seed
        lengths = [len(_tokens(dataset[i])) for i in range(len(dataset))]
        order = sorted(range(len(dataset)), key=lambda i: lengths[i])
        self.batches = [
            order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)
        ]
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.batches)

    def batch_indices(self, step: int) -> list[int]:
        """Indices of the examples of global step `step` (0-based)."""
        epoch, pos = divmod(step, len(self.batches))
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.batches))
        return self.batches[int(perm[pos])]

    def make_batch(self, indices: list[int]) -> tuple[Any, Any]:
        return collate([self.dataset[j] for j in indices], self.max_seq_length)


def _tokens(item: Any) -> list[int]:
    return item[0] if isinstance(item, tuple) else item


def collate(items: list[Any], max_seq_length: int) -> tuple[Any, Any]:
    """mlx-lm's padding (to 1 + a multiple of 32, capped) and its (offset, length) pairs."""
    import mlx.core as mx

    toks = [_tokens(x) for x in items]
    offsets = [x[1] if isinstance(x, tuple) else 0 for x in items]
    lengths = [min(len(t), max_seq_length) for t in toks]
    pad_to = 32
    width = min(1 + pad_to * ((max(lengths) + pad_to - 1) // pad_to), max_seq_length)
    arr = np.zeros((len(toks), width), np.int32)
    for j, t in enumerate(toks):
        arr[j, : lengths[j]] = t[: lengths[j]]
    return mx.array(arr), mx.array(list(zip(offsets, lengths, strict=True)))


def eval_batches(dataset: Any, batch_size: int, max_seq_length: int) -> Iterator[tuple[Any, Any]]:
    """Validation/test batches in a fixed, length-grouped order (no RNG consumed)."""
    order = sorted(range(len(dataset)), key=lambda i: len(_tokens(dataset[i])))
    for i in range(0, len(order) - batch_size + 1, batch_size):
        yield collate([dataset[j] for j in order[i : i + batch_size]], max_seq_length)


def evaluate_loss(
    model: Any, dataset: Any, batch_size: int, num_batches: int, max_seq_length: int
) -> float:
    """Mean token loss over `num_batches` batches (-1 = all), as mlx-lm's evaluate computes it."""
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss

    if len(dataset) < batch_size:
        batch_size = max(1, len(dataset))
    model.eval()
    total = mx.array(0.0)
    ntok = mx.array(0)
    for k, batch in enumerate(eval_batches(dataset, batch_size, max_seq_length)):
        if num_batches != -1 and k >= num_batches:
            break
        loss, toks = default_loss(model, *batch)
        total += loss * toks
        ntok += toks
        mx.eval(total, ntok)
    n = ntok.item()
    if n == 0:
        raise TrainingError("the evaluation set produced no tokens to score")
    return float(cast(float, (total / n).item()))


# ------------------------------------------------------------------ mlx-lm's display, silenced


class _SilentUI:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _SilentUI:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @contextmanager
    def val_task(self, total: int) -> Iterator[Callable[[], None]]:
        yield lambda: None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


@contextmanager
def _mlx_lm_quiet_and_restored(model: Any) -> Iterator[None]:
    """Silence mlx-lm's rich progress (it fights a Textual screen) and undo its class patch.

    `grad_checkpoint` replaces the layer *class's* __call__, so a second run in the same
    process would wrap it twice (or keep it when switched off): restore it afterwards.
    """
    from mlx_lm.tuner import trainer

    layer_cls = type(model.layers[0]) if hasattr(model, "layers") and len(model.layers) else None
    original_call = layer_cls.__call__ if layer_cls is not None else None
    original_ui = trainer.TrainUI
    trainer.TrainUI = _SilentUI  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        trainer.TrainUI = original_ui  # type: ignore[misc]
        if layer_cls is not None:
            layer_cls.__call__ = original_call  # type: ignore[assignment]


# ------------------------------------------------------------------ the job


@dataclass
class TrainResult:
    run_dir: Path
    adapter_path: Path
    status: str
    final_iteration: int
    total_iters: int
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    best_val_loss: float | None = None
    best_iteration: int | None = None
    test_loss: float | None = None
    test_ppl: float | None = None
    peak_memory_gb: float = 0.0
    estimated_peak_bytes: int | None = None
    message: str = ""

    def finished_event(self) -> ev.TrainFinished:
        return ev.TrainFinished(
            run_dir=str(self.run_dir),
            adapter_path=str(self.adapter_path),
            final_iteration=self.final_iteration,
            total_iters=self.total_iters,
            status=self.status,
            best_val_loss=self.best_val_loss,
            best_iteration=self.best_iteration,
            test_loss=self.test_loss,
            test_ppl=self.test_ppl,
            message=self.message,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["run_dir"] = str(self.run_dir)
        d["adapter_path"] = str(self.adapter_path)
        return d


@dataclass
class Prepared:
    """What `prepare_model` hands to `run_training`."""

    model: Any
    tokenizer: Any
    model_path: str
    train_set: Any
    valid_set: Any
    test_set: Any
    dequantized: bool
    quantization_bits: int | None


def load_datasets(config: TrainConfig, data_dir: Path, tokenizer: Any) -> tuple[Any, Any, Any]:
    from mlx_lm.tuner.datasets import CacheDataset, create_dataset

    if config.hf_dataset is not None:
        from mlxtui.core.config import ConfigError
        from mlxtui.core.hub_data import HubDataError, load_hub_datasets

        try:
            return load_hub_datasets(config, tokenizer)
        except (HubDataError, ConfigError) as e:
            raise TrainingError(str(e)) from None

    keys = SimpleNamespace(
        mask_prompt=config.mask_prompt,
        prompt_feature=config.prompt_feature or "prompt",
        completion_feature=config.completion_feature or "completion",
        chat_feature=config.chat_feature or "messages",
        text_feature=config.text_feature or "text",
    )
    out: list[Any] = []
    for name in ("train", "valid", "test"):
        path = data_dir / f"{name}.jsonl"
        if not path.is_file():
            out.append([])
            continue
        records = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise TrainingError(
                        f"{path}:{lineno}: invalid JSON ({e.msg}); run `mlxtui data validate {data_dir}`"
                    ) from None
        if not records:
            out.append([])
            continue
        try:
            out.append(CacheDataset(create_dataset(records, tokenizer, keys)))
        except ValueError as e:
            raise TrainingError(f"{path}: {e}") from None
    if not out[0]:
        raise TrainingError(
            f"{data_dir}: train.jsonl is missing or empty; a data folder needs train.jsonl "
            "(valid.jsonl and test.jsonl are optional)"
        )
    return out[0], out[1], out[2]


def apply_adapters(model: Any, config: TrainConfig) -> None:
    """Freeze the base and add LoRA/DoRA layers (or unfreeze the last blocks for full)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    n_layers = len(model.layers)
    if config.num_layers > n_layers:
        raise ConfigError(
            f"num_layers: the model has {n_layers} layers but {config.num_layers} were asked; "
            f"use at most {n_layers} (or -1 for all)"
        )
    if config.fine_tune_type == "full":
        for layer in model.layers[-max(config.num_layers, 0) :]:
            layer.unfreeze()
    else:
        params = dict(config.lora_parameters)
        params.pop("alpha", None)
        linear_to_lora_layers(
            model, config.num_layers, params, use_dora=config.fine_tune_type == "dora"
        )


def adapter_config_dict(config: TrainConfig, model_path: str) -> dict[str, Any]:
    """What mlx_lm.load(..., adapter_path) and mlx_lm.fuse read from adapter_config.json."""
    d = config.to_mlx_lm_dict()
    d["model"] = model_path
    d["fine_tune_type"] = config.fine_tune_type
    d["num_layers"] = config.num_layers
    d["lora_parameters"] = {k: v for k, v in config.lora_parameters.items() if k != "alpha"}
    return d


def build_optimizer(config: TrainConfig, total_iters: int) -> Any:
    import mlx.optimizers as optim

    classes = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "muon": optim.Muon,
        "sgd": optim.SGD,
        "adafactor": optim.Adafactor,
    }
    lr = build_lr_schedule(config, total_iters)
    extra = dict(config.optimizer_config.get(config.optimizer, {}) or {})
    return classes[config.optimizer](learning_rate=lr, **extra)


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


class TrainRun:
    """One training run on a prepared model. Call `execute()` on the engine thread."""

    def __init__(
        self,
        config: TrainConfig,
        prepared: Prepared,
        emit: Emit,
        control: TrainControl | None = None,
        memory_check: Callable[[], ev.MemoryAlert | None] | None = None,
        poll_while_paused: Callable[[], None] | None = None,
        estimated_peak_bytes: int | None = None,
    ) -> None:
        self.config = config
        self.p = prepared
        self.emit = emit
        self.control = control or TrainControl()
        self.memory_check = memory_check
        self.poll_while_paused = poll_while_paused
        self.estimated_peak_bytes = estimated_peak_bytes
        # run state (set up here so every attribute has one type; execute() fills them in)
        self.data_dir = str(config.data)
        self.run_dir = Path()
        self.adapter_dir = Path()
        self.total_iters = 0
        self.start_iter = 0
        self.optimizer: Any = None
        self.plan: BatchPlan | None = None
        self.metrics_file: Any = None
        self.sample_prompts: list[tuple[list[dict[str, str]], str, str]] = []
        self.train_losses: list[tuple[int, float]] = []
        self.val_losses: list[tuple[int, float]] = []
        self.best_val_loss: float | None = None
        self.best_iteration: int | None = None
        self.evals_without_improvement = 0
        self.trained_tokens = 0
        self._last_trained_tokens = 0
        self.step_times: list[float] = []
        self.window: list[dict[str, Any]] = []
        self.peak_memory = 0.0
        self.nan_seen = False
        self.nan_message = ""
        self.memory_message = ""
        self.status = "completed"
        self.message = ""
        self.last_eval_iter = -1
        self.good_iteration = 0
        self.good: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        self.step_started = time.perf_counter()
        self.has_val = bool(prepared.valid_set) and len(prepared.valid_set) > 0

    # -------------------------------------------------------------- setup

    def _setup_run_dir(self) -> tuple[Path, dict[str, Any] | None]:
        cfg = self.config
        if cfg.resume_run:
            run_dir = Path(cfg.resume_run)
            state = read_state(run_dir)
            if state is None or not (run_dir / STATE_DIR / "optimizer.safetensors").is_file():
                raise TrainingError(
                    f"{run_dir}: no resume state (state/state.json and state/optimizer.safetensors); "
                    "give a run folder that mlxtui wrote, or use --resume-adapter-file for a bare adapter"
                )
            return run_dir, state
        return new_run_dir(cfg.runs_dir, cfg.run_name or Path(self.p.model_path).name), None

    def _save_state(self, run_dir: Path, optimizer: Any, iteration: int, status: str) -> None:
        from mlx.utils import tree_flatten

        state_dir = run_dir / STATE_DIR
        opt_state = dict(tree_flatten(optimizer.state))
        atomic_save_safetensors(state_dir / "optimizer.safetensors", opt_state)
        atomic_save_safetensors(
            state_dir / "adapters.safetensors",
            dict(tree_flatten(self.p.model.trainable_parameters())),
        )
        atomic_write_text(
            state_dir / "state.json",
            json.dumps(
                {
                    "iteration": iteration,
                    "total_iters": self.total_iters,
                    "status": status,
                    "best_val_loss": self.best_val_loss,
                    "best_iteration": self.best_iteration,
                    "evals_without_improvement": self.evals_without_improvement,
                    "trained_tokens": self.trained_tokens,
                    "seed": self.config.seed,
                    "model_path": self.p.model_path,
                    "saved_at": time.time(),
                },
                indent=2,
            ),
        )

    def _restore_state(self, run_dir: Path, state: dict[str, Any], optimizer: Any) -> int:
        import mlx.core as mx

        state_dir = run_dir / STATE_DIR
        saved = cast(dict[str, Any], mx.load(str(state_dir / "adapters.safetensors")))
        current = dict(_flat(self.p.model.trainable_parameters()))
        if {k: tuple(v.shape) for k, v in saved.items()} != {k: tuple(v.shape) for k, v in current.items()}:
            raise TrainingError(
                f"{run_dir}: the saved state does not fit this configuration (its trainable weights differ: "
                "fine_tune_type, num_layers, lora rank or keys changed); resume with the run's own settings "
                f"(they are in {run_dir / 'config.yaml'})"
            )
        self.p.model.load_weights(list(saved.items()), strict=False)
        optimizer.init(self.p.model.trainable_parameters())
        loaded = cast(dict[str, Any], mx.load(str(state_dir / "optimizer.safetensors")))
        _set_leaves(optimizer.state, loaded)
        self.best_val_loss = state.get("best_val_loss")
        self.best_iteration = state.get("best_iteration")
        self.evals_without_improvement = int(state.get("evals_without_improvement", 0))
        self.trained_tokens = int(state.get("trained_tokens", 0))
        return int(state["iteration"])

    # -------------------------------------------------------------- saving

    def _adapter_weights(self) -> dict[str, Any]:
        from mlx.utils import tree_flatten

        return dict(tree_flatten(self.p.model.trainable_parameters()))

    def _weights_finite(self, weights: dict[str, Any]) -> bool:
        import mlx.core as mx

        checks = [mx.all(mx.isfinite(w)) for w in weights.values()]
        if not checks:
            return True
        return bool(mx.all(mx.stack(checks)).item())

    def _save_adapter(self, name: str, iteration: int, kind: str) -> Path | None:
        weights = self._adapter_weights()
        if self.nan_seen or not self._weights_finite(weights):
            self.emit(
                ev.Log(
                    "warning", f"not saving {name} at step {iteration}: the weights are not finite"
                )
            )
            return None
        path = self.adapter_dir / name
        atomic_save_safetensors(path, weights)
        self.emit(ev.CheckpointSaved(iteration, str(path), kind))
        self._metric(
            {"event": "checkpoint", "iteration": iteration, "path": str(path), "kind": kind}
        )
        return path

    def _metric(self, record: dict[str, Any]) -> None:
        record.setdefault("time", time.time())
        self.metrics_file.write(json.dumps(record) + "\n")
        self.metrics_file.flush()

    # -------------------------------------------------------------- evaluation

    def _evaluate(self, iteration: int) -> bool:
        """Validation loss, best checkpoint, sample answers; True when early stopping fires."""
        import mlx.core as mx

        cfg = self.config
        tic = time.perf_counter()
        val_loss = evaluate_loss(
            self.p.model, self.p.valid_set, cfg.batch_size, cfg.val_batches, cfg.max_seq_length
        )
        self.p.model.train()
        val_time = time.perf_counter() - tic
        self.val_losses.append((iteration, val_loss))
        improved = _finite(val_loss) and (
            self.best_val_loss is None
            or val_loss < self.best_val_loss - cfg.early_stopping_min_delta
        )
        is_best = _finite(val_loss) and (
            self.best_val_loss is None or val_loss < self.best_val_loss
        )
        if is_best:
            self.best_val_loss = val_loss
            self.best_iteration = iteration
        self.emit(ev.ValReport(iteration, val_loss, val_time, is_best))
        self._metric(
            {"event": "val", "iteration": iteration, "val_loss": val_loss, "val_time": val_time}
        )
        if is_best and iteration > 0:
            self._save_adapter(BEST_FILE, iteration, "best")
        if iteration > self.start_iter:
            self.evals_without_improvement = 0 if improved else self.evals_without_improvement + 1
        if cfg.sample_prompts > 0:
            self._sample_predictions(iteration)
        mx.clear_cache()
        patience = cfg.early_stopping_patience
        return patience > 0 and self.evals_without_improvement >= patience

    def _sample_predictions(self, iteration: int) -> None:
        from mlx_lm.generate import generate
        from mlx_lm.sample_utils import make_sampler

        items = []
        for prompt_messages, prompt_text, reference in self.sample_prompts:
            prompt = self.p.tokenizer.apply_chat_template(
                prompt_messages, tokenize=False, add_generation_prompt=True
            )
            answer = generate(
                self.p.model,
                self.p.tokenizer,
                prompt,
                max_tokens=64,
                sampler=make_sampler(0.0),
                verbose=False,
            )
            items.append(ev.SamplePrediction(prompt_text, reference, answer.strip()))
        if items:
            self.p.model.train()
            self.emit(ev.SamplePredictions(iteration, tuple(items)))
            self._metric(
                {"event": "samples", "iteration": iteration, "items": [i.__dict__ for i in items]}
            )

    def _pick_sample_prompts(self) -> list[tuple[list[dict[str, str]], str, str]]:
        data_dir = Path(self.data_dir)
        out: list[tuple[list[dict[str, str]], str, str]] = []
        path = data_dir / "valid.jsonl"
        if self.config.sample_prompts <= 0 or not path.is_file():
            return out
        with open(path, encoding="utf-8") as f:
            for line in f:
                if len(out) >= self.config.sample_prompts:
                    break
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                msgs = rec.get("messages") if isinstance(rec, dict) else None
                if (
                    isinstance(msgs, list)
                    and len(msgs) >= 2
                    and msgs[-1].get("role") == "assistant"
                ):
                    user = [m for m in msgs[:-1] if m.get("role") == "user"]
                    out.append(
                        (msgs[:-1], user[-1]["content"] if user else "", msgs[-1]["content"])
                    )
                elif isinstance(rec, dict) and "prompt" in rec and "completion" in rec:
                    out.append(
                        (
                            [{"role": "user", "content": rec["prompt"]}],
                            rec["prompt"],
                            rec["completion"],
                        )
                    )
        return out

    # -------------------------------------------------------------- the loop

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        import mlx.core as _mx

        cfg = self.config
        plan = self.plan
        assert plan is not None, "execute() builds the batch plan first"
        step = self.start_iter  # steps done
        while True:
            if step >= self.total_iters:
                return
            at_boundary = step % cfg.grad_accumulation_steps == 0
            if step > self.start_iter and at_boundary:
                if step % cfg.save_every == 0 and not self.nan_seen:
                    if self._save_adapter(f"{step:07d}_adapters.safetensors", step, "periodic"):
                        self._save_adapter(ADAPTER_FILE, step, "periodic")
                        self._save_state(self.run_dir, self.optimizer, step, "running")
                        self.good_iteration = step
                        self._snapshot_good()
            if (
                self.has_val
                and at_boundary
                and (
                    (step == self.start_iter and step == 0)
                    or (step > self.start_iter and step % cfg.steps_per_eval == 0)
                )
            ):
                self.last_eval_iter = step
                if self._evaluate(step):
                    self.status = "early_stopped"
                    self.message = (
                        f"early stopping: validation loss did not improve by {cfg.early_stopping_min_delta:g} "
                        f"for {cfg.early_stopping_patience} evaluations (best {self.best_val_loss:.4f} at step "
                        f"{self.best_iteration})"
                    )
                    self.emit(ev.Log("info", self.message))
                    return
            if self.memory_check is not None:
                alert = self.memory_check()
                if (
                    alert is not None
                    and alert.action == "pause"
                    and not self.control.pause_requested
                ):
                    self.memory_message = alert.message
                    if alert.suggestions:
                        self.memory_message += "; to use less memory: " + "; ".join(alert.suggestions)
                    self.control.request_pause("memory")
            if self.control.pause_requested:
                self._pause(step)
            if self.control.stop_requested and at_boundary:
                self.status = "stopped"
                return
            # The RNG (dropout) is a pure function of (seed, step): MLX 0.32 cannot restore a
            # saved key, and this makes resume exact without one.
            _mx.random.seed((cfg.seed * 1_000_003 + step) % 2**32)
            self.step_started = time.perf_counter()
            yield plan.make_batch(plan.batch_indices(step))
            step += 1

    def _pause(self, step: int) -> None:
        reason = self.control.pause_reason or "user"
        messages = {
            "user": "paused; press p to continue or s to stop (the adapter is saved on stop)",
            "memory": "paused by the memory guard: "
            + (self.memory_message or "swap is growing or memory pressure is red")
            + " (it continues by itself when memory recovers; p continues now)",
            "nan": self.nan_message,
        }
        self.emit(ev.TrainPaused(step, reason, messages.get(reason, reason)))
        self._metric({"event": "paused", "iteration": step, "reason": reason})
        self.control.wait_while_paused(self.poll_while_paused)
        if self.nan_seen and not self.control.stop_requested:
            self._roll_back_to_good()
        self.control.pause_reason = ""
        self.emit(ev.TrainResumed(step))
        self._metric({"event": "resumed", "iteration": step})

    def _snapshot_good(self) -> None:
        # A copy of the trainable weights and optimizer state at the last saved step, so a
        # NaN can be rolled back without reading the disk. Taken only at save points.
        import mlx.core as mx
        from mlx.utils import tree_flatten

        weights = self._adapter_weights()
        opt = dict(tree_flatten(self.optimizer.state))
        mx.eval(weights, opt)
        self.good = (
            {k: mx.array(v) for k, v in weights.items()},
            {k: mx.array(v) for k, v in opt.items()},
        )

    def _roll_back_to_good(self) -> None:
        weights, opt = self.good
        self.p.model.load_weights(list(weights.items()), strict=False)
        _set_leaves(self.optimizer.state, opt)
        self.nan_seen = False
        self.emit(
            ev.Log("info", f"rolled back to the last good weights (step {self.good_iteration})")
        )

    def on_train_loss_report(self, info: dict[str, Any]) -> None:
        it = self.start_iter + int(info["iteration"])
        loss = float(info["train_loss"])
        self.train_losses.append((it, loss))
        self.trained_tokens += int(info["trained_tokens"] - self._last_trained_tokens)
        self._last_trained_tokens = int(info["trained_tokens"])
        step_time = time.perf_counter() - self.step_started
        self.step_times.append(step_time)
        recent = self.step_times[-20:]
        eta = (self.total_iters - it) * (sum(recent) / len(recent)) if recent else None
        self.peak_memory = max(self.peak_memory, float(info["peak_memory"]))
        if not _finite(loss):
            self.nan_seen = True
            self.nan_message = (
                f"loss became {loss} at step {it}: training paused. The last good adapter "
                f"(step {self.good_iteration}) is kept on disk and will not be overwritten. "
                "Continue rolls back to it; stop ends the run. Lower the learning rate "
                "(or use gradient clipping via a smaller lr/scale) before training again."
            )
            self.emit(ev.Log("error", self.nan_message))
            self._metric({"event": "nan", "iteration": it, "loss": str(loss)})
            self.control.request_pause("nan")
        self.emit(
            ev.TrainStep(
                iteration=it,
                total_iters=self.total_iters,
                loss=loss,
                learning_rate=float(info["learning_rate"]),
                tokens_per_second=float(info["tokens_per_second"]),
                iterations_per_second=float(info["iterations_per_second"]),
                trained_tokens=self.trained_tokens,
                peak_memory=float(info["peak_memory"]),
                eta_seconds=eta,
            )
        )
        self.window.append(info | {"iteration": it, "train_loss": loss})
        if it % self.config.steps_per_report == 0 or it == self.total_iters:
            w = self.window
            finite = [x["train_loss"] for x in w if _finite(x["train_loss"])]
            mean_loss = sum(finite) / len(finite) if finite else float("nan")
            total_time = sum(
                1.0 / x["iterations_per_second"] for x in w if x["iterations_per_second"] > 0
            )
            toks = sum(
                x["tokens_per_second"] / x["iterations_per_second"]
                for x in w
                if x["iterations_per_second"] > 0
            )
            report = ev.TrainReport(
                iteration=it,
                total_iters=self.total_iters,
                train_loss=mean_loss,
                learning_rate=float(info["learning_rate"]),
                tokens_per_second=toks / total_time if total_time else 0.0,
                iterations_per_second=len(w) / total_time if total_time else 0.0,
                trained_tokens=self.trained_tokens,
                peak_memory=float(info["peak_memory"]),
            )
            self.emit(report)
            self._metric(report.to_dict() | {"event": "train"})
            self.window = []

    def on_val_loss_report(self, info: dict[str, Any]) -> None:  # we evaluate ourselves
        pass

    def execute(self) -> TrainResult:
        import mlx.core as mx
        from mlx_lm.tuner import trainer

        cfg = self.config
        m = self.p.model
        if cfg.memory_limit:
            mx.set_memory_limit(parse_size(cfg.memory_limit, "memory_limit"))
        if cfg.cache_limit:
            mx.set_cache_limit(parse_size(cfg.cache_limit, "cache_limit"))

        self.run_dir, resume_state = self._setup_run_dir()
        self.adapter_dir = self.run_dir / "adapters"
        self.adapter_dir.mkdir(exist_ok=True)
        (self.run_dir / STATE_DIR).mkdir(exist_ok=True)
        self.total_iters = cfg.resolved_iters(len(self.p.train_set))

        mx.random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        apply_adapters(m, cfg)
        if cfg.resume_adapter_file:
            path = Path(cfg.resume_adapter_file)
            if not path.is_file():
                raise TrainingError(f"resume_adapter_file: {path} does not exist")
            m.load_weights(str(path), strict=False)
        self.optimizer = build_optimizer(cfg, self.total_iters)
        self.start_iter = 0
        if resume_state is not None:
            self.start_iter = self._restore_state(self.run_dir, resume_state, self.optimizer)
            if self.start_iter >= self.total_iters:
                raise TrainingError(
                    f"{self.run_dir}: the run already reached step {self.start_iter} of {self.total_iters}; "
                    "raise iters (or epochs) to train further"
                )
        self.good_iteration = self.start_iter
        self._snapshot_good()

        self.plan = BatchPlan(self.p.train_set, cfg.batch_size, cfg.max_seq_length, cfg.seed)
        self.sample_prompts = self._pick_sample_prompts()
        config_path = self.run_dir / "config.yaml"
        saved_cfg = cfg.with_values(
            model=self.p.model_path,
            data=str(cfg.data),
            adapter_path=str(self.adapter_dir),
            iters=self.total_iters,
            resume_run=None,
            epochs=None,
            lr_schedule=materialized_schedule(cfg, self.total_iters) if not cfg.lr_phases else None,
            warmup=0,
        )
        atomic_write_text(config_path, saved_cfg.to_yaml())
        atomic_write_text(
            self.adapter_dir / "adapter_config.json",
            json.dumps(adapter_config_dict(saved_cfg, self.p.model_path), indent=4, default=str),
        )
        self.metrics_file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

        n_trainable = sum(v.size for _, v in _flat(m.trainable_parameters()))
        n_total = sum(v.size for _, v in _flat(m.parameters()))
        started = ev.TrainStarted(
            run_dir=str(self.run_dir),
            total_iters=self.total_iters,
            start_iter=self.start_iter,
            trainable_parameters=int(n_trainable),
            total_parameters=int(n_total),
            fine_tune_type=cfg.fine_tune_type,
            estimated_peak_bytes=self.estimated_peak_bytes,
        )
        self.emit(started)
        self._metric(started.to_dict() | {"event": "start"})
        mx.reset_peak_memory()

        args = trainer.TrainingArgs(
            batch_size=cfg.batch_size,
            iters=self.total_iters - self.start_iter,
            val_batches=cfg.val_batches,
            steps_per_report=1,
            steps_per_eval=10**12,
            steps_per_save=10**12,
            max_seq_length=cfg.max_seq_length,
            adapter_file=str(self.run_dir / STATE_DIR / "_trainer_scratch.safetensors"),
            grad_checkpoint=cfg.grad_checkpoint,
            grad_accumulation_steps=cfg.grad_accumulation_steps,
            clear_cache_threshold=cfg.clear_cache_threshold,
        )
        batches = self._batches()
        try:
            with _mlx_lm_quiet_and_restored(m):
                trainer.train(
                    model=m,
                    optimizer=self.optimizer,
                    train_dataset=self.p.train_set,
                    val_dataset=None,
                    args=args,
                    iterate_batches=lambda **kw: batches,
                    training_callback=cast(Any, self),  # duck-typed TrainingCallback
                )
            final_iter = self.train_losses[-1][0] if self.train_losses else self.start_iter
            if self.status == "completed" and final_iter < self.total_iters:
                self.status = "stopped"
            if (
                self.has_val
                and self.last_eval_iter != final_iter
                and final_iter > self.start_iter
                and not self.nan_seen
            ):
                self.last_eval_iter = final_iter
                self._evaluate(final_iter)
            kind = "final" if self.status == "completed" else "stop"
            saved = self._save_adapter(ADAPTER_FILE, final_iter, kind)
            if saved is None:
                self.status = "failed" if self.status == "completed" else self.status
                self.message = (
                    self.message
                    or "the final weights were not finite; the last good checkpoint is kept"
                )
            else:
                self._save_state(self.run_dir, self.optimizer, final_iter, self.status)
            (self.run_dir / STATE_DIR / "_trainer_scratch.safetensors").unlink(missing_ok=True)
            result = TrainResult(
                run_dir=self.run_dir,
                adapter_path=self.adapter_dir,
                status=self.status,
                final_iteration=final_iter,
                total_iters=self.total_iters,
                train_losses=self.train_losses,
                val_losses=self.val_losses,
                best_val_loss=self.best_val_loss,
                best_iteration=self.best_iteration,
                peak_memory_gb=self.peak_memory,
                estimated_peak_bytes=self.estimated_peak_bytes,
                message=self.message,
            )
            if cfg.test:
                result.test_loss, result.test_ppl = self.run_test()
            self._metric(
                {
                    "event": "finished",
                    "status": result.status,
                    "iteration": final_iter,
                    "peak_memory_gb": self.peak_memory,
                    "estimated_peak_bytes": self.estimated_peak_bytes,
                    "test_loss": result.test_loss,
                }
            )
            self.emit(result.finished_event())
            return result
        finally:
            self.metrics_file.close()

    def run_test(self) -> tuple[float | None, float | None]:
        if not self.p.test_set:
            raise TrainingError(f"test: {self.data_dir}/test.jsonl is missing or empty")
        loss = evaluate_loss(
            self.p.model,
            self.p.test_set,
            self.config.batch_size,
            self.config.test_batches,
            self.config.max_seq_length,
        )
        ppl = math.exp(loss) if loss < 700 else float("inf")
        self.emit(ev.TestResult(loss, ppl, str(self.adapter_dir)))
        self._metric({"event": "test", "test_loss": loss, "test_ppl": ppl})
        return loss, ppl


def _set_leaves(tree: Any, flat: dict[str, Any]) -> None:
    """Write flattened leaves ("a.b.0.c") into an existing state tree, in place.

    In place because train()'s compiled step holds the optimizer's state dict; leaf by leaf
    because the tree also has empty branches (e.g. for non-array model attributes) that a
    flattened file does not record.
    """
    for path, value in flat.items():
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value


def _flat(tree: Any) -> list[tuple[str, Any]]:
    from mlx.utils import tree_flatten

    return cast(list[tuple[str, Any]], tree_flatten(tree))
