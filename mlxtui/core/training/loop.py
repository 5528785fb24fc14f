"""The step loop: mlx_lm.tuner.trainer.train, in-process, with our hands on the batch iterator.

mlx-lm's `train()` has no pause or stop hook, saves non-atomically and evaluates on its own
cadence. So we hand it:
- a batch iterator (grouped by real token length, seeded per epoch, resumable at any step)
  that is also where we pause, stop, evaluate, save checkpoints and run the memory guard:
  when it is asked for the batch of step g, steps 1..g-1 are done and evaluated;
- `steps_per_report=1`, so the callback sees every step's loss (NaN detection, live plot);
  we aggregate to the user's `steps_per_report` ourselves;
- no validation set and a scratch adapter file with saving disabled: evaluation and every
  save (atomic, never over a good checkpoint with NaN weights) are ours.

Stop is immediate and safe: at the next step boundary the adapter and the resume state are
written before anything else, and a stop during a validation or the sample answers abandons
them between batches or tokens (the safe point raises `Interrupted`) and then saves. Only a
run that completed its steps runs the final validation and the test evaluation.
Everything here runs on the engine thread (the one-thread rule).
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

import numpy as np

from mlxtui.core import events as ev
from mlxtui.core import pause_words as words
from mlxtui.core.config import TrainConfig, epochs_to_iters, materialized_schedule, parse_size
from mlxtui.core.diagnosis import Diagnoser
from mlxtui.core.distributed import (
    World,
    any_rank,
    current_world,
    gather_floats,
    rank_failure_text,
    reductions_on_this_thread,
)
from mlxtui.core.fileio import DiskFullError, atomic_write_text, is_disk_full
from mlxtui.core.progress import Interrupted, Reporter
from mlxtui.core.runs import ADAPTER_FILE, BEST_FILE, STATE_DIR
from mlxtui.core.training.batches import BatchPlan
from mlxtui.core.training.checkpoints import (
    CheckpointStore,
    flat,
    open_run_dir,
    user_adapter_dir,
)
from mlxtui.core.training.control import TrainControl
from mlxtui.core.training.cpu_weights import widen_half_weights
from mlxtui.core.training.datasets import SamplePrompt, sample_prompts
from mlxtui.core.training.datawatch import DataWatch
from mlxtui.core.training.errors import TrainingError
from mlxtui.core.training.gradnorm import GRAD_NORM_KEY
from mlxtui.core.training.loss import (
    batch_count,
    evaluate_loss,
    packed_train_loss,
    test_loss,
    train_loss,
)
from mlxtui.core.training.packing import packed_attention
from mlxtui.core.training.ranks import ReadOnlyStore, batch_tokens
from mlxtui.core.training.result import Prepared, TrainResult
from mlxtui.core.training.samples import answer_samples
from mlxtui.core.training.setup import (
    adapter_config_dict,
    apply_adapters,
    build_optimizer,
    clear_cache_threshold,
)

Emit = Callable[[ev.Event], None]
SCRATCH_FILE = "_trainer_scratch.safetensors"
PACK_SUGGESTED_ABOVE = 0.2  # the share of padding above which packing is suggested


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


def _call(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


# ------------------------------------------------------------------ the run


class TrainRun:
    """One training run on a prepared model. Call `execute()` on the engine thread.

    `memory_check` runs at every safe point and returns the guard's alert (a "pause" alert
    pauses the run); `poll_while_paused` runs while paused (the engine answers chat jobs).
    """

    def __init__(
        self,
        config: TrainConfig,
        prepared: Prepared,
        emit: Emit,
        control: TrainControl | None = None,
        memory_check: Callable[[], ev.MemoryAlert | None] | None = None,
        poll_while_paused: Callable[[], None] | None = None,
        estimated_peak_bytes: int | None = None,
        job_id: int = 0,
    ) -> None:
        self.config = config
        self.p = prepared
        self.emit = emit
        self.control = control or TrainControl()
        self.memory_check = memory_check
        self.poll_while_paused = poll_while_paused
        self.estimated_peak_bytes = estimated_peak_bytes
        # Through a weak reference: a reporter holding this run would make a reference cycle,
        # and a cycle keeps the model's memory until the garbage collector happens to run.
        safe_point = weakref.WeakMethod(self._safe_point)
        self.reporter = Reporter(emit, job_id, "train", lambda: _call(safe_point))
        # run state (set up here so every attribute has one type; execute() fills them in)
        self.data_dir = str(config.data)
        self.run_dir = Path()
        self.store: CheckpointStore | None = None
        self.total_iters = 0
        self.start_iter = 0
        self.step = 0  # the step whose batch is asked for next: steps before it are done
        self.optimizer: Any = None
        self.plan: BatchPlan | None = None
        self.sample_prompts: list[SamplePrompt] = []
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
        self.disk_message = ""
        self.limit_message = ""
        self.data_watch: DataWatch | None = None
        self._limit_passed = False  # paused once for memory_limit; a continue accepts it
        self.status = "completed"
        self.message = ""
        self.saved_on_stop = False
        self.last_eval_iter = -1
        self.step_started = time.perf_counter()
        self._optimizer_updates = 0  # the optimizer's step count when the norm was last read
        self.diagnosis = Diagnoser(warmup=config.warmup, learning_rate=config.learning_rate)
        self.has_val = bool(prepared.valid_set) and len(prepared.valid_set) > 0
        # The ranks of an mlx.launch'ed run (one of one otherwise); set when execute() starts.
        self.world = World()
        self._window_local_tokens = 0

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / "adapters"

    @property
    def _store(self) -> CheckpointStore:
        assert self.store is not None, "execute() opens the checkpoint store first"
        return self.store

    # -------------------------------------------------------------- safe points

    def _safe_point(self) -> None:
        """Between evaluation batches and generated tokens: guard, pause, stop.

        Across ranks an evaluation ends in a collective sum, so a stop waits for the next
        step boundary, where every rank decides together.
        """
        if self._hold(self.step, at_boundary=not self.world.distributed):
            raise Interrupted

    def _hold(self, step: int, at_boundary: bool) -> bool:
        """Run the memory guard and wait out a pause; True when the run should stop here.

        A stop is honoured only at an optimizer-step boundary: mid-accumulation the weights
        are between two updates.
        """
        self._poll_data_changes()
        if self.memory_check is not None:
            alert = self.memory_check()
            if alert is not None and alert.action == "pause" and not self.control.pause_requested:
                self.memory_message = alert.message
                if alert.suggestions:
                    self.memory_message += "; to use less memory: " + "; ".join(alert.suggestions)
                self.control.request_pause("memory")
        if self.control.pause_requested and self.world.distributed:
            self._pause_becomes_stop(step)
        if self.control.pause_requested:
            self._pause(step)
        return at_boundary and self.control.stop_requested

    def _pause_becomes_stop(self, step: int) -> None:
        """A paused rank would hold every other one inside a collective: stop and save instead."""
        reason = self.control.pause_reason or "user"
        why = {"memory": self.memory_message, "nan": self.nan_message}.get(reason) or reason
        self._note(
            f"rank {self.world.rank} asked to pause at step {step} ({why}); a run across "
            "ranks cannot pause, so every rank stops and rank 0 saves; resume it with --resume"
        )
        self.emit(ev.Log("warning", self.message))
        self.control.request_stop()

    def _pause(self, step: int) -> None:
        reason = self.control.pause_reason or "user"
        messages = {
            "user": f"paused; {words.USER_PAUSE}",
            "memory": "paused by the memory guard: "
            + (self.memory_message or "swap is growing or memory pressure is red")
            + f" (it continues by itself when memory recovers; {words.MEMORY_CONTINUE})",
            "nan": self.nan_message,
            "disk": self.disk_message,
            "memory_limit": self.limit_message,
        }
        self.emit(ev.TrainPaused(step, reason, messages.get(reason, reason)))
        self.control.wait_while_paused(self._poll_paused)
        if self.nan_seen and not self.control.stop_requested:
            self._store.roll_back(self.optimizer)
            self.nan_seen = False
        self.control.pause_reason = ""
        self.emit(ev.TrainResumed(step))

    def _poll_paused(self) -> None:
        if self.poll_while_paused is not None:
            self.poll_while_paused()
        self._poll_data_changes()
        # a disk-full pause ends by itself once there is room for the save again
        if self.control.pause_reason == "disk" and self._store.space_free_for_save(self.optimizer):
            self.emit(ev.Log("info", "disk space is free again: retrying the save"))
            self.control.request_resume()

    def _check_memory_limit(self, it: int) -> None:
        """MLX takes memory_limit as a guideline, not a cap: on the CPU back-end it goes on
        allocating past it (and a real out-of-memory there kills the process). So a run whose
        peak passes the limit the user set pauses, once, with the numbers."""
        limit_text = self.config.memory_limit
        if not limit_text or self._limit_passed:
            return
        limit = parse_size(limit_text, "memory_limit")
        peak = self.peak_memory * 1e9  # mlx-lm reports GB (1e9 bytes)
        if peak <= limit:
            return
        import mlx.core as mx

        self._limit_passed = True
        estimate = (
            f", estimated {self.estimated_peak_bytes / 1e9:.2f} GB before the run"
            if self.estimated_peak_bytes
            else ""
        )
        self.limit_message = (
            f"MLX's peak memory {peak / 1e9:.3f} GB at step {it} is past memory_limit "
            f"{limit_text} ({limit / 1e9:.3f} GB{estimate}); MLX on {mx.default_device()} treats "
            f"the limit as a guideline and does not stop by itself. {words.LIMIT_CHOICES} "
            "a resume with a smaller batch_size or "
            "max_seq_length (or a higher memory_limit) continues from it"
        )
        self.emit(ev.Log("warning", self.limit_message))
        self.control.request_pause("memory_limit")

    # -------------------------------------------------------------- saving

    def _wait_for_disk(self, error: DiskFullError, step: int) -> bool:
        """A save hit a full disk: say where and how much is needed, pause until there is room
        (or the user continues or stops). True when the save should be tried again."""
        self.disk_message = self._store.disk_full_message(error, step, self.optimizer)
        self.emit(ev.Log("error", self.disk_message))
        self.control.request_pause("disk")
        self._pause(step)
        return not self.control.stop_requested

    def _save(self, name: str, iteration: int, kind: str) -> Path | None:
        return self._store.save_adapter(name, iteration, kind, self.nan_seen)

    def _save_state(self, iteration: int, status: str) -> None:
        self._store.save_state(
            self.optimizer,
            {
                "iteration": iteration,
                "total_iters": self.total_iters,
                "status": status,
                "best_val_loss": self.best_val_loss,
                "best_iteration": self.best_iteration,
                "evals_without_improvement": self.evals_without_improvement,
                "trained_tokens": self.trained_tokens,
                "seed": self.config.seed,
                "world_size": self.world.size,
                "model_path": self.p.model_path,
                "diagnosis": self.diagnosis.state(),
            },
        )

    def _tell_data_changes(self) -> None:
        for message in self.data_watch.changes() if self.data_watch is not None else []:
            self.emit(ev.Log("warning", message))

    def _poll_data_changes(self) -> None:
        """At safe points: a dataset file changed is said when it is seen (DataWatch.poll)."""
        for message in self.data_watch.poll() if self.data_watch is not None else []:
            self.emit(ev.Log("warning", message))

    def _save_periodic(self, step: int) -> None:
        self._tell_data_changes()
        while True:
            try:
                with self.reporter.phase("save", "saving a checkpoint", total=3) as phase:
                    if self._save(f"{step:07d}_adapters.safetensors", step, "periodic"):
                        phase.advance(1)
                        self._save(ADAPTER_FILE, step, "periodic")
                        phase.advance(2)
                        self._save_state(step, "running")
                        phase.advance(3)
                        self._store.snapshot_good(self.optimizer, step)
                return
            except DiskFullError as e:
                if not self._wait_for_disk(e, step):
                    return  # stopped while waiting: the stop's own save is tried next

    def _save_on_stop(self, step: int) -> None:
        """The stop's save: first thing at the boundary, before any other work."""
        self.status = "stopped"
        self.saved_on_stop = True
        # No safe point inside: a second stop must not interrupt the save of the first.
        with Reporter(self.emit, self.reporter.job_id, "train").phase(
            "save", "saving the adapter", total=2
        ) as phase:
            try:
                if self._save(ADAPTER_FILE, step, "stop") is not None:
                    phase.advance(1)
                    self._save_state(step, "stopped")
                    phase.advance(2)
                else:
                    self.message = self._diverged_message()
            except DiskFullError as e:
                self._note(self._unsaved_message(e, step))

    # -------------------------------------------------------------- evaluation

    def _evaluate(self, iteration: int) -> bool:
        """Validation loss, best checkpoint, sample answers; True when early stopping fires.

        Raises `Interrupted` when a stop arrives between batches or tokens.
        """
        import mlx.core as mx

        cfg = self.config
        m = self.p.model
        try:
            total = batch_count(
                self.p.valid_set,
                cfg.batch_size,
                cfg.val_batches,
                world_size=self.world.size,
            )
            tic = time.perf_counter()
            with self.reporter.phase("validate", "validation", total=total) as phase:
                val_loss = evaluate_loss(
                    m,
                    self.p.valid_set,
                    cfg.batch_size,
                    cfg.val_batches,
                    cfg.max_seq_length,
                    on_batch=phase.advance,
                    rank=self.world.rank,
                    world_size=self.world.size,
                )
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
            self._emit_watched(ev.ValReport(iteration, val_loss, val_time, is_best))
            if is_best and iteration > 0:
                try:
                    with self.reporter.phase("save", "saving the best checkpoint"):
                        self._save(BEST_FILE, iteration, "best")
                except DiskFullError as e:
                    self.emit(ev.Log("warning", f"best checkpoint not saved: {e.strerror}"))
            if iteration > self.start_iter:
                self.evals_without_improvement = (
                    0 if improved else self.evals_without_improvement + 1
                )
            if self.sample_prompts and self.world.is_writer:
                items = answer_samples(m, self.p.tokenizer, self.sample_prompts, self.reporter)
                if items:
                    self.emit(ev.SamplePredictions(iteration, tuple(items)))
        finally:
            m.train()
            mx.clear_cache()
        if self.world.distributed:
            # rank 0 alone answered the sample prompts: wait for it here, so the other ranks
            # do not count that wait as the next step's time (their tokens/s)
            any_rank(self.world, False)
        patience = cfg.early_stopping_patience
        return patience > 0 and self.evals_without_improvement >= patience

    def _eval_due(self, step: int, at_boundary: bool) -> bool:
        every = self.config.steps_per_eval
        return (
            self.has_val
            and at_boundary
            and (
                (step == self.start_iter and step == 0)
                or (step > self.start_iter and step % every == 0)
            )
        )

    # -------------------------------------------------------------- the loop

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        import mlx.core as _mx

        cfg = self.config
        plan = self.plan
        assert plan is not None, "execute() builds the batch plan first"
        step = self.start_iter  # steps done
        while step < self.total_iters:
            self.step = step
            at_boundary = step % cfg.grad_accumulation_steps == 0
            try:
                if at_boundary and self._stop_agreed():
                    raise Interrupted
                if (
                    step > self.start_iter
                    and at_boundary
                    and step % cfg.save_every == 0
                    and not self.nan_seen
                ):
                    self._save_periodic(step)
                if self._eval_due(step, at_boundary):
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
                # Across ranks a stop asked here is taken at the next boundary, together.
                if self._hold(step, at_boundary and not self.world.distributed):
                    raise Interrupted
            except Interrupted:
                self._save_on_stop(step)
                return
            # The RNG (dropout) is a pure function of (seed, step): MLX 0.32 cannot restore a
            # saved key, and this makes resume exact without one.
            _mx.random.seed((cfg.seed * 1_000_003 + step) % 2**32)
            self.step_started = time.perf_counter()
            batch = plan.make_batch(plan.batch_indices(step))
            if self.world.distributed:
                self._window_local_tokens += (
                    int(batch[2].sum().item())  # packed: the scored tokens' weights
                    if cfg.pack
                    else batch_tokens(batch[1], int(batch[0].shape[1]))
                )
            yield batch
            step += 1
        self.step = step

    def _stop_agreed(self) -> bool:
        """Whether to stop at this boundary; across ranks, all of them when any asks (a collective)."""
        return any_rank(self.world, self.control.stop_requested)

    # -------------------------------------------------------------- mlx-lm's callback

    def _emit_watched(self, event: ev.Event) -> None:
        """Emit a report, then the advice it triggers (each kind once per run)."""
        self.emit(event)
        for advice in self.diagnosis.feed(event):
            self.emit(advice)

    def _fresh_grad_norm(self) -> float | None:
        """The norm the step just measured; None when the step did not update (accumulation)."""
        state = self.optimizer.state
        updates = int(state["step"].item())
        if updates == self._optimizer_updates or GRAD_NORM_KEY not in state:
            return None
        self._optimizer_updates = updates
        return float(state[GRAD_NORM_KEY].item())

    def on_train_loss_report(self, info: dict[str, Any]) -> None:
        it = self.start_iter + int(info["iteration"])
        loss = float(info["train_loss"])
        grad_norm = self._fresh_grad_norm()
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
            good = self._store.good_iteration
            self.nan_message = (
                f"loss became {loss} at step {it}: {words.NAN_PAUSED} The last good adapter "
                f"(step {good}) is kept on disk and will not be overwritten. "
                f"{words.NAN_CHOICES} Lower the learning rate "
                "(--learning-rate) or clip the gradients (--max-grad-norm) before training again."
            )
            self.emit(ev.Log("error", self.nan_message))
            self.control.request_pause("nan")
        self._check_memory_limit(it)
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
                grad_norm=grad_norm,
            )
        )
        self.window.append(info | {"iteration": it, "train_loss": loss, "grad_norm": grad_norm})
        if it % self.config.steps_per_report == 0 or it == self.total_iters:
            self._report_window(it, info)

    def _report_window(self, it: int, info: dict[str, Any]) -> None:
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
        norms = [x["grad_norm"] for x in w if x["grad_norm"] is not None]
        self._emit_watched(
            ev.TrainReport(
                iteration=it,
                total_iters=self.total_iters,
                train_loss=mean_loss,
                learning_rate=float(info["learning_rate"]),
                tokens_per_second=toks / total_time if total_time else 0.0,
                iterations_per_second=len(w) / total_time if total_time else 0.0,
                trained_tokens=self.trained_tokens,
                peak_memory=float(info["peak_memory"]),
                grad_norm=sum(norms) / len(norms) if norms else None,
            )
        )
        self.window = []
        if self.world.distributed:
            self._report_ranks(it, total_time, float(info["peak_memory"]))

    def _report_ranks(self, it: int, window_time: float, peak_memory: float) -> None:
        """Each rank's tokens/s and peak memory, gathered on every rank (mlx-lm calls the
        report on every rank at the same step); rank 0 emits them."""
        tps = self._window_local_tokens / window_time if window_time else 0.0
        self._window_local_tokens = 0
        rows = gather_floats(self.world, [tps, peak_memory])
        if self.world.is_writer:
            self.emit(
                ev.RankReport(
                    iteration=it,
                    tokens_per_second=tuple(r[0] for r in rows),
                    peak_memory=tuple(r[1] for r in rows),
                )
            )

    def on_val_loss_report(self, info: dict[str, Any]) -> None:  # we evaluate ourselves
        pass

    # -------------------------------------------------------------- setup

    def _prepare(self) -> None:
        import mlx.core as mx

        cfg = self.config
        m = self.p.model
        # The limits are MLX's process-wide: kept for this run only (see execute), so a later
        # run or chat in the same process does not inherit them.
        if cfg.memory_limit:
            previous = mx.set_memory_limit(parse_size(cfg.memory_limit, "memory_limit"))
            self._restore_limits.append(lambda: mx.set_memory_limit(previous))
        if cfg.cache_limit:
            previous_cache = mx.set_cache_limit(parse_size(cfg.cache_limit, "cache_limit"))
            self._restore_limits.append(lambda: mx.set_cache_limit(previous_cache))

        self.world = current_world()
        if (cfg.nproc > 1 or cfg.hosts) and not self.world.distributed:
            raise TrainingError(
                f"nproc is {cfg.nproc}{f' and hosts is {cfg.hosts}' if cfg.hosts else ''}, but this process "
                "is not one of several launched ranks: `mlxtui train --nproc N` (or --hosts FILE) starts "
                "them through mlx.launch; the dashboard and the Python API train in one process (nproc 1)"
            )
        if self.world.is_writer or cfg.resume_run:
            self.run_dir, resume_state = open_run_dir(cfg, self.p.model_path)
        else:
            # rank 0 makes the run folder; this rank never writes, so it needs no name
            self.run_dir, resume_state = Path(cfg.runs_dir), None
        if self.world.is_writer:
            self.store = CheckpointStore(
                self.run_dir, m, self.emit, user_adapter_dir(cfg, self.run_dir, resume_state)
            )
        else:
            self.store = ReadOnlyStore(self.run_dir, m, self.emit)
        self.plan = BatchPlan(
            self.p.train_set,
            cfg.batch_size,
            cfg.max_seq_length,
            cfg.seed,
            rank=self.world.rank,
            world_size=self.world.size,
            pack=cfg.pack,
        )
        padding = self.plan.padding_fraction()
        if not cfg.pack and padding > PACK_SUGGESTED_ABOVE:
            self.emit(
                ev.Log(
                    "info",
                    f"{padding:.0%} of the batches' tokens are padding: `pack: true` (--pack) "
                    "places whole examples into full rows instead (faster; see benchmarks/README.md)",
                )
            )
        if cfg.pack:
            self.emit(
                ev.Log(
                    "info",
                    f"pack: {len(self.plan.rows)} rows of {self.plan.row_tokens} tokens, "
                    f"{1 - padding:.0%} of them real; {cfg.batch_size} rows a step"
                    + (
                        f" (rows shorter than max_seq_length {cfg.max_seq_length}: on the CPU "
                        "attention costs each row its length squared)"
                        if self.plan.row_tokens < cfg.max_seq_length
                        else ""
                    ),
                )
            )
            if self.plan.shorter_rows:
                self.emit(ev.Log("info", f"pack: {self.plan.shorter_rows}"))
            # packed, an epoch is len(plan) steps of batch_size rows (more examples per step)
            self.total_iters = cfg.resolved_iters(len(self.plan) * cfg.batch_size)
        elif cfg.epochs is not None and self.world.distributed:
            # an epoch is over when the ranks together have seen the set once
            self.total_iters = epochs_to_iters(
                cfg.epochs, len(self.p.train_set), cfg.batch_size * self.world.size
            )
        else:
            self.total_iters = cfg.resolved_iters(len(self.p.train_set))

        mx.random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        apply_adapters(m, cfg)
        # the CPU: half-precision weights that are promoted at every matmul become float32
        # once, for this run (cpu_weights.py)
        restore_weights = widen_half_weights(m, cfg.fine_tune_type)
        if restore_weights is not None:
            self._restore_limits.append(restore_weights)
        if cfg.resume_adapter_file:
            path = Path(cfg.resume_adapter_file)
            if not path.is_file():
                raise TrainingError(f"resume_adapter_file: {path} does not exist")
            m.load_weights(str(path), strict=False)
        self.optimizer = build_optimizer(cfg, self.total_iters)
        self.start_iter = 0
        if resume_state is not None:
            self.store.restore_state(self.optimizer, resume_state)
            self.best_val_loss = resume_state.get("best_val_loss")
            self.best_iteration = resume_state.get("best_iteration")
            self.evals_without_improvement = int(resume_state.get("evals_without_improvement", 0))
            self.trained_tokens = int(resume_state.get("trained_tokens", 0))
            self.start_iter = int(resume_state["iteration"])
            self.diagnosis = Diagnoser.restore(
                resume_state.get("diagnosis"), cfg.warmup, cfg.learning_rate
            )
            saved_world = int(resume_state.get("world_size", 1))
            if saved_world != self.world.size:
                self.emit(
                    ev.Log(
                        "warning",
                        f"this run was saved with {saved_world} rank(s) and resumes with {self.world.size}: "
                        f"a step now takes batch_size x {self.world.size} examples, so the steps after "
                        f"{self.start_iter} differ from an uninterrupted run's (resume with "
                        f"--nproc {saved_world} to continue it exactly)",
                    )
                )
            if self.start_iter >= self.total_iters:
                raise TrainingError(
                    f"{self.run_dir}: the run already reached step {self.start_iter} of {self.total_iters}; "
                    "raise iters (or epochs) to train further"
                )
        self.step = self.start_iter
        self._optimizer_updates = int(self.optimizer.state["step"].item())
        self.store.snapshot_good(self.optimizer, self.start_iter)

        self.data_watch = DataWatch(Path(self.data_dir))
        self.sample_prompts = sample_prompts(Path(self.data_dir), cfg.sample_prompts)
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
        if not self.world.is_writer:
            return
        atomic_write_text(self.run_dir / "config.yaml", saved_cfg.to_yaml())
        atomic_write_text(
            self.adapter_dir / "adapter_config.json",
            json.dumps(adapter_config_dict(saved_cfg, self.p.model_path), indent=4, default=str),
        )
        self.store.mirror("adapter_config.json")

    # -------------------------------------------------------------- the job

    def execute(self) -> TrainResult:
        self._restore_limits: list[Callable[[], Any]] = []
        try:
            return self._execute()
        finally:
            for restore in self._restore_limits:
                restore()

    def _execute(self) -> TrainResult:
        import mlx.core as mx
        from mlx_lm.tuner import trainer

        cfg = self.config
        m = self.p.model
        self._prepare()
        n_trainable = sum(v.size for _, v in flat(m.trainable_parameters()))
        n_total = sum(v.size for _, v in flat(m.parameters()))
        # TrainStarted names the run folder, and the metrics writer opens it: rank 0's alone.
        emit_started = self.emit if self.world.is_writer else (lambda event: None)
        emit_started(
            ev.TrainStarted(
                run_dir=str(self.run_dir),
                total_iters=self.total_iters,
                start_iter=self.start_iter,
                trainable_parameters=int(n_trainable),
                total_parameters=int(n_total),
                fine_tune_type=cfg.fine_tune_type,
                estimated_peak_bytes=self.estimated_peak_bytes,
            )
        )
        for advice in self.diagnosis.earlier():  # a resumed run: what was said before the stop
            emit_started(advice)
        mx.reset_peak_memory()

        scratch = self.run_dir / STATE_DIR / SCRATCH_FILE
        args = trainer.TrainingArgs(
            batch_size=cfg.batch_size,
            iters=self.total_iters - self.start_iter,
            val_batches=cfg.val_batches,
            steps_per_report=1,
            steps_per_eval=10**12,
            steps_per_save=10**12,
            max_seq_length=cfg.max_seq_length,
            adapter_file=str(scratch),
            grad_checkpoint=cfg.grad_checkpoint,
            grad_accumulation_steps=cfg.grad_accumulation_steps,
            clear_cache_threshold=clear_cache_threshold(cfg),
        )
        batches = self._batches()
        from mlxtui.core.training.dequant_matmul import float_matmuls

        with (
            _mlx_lm_quiet_and_restored(m),
            self._scratch_save_may_fail(),
            packed_attention(m) if cfg.pack else nullcontext(),
            float_matmuls(m),
            reductions_on_this_thread(),
        ):
            try:
                trainer.train(
                    model=m,
                    optimizer=self.optimizer,
                    train_dataset=self.p.train_set,
                    val_dataset=None,
                    args=args,
                    loss=packed_train_loss if cfg.pack else train_loss,
                    # mlx-lm passes comm_group=world; our plan already holds this rank's share
                    iterate_batches=lambda **kw: batches,
                    training_callback=cast(Any, self),  # duck-typed TrainingCallback
                )
            except RuntimeError as e:
                lost = rank_failure_text(e, self.world)
                if lost is None:
                    raise
                raise TrainingError(
                    f"{lost} (step {self._store.good_iteration}, in {self.run_dir})"
                    if self.world.is_writer
                    else lost
                ) from None
        final_iter = self.train_losses[-1][0] if self.train_losses else self.start_iter
        if self.status == "completed" and final_iter < self.total_iters:
            self.status = "stopped"
        if not self.saved_on_stop:
            self._finish(final_iter)
        scratch.unlink(missing_ok=True)
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
        )
        if cfg.test:
            self._test(result)
        result.message = self.message
        self.emit(result.finished_event())
        return result

    @contextmanager
    def _scratch_save_may_fail(self) -> Iterator[None]:
        """mlx-lm's train() ends by writing the weights to our scratch file, which nobody reads:
        on a full disk that write must not fail a run whose own saves are handled."""
        try:
            yield
        except (OSError, RuntimeError) as e:
            loop_over = (
                self.saved_on_stop or self.step >= self.total_iters or self.status != "completed"
            )
            if isinstance(e, DiskFullError) or not is_disk_full(e) or not loop_over:
                raise

    def _finish(self, final_iter: int) -> None:
        """A run that ended by itself (completed, early stopped): final validation, final save."""
        if (
            self.has_val
            and self.last_eval_iter != final_iter
            and final_iter > self.start_iter
            and not self.nan_seen
        ):
            self.last_eval_iter = final_iter
            try:
                self._evaluate(final_iter)
            except Interrupted:
                self._note(f"the final validation was skipped: {words.STOP_PRESSED}")
        self._tell_data_changes()
        kind = "final" if self.status == "completed" else "stop"
        saved: Path | None = None
        while True:
            try:
                with Reporter(self.emit, self.reporter.job_id, "train").phase(
                    "save", "saving the adapter"
                ):
                    saved = self._save(ADAPTER_FILE, final_iter, kind)
                    if saved is not None:
                        self._save_state(final_iter, self.status)
                break
            except DiskFullError as e:
                if not self._wait_for_disk(e, final_iter):
                    self.status = "stopped"
                    self._note(self._unsaved_message(e, final_iter))
                    return
        if saved is None:
            self.status = "failed" if self.status == "completed" else self.status
            self.message = (
                self.message
                or "the final weights were not finite; the last good checkpoint is kept"
            )

    def _diverged_message(self) -> str:
        good = self._store.good_iteration
        if good == 0:
            return (
                "the weights were not finite, so they were not saved; no checkpoint was saved "
                "before the loss diverged: start again with a lower learning rate"
            )
        return (
            "the weights were not finite, so they were not saved; the last good checkpoint "
            f"(step {good}) is kept, and `mlxtui train --resume {self.run_dir} --learning-rate "
            "LOWER` continues from it"
        )

    def _unsaved_message(self, error: DiskFullError, step: int) -> str:
        return (
            f"the adapter of step {step} could not be saved (disk full at {error.path}); the last "
            f"checkpoint, of step {self._store.good_iteration}, is intact in {self.adapter_dir}"
        )

    def _note(self, text: str) -> None:
        self.message = f"{self.message}; {text}" if self.message else text

    def _test(self, result: TrainResult) -> None:
        if self.status == "stopped" or any_rank(self.world, self.control.stop_requested):
            self._note(
                "the test evaluation was skipped because the run was stopped; "
                f"run `mlxtui eval --adapter-path {self.adapter_dir}` when you want it"
            )
            return
        try:
            result.test_loss, result.test_ppl = self.run_test()
        except Interrupted:
            self._note(
                "the test evaluation was stopped; "
                f"run `mlxtui eval --adapter-path {self.adapter_dir}` when you want it"
            )

    def run_test(self) -> tuple[float, float]:
        if not self.p.test_set:
            raise TrainingError(f"test: {self.data_dir}/test.jsonl is missing or empty")
        cfg = self.config
        w = self.world
        total = batch_count(
            self.p.test_set, cfg.batch_size, cfg.test_batches, world_size=w.size
        )
        with self.reporter.phase("test", "test evaluation", total=total) as phase:
            loss, ppl = test_loss(
                self.p.model,
                self.p.test_set,
                cfg.batch_size,
                cfg.test_batches,
                cfg.max_seq_length,
                on_batch=phase.advance,
                rank=w.rank,
                world_size=w.size,
            )
        self.emit(ev.TestResult(loss, ppl, str(self.adapter_dir)))
        return loss, ppl
