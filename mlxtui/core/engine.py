"""THE MLX thread: one long-lived thread, a job queue, events out.

Since MLX 0.31.2 streams are thread-local, so every MLX call (load, train, evaluate,
generate, fuse) runs here. Other threads only `submit()` jobs, flip control flags
(pause/stop/cancel) and receive events through the `on_event` callback, which is called on
this thread: subscribers must hand events over to their own thread (Textual's
`post_message` is thread-safe; a queue works for anything else).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig

EventSink = Callable[[ev.Event], None]


# ------------------------------------------------------------------ jobs


@dataclass
class Job:
    kind: str = field(init=False, default="job")
    # set by Engine.cancel_generation(), whether the job is still queued or already running
    cancel: threading.Event = field(init=False, default_factory=threading.Event, repr=False, compare=False)


@dataclass
class LoadModel(Job):
    spec: str | None = None
    dequantize: bool | None = None
    adapter_path: str | None = None
    kind: str = field(init=False, default="load")


@dataclass
class Train(Job):
    config: TrainConfig = field(default_factory=TrainConfig.quick_start)
    kind: str = field(init=False, default="train")


@dataclass
class Generate(Job):
    messages: list[dict[str, str]] = field(default_factory=list)
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    weights: str = "adapter"  # "adapter" | "base" | path to a .safetensors file
    slot: str = ""
    kind: str = field(init=False, default="generate")


@dataclass
class Compare(Job):
    """One prompt answered by the base (slot A) and by the adapter (slot B), no reload."""

    messages: list[dict[str, str]] = field(default_factory=list)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    kind: str = field(init=False, default="compare")


@dataclass
class Evaluate(Job):
    """Test loss/perplexity and before/after answers, base vs the current adapter."""

    data: str | None = None
    n: int = 20
    max_tokens: int = 128
    batch_size: int = 4
    max_seq_length: int = 2048
    kind: str = field(init=False, default="evaluate")


@dataclass
class Benchmark(Job):
    prompt: str | None = None
    runs: int = 5
    max_tokens: int = 128
    kind: str = field(init=False, default="benchmark")


@dataclass
class Fuse(Job):
    """Fuse the current (or given) adapter into its base; optionally also write a GGUF file."""

    save_path: str = "fused_model"
    adapter_path: str | None = None
    dequantize: bool = False
    gguf_path: str | None = None
    force: bool = False
    kind: str = field(init=False, default="fuse")


@dataclass
class ExportGGUF(Job):
    out_file: str = "model.gguf"
    adapter_path: str | None = None
    force: bool = False
    kind: str = field(init=False, default="export")


@dataclass
class Estimate(Job):
    """Estimate the peak memory of training `config` on the loaded model (emits MemoryEstimated)."""

    config: TrainConfig = field(default_factory=TrainConfig.quick_start)
    kind: str = field(init=False, default="estimate")


@dataclass
class Call(Job):
    """Run `fn(engine)` on the MLX thread; its return value is the job's result."""

    fn: Callable[[Engine], Any] = lambda engine: None
    description: str = ""
    kind: str = field(init=False, default="call")


class EngineError(RuntimeError):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


_SHUTDOWN = object()
_JOBS_ALLOWED_WHILE_PAUSED = ("generate", "compare")
_CANCELLABLE = ("generate", "compare", "evaluate")


class Engine:
    def __init__(
        self,
        on_event: EventSink,
        memory_probe: Any = None,
        memory_interval: float = 1.0,
    ) -> None:
        self._sink = on_event
        self._queue: queue.Queue[tuple[int, Job] | object] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._cancellable: dict[int, Job] = {}  # queued or running jobs that esc can stop
        self._lock = threading.Lock()
        self._deferred: list[tuple[int, Job]] = []
        self.control: Any = None  # TrainControl of the running train job
        self.memory_interval = memory_interval
        self._memory_probe = memory_probe
        self._last_sample = 0.0
        self.memory_history: Any = None
        self.guard: Any = None
        self.current_job: str | None = None
        # model state, owned by the engine thread
        self.model: Any = None
        self.tokenizer: Any = None
        self.model_info: Any = None
        self.model_spec: str | None = None
        self.adapter_path: str | None = None
        self.last_run_dir: str | None = None

    # -------------------------------------------------------------- any thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mlx-engine", daemon=True)
            self._thread.start()

    def submit(self, job: Job) -> int:
        job_id = next(self._ids)
        if job.kind in _CANCELLABLE:
            with self._lock:
                self._cancellable[job_id] = job
        self._queue.put((job_id, job))
        return job_id

    def pause(self) -> None:
        if self.control is not None:
            self.control.request_pause("user")

    def resume(self) -> None:
        if self.control is not None:
            if self.guard is not None:
                self.guard.reset()  # a person chose to continue: watch afresh
            self.control.request_resume()

    def stop(self) -> None:
        if self.control is not None:
            self.control.request_stop()
        self.cancel_generation()

    def cancel_generation(self) -> None:
        """Stop the running answer (or evaluation) and drop the ones still queued."""
        with self._lock:
            for job in self._cancellable.values():
                job.cancel.set()

    @property
    def training(self) -> bool:
        return self.control is not None

    @property
    def paused(self) -> bool:
        return self.control is not None and self.control.pause_requested

    def shutdown(self, timeout: float = 10.0) -> None:
        if self.control is not None:
            self.control.request_stop()
        self.cancel_generation()
        self._queue.put(_SHUTDOWN)
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                _wait_for_native_exit(self._thread)
            self._thread = None

    def run_sync(self, job: Job, timeout: float | None = None) -> Any:
        """Submit a job and wait for its result (headless use and the Python API)."""
        done = threading.Event()
        box: dict[str, Any] = {}
        outer = self._sink

        def watch(event: ev.Event) -> None:
            outer(event)
            if isinstance(event, ev.JobFinished | ev.JobFailed) and event.job_id == box.get("id"):
                box["event"] = event
                done.set()

        self._sink = watch
        try:
            box["id"] = self.submit(job)
            if not done.wait(timeout):
                raise EngineError(f"{job.kind} did not finish within {timeout} s")
        finally:
            self._sink = outer
        event = box["event"]
        if isinstance(event, ev.JobFailed):
            raise EngineError(event.message, event.hint)
        return event.result

    # -------------------------------------------------------------- engine thread

    def emit(self, event: ev.Event) -> None:
        try:
            self._sink(event)
        except Exception:  # a subscriber's bug must not kill the MLX thread
            traceback.print_exc()

    def _loop(self) -> None:
        while True:
            item = self._next_item()
            if item is _SHUTDOWN:
                break
            if item is None:
                self.sample_memory()
                continue
            job_id, job = cast(tuple[int, Job], item)
            self._run(job_id, job)

    def _next_item(self) -> Any:
        if self._deferred:
            return self._deferred.pop(0)
        try:
            return self._queue.get(timeout=max(self.memory_interval, 0.05))
        except queue.Empty:
            return None

    def _run(self, job_id: int, job: Job) -> None:
        from mlxtui.core.fileio import DiskFullError

        self.current_job = job.kind
        self.emit(ev.JobStarted(job_id, job.kind, getattr(job, "description", "")))
        try:
            result = self._dispatch(job_id, job)
        except EngineError as e:
            self.emit(ev.JobFailed(job_id, job.kind, str(e), e.hint))
        except ConfigError as e:
            self.emit(
                ev.JobFailed(
                    job_id,
                    job.kind,
                    str(e),
                    "fix that value (the flag, the Config pane field or the YAML key of that name)",
                )
            )
        except _user_errors() as e:
            # a user's mistake (bad model path, bad GGUF, no test set…): the message says it all
            self.emit(ev.JobFailed(job_id, job.kind, str(e), _hint_for(e)))
        except DiskFullError as e:
            self.emit(
                ev.JobFailed(
                    job_id,
                    job.kind,
                    str(e.strerror),
                    "free disk space; nothing saved before was lost",
                )
            )
        except Exception as e:  # noqa: BLE001 - reported, never fatal to the engine
            hint = _hint_for(e)
            self.emit(ev.JobFailed(job_id, job.kind, f"{type(e).__name__}: {e}", hint))
            traceback.print_exc()
        else:
            self.emit(ev.JobFinished(job_id, job.kind, result))
        finally:
            self.current_job = None
            self.control = None
            with self._lock:
                self._cancellable.pop(job_id, None)

    def _dispatch(self, job_id: int, job: Job) -> Any:
        if isinstance(job, LoadModel):
            return self._load(job_id, job.spec, job.dequantize, job.adapter_path)
        if isinstance(job, Train):
            return self._train(job_id, job.config)
        if isinstance(job, Generate):
            return self._generate(job)
        if isinstance(job, Compare):
            return self._compare(job)
        if isinstance(job, Estimate):
            return self.estimate(job.config)
        if isinstance(job, Evaluate):
            return self._evaluate(job_id, job)
        if isinstance(job, Benchmark):
            return self._benchmark(job)
        if isinstance(job, Fuse | ExportGGUF):
            return self._export(job_id, job)
        if isinstance(job, Call):
            return job.fn(self)
        raise EngineError(f"unknown job {job!r}")

    # -------------------------------------------------------------- memory

    def sample_memory(self, force: bool = False) -> Any:
        now = time.monotonic()
        if not force and now - self._last_sample < self.memory_interval:
            return None
        self._last_sample = now
        try:
            from mlxtui.core import memory

            if self._memory_probe is None:
                self._memory_probe = memory.SystemMemoryProbe()
            if self.memory_history is None:
                self.memory_history = memory.MemoryHistory()
            sample = self._memory_probe.sample()
            self.memory_history.append(sample)
        except Exception:  # noqa: BLE001 - memory display must never stop training
            return None
        self.emit(ev.MemorySampled(sample))
        return sample

    def _memory_check(self, config: TrainConfig) -> Callable[[], ev.MemoryAlert | None]:
        from mlxtui.core import guard as guard_mod

        self.guard = guard_mod.MemoryGuard(
            policy=cast(Any, config.memory_guard), swap_growth_mb_per_min=config.swap_growth_mb_per_min
        )

        def check() -> ev.MemoryAlert | None:
            sample = self.sample_memory()
            if sample is None:
                return None
            decision = self.guard.check(sample, self.memory_history)
            if decision.action in ("warn", "pause"):
                alert = ev.MemoryAlert(
                    level=sample.pressure if sample.pressure != "green" else "yellow",
                    action=decision.action,
                    message=decision.reason,
                    suggestions=tuple(self._suggestions(config)),
                )
                self.emit(alert)
                return alert
            return None

        return check

    def _suggestions(self, config: TrainConfig) -> list[str]:
        from mlxtui.core.memory import format_bytes

        try:
            est = self.estimate(config, emit=False)
        except Exception:  # noqa: BLE001 - advice only
            return [
                "halve the batch size",
                "train fewer layers",
                "turn gradient checkpointing on",
                "lower max_seq_length",
            ]
        return [f"{label}: about {format_bytes(b)} peak" for label, b in est.options]

    def _estimate_inputs(self, config: TrainConfig) -> Any:
        from mlxtui.core import estimate

        keys = config.lora_parameters.get("keys")
        return estimate.EstimateInputs(
            fine_tune_type=config.fine_tune_type,  # type: ignore[arg-type]
            num_layers=config.num_layers,
            lora_rank=config.lora_rank,
            lora_keys=tuple(keys) if keys else None,
            optimizer=config.optimizer,
            batch_size=config.batch_size,
            token_lengths=tuple(self._token_lengths(config)),
            max_seq_length=config.max_seq_length,
            grad_checkpoint=config.grad_checkpoint,
        )

    def _token_lengths(self, config: TrainConfig) -> list[int]:
        """Real token lengths of the training set (cached per data folder and tokenizer)."""
        if (
            self._train_lengths_for == (str(config.data), id(self.tokenizer))
            and self._train_lengths
        ):
            return self._train_lengths
        from mlxtui.core.training import load_datasets

        train, _, _ = load_datasets(config, _resolve_data(config.data), self.tokenizer)
        n = min(len(train), 5000)  # the longest batches of a big set show up in a sample
        self._train_lengths = [len(train[i][0]) for i in range(n)]
        self._train_lengths_for = (str(config.data), id(self.tokenizer))
        return self._train_lengths

    def estimate(self, config: TrainConfig, emit: bool = True) -> ev.MemoryEstimated:
        from mlxtui.core import estimate

        self._ensure_model()
        profile = estimate.profile_model(self.model)
        inputs = self._estimate_inputs(config)
        sample = self.sample_memory(force=True)
        available = int(sample.system_available) if sample is not None else None
        est = estimate.estimate_peak(profile, inputs, available_bytes=available)
        options = tuple(
            (o.label, int(o.estimate_bytes))
            for o in estimate.suggest_options(profile, inputs, available)
        )
        event = ev.MemoryEstimated(
            total_bytes=int(est.total_bytes),
            breakdown={k: int(v) for k, v in est.breakdown.items()},
            verdict=est.verdict,
            available_bytes=est.available_bytes,
            note=est.note,
            options=options,
        )
        if emit:
            self.emit(event)
        return event

    _train_lengths: list[int] = []
    _train_lengths_for: tuple[str, int] | None = None

    # -------------------------------------------------------------- jobs

    def _load(
        self, job_id: int, spec: str | None, dequantize: bool | None, adapter_path: str | None
    ) -> Any:
        from mlxtui.core import models

        def progress(message: str, done: int = 0, total: int = 0) -> None:
            self.emit(ev.JobProgress(job_id, "load", message, done, total))

        if spec in (None, "", "demo"):
            progress("preparing the demo model (first run converts it once)")
            models.demo_model_dir(progress=progress)
        if dequantize is None:
            dequantize = models.wants_dequantize("auto")
        try:
            model, tokenizer, info = models.load_model(
                spec, dequantize=bool(dequantize), adapter_path=adapter_path
            )
        except models.ModelError as e:
            raise EngineError(
                str(e),
                "check the model field: a local MLX folder, a .gguf file, a Hugging Face id, or empty for the demo",
            ) from None
        self.model, self.tokenizer, self.model_info = model, tokenizer, info
        self.model_spec = spec
        self.adapter_path = adapter_path
        self.emit(_model_loaded(info, adapter_path))
        self.sample_memory(force=True)
        return info

    def _train(self, job_id: int, config: TrainConfig) -> Any:

        from mlxtui.core import models
        from mlxtui.core.training import (
            Prepared,
            TrainControl,
            TrainingError,
            TrainRun,
            load_datasets,
        )

        config.validate()
        if config.resume_run and not (Path(config.resume_run) / "state" / "state.json").is_file():
            raise EngineError(
                f"{config.resume_run}: no resume state (state/state.json): not a run folder mlxtui wrote",
                "give a folder that `mlxtui runs` lists, or --resume-adapter-file for a bare adapter",
            )
        if config.resume_adapter_file and not Path(config.resume_adapter_file).is_file():
            raise EngineError(
                f"resume_adapter_file: {config.resume_adapter_file} does not exist",
                "give the path of an adapters .safetensors file",
            )
        if config.model not in (None, "", "demo"):
            try:  # cheap for local paths: a wrong model path is reported before the data is read
                models.resolve_model(config.model)
            except models.ModelError as e:
                raise EngineError(str(e), "check the model field") from None
        data_dir = _resolve_data(config.data)
        self._validate_data(job_id, data_dir, config)
        deq = models.wants_dequantize(config.dequantize, config.fine_tune_type)
        self.emit(ev.JobProgress(job_id, "train", "loading the model"))
        if config.model in (None, "", "demo"):

            def progress(message: str, done: int = 0, total: int = 0) -> None:
                self.emit(ev.JobProgress(job_id, "train", message, done, total))

            models.demo_model_dir(progress=progress)
        try:
            model, tokenizer, info = models.load_model(config.model, dequantize=deq)
        except models.ModelError as e:
            raise EngineError(str(e), "check the model field") from None
        # Free the previous model before training this one.
        self.model = self.tokenizer = None
        self.model, self.tokenizer, self.model_info = model, tokenizer, info
        self.model_spec = config.model
        self.adapter_path = None
        self.emit(_model_loaded(info, None))
        self.emit(ev.JobProgress(job_id, "train", "tokenizing the dataset"))
        try:
            train_set, valid_set, test_set = load_datasets(config, data_dir, tokenizer)
        except TrainingError as e:
            raise EngineError(str(e), f"run `mlxtui data validate {data_dir}`") from None
        self._train_lengths = [len(train_set[i][0]) for i in range(len(train_set))]
        too_long = [n for n in self._train_lengths if n > config.max_seq_length]
        if too_long:
            self.emit(
                ev.Log(
                    "warning",
                    f"{len(too_long)} of {len(self._train_lengths)} training examples are longer than "
                    f"max_seq_length {config.max_seq_length} (longest {max(too_long)} tokens): they will be "
                    "truncated; raise max_seq_length or split them (`mlxtui data stats` lists them)",
                )
            )
        self._train_lengths_for = (str(data_dir), id(tokenizer))
        estimated = self._estimate_bytes(config.with_values(data=str(data_dir)))
        prepared = Prepared(
            model=model,
            tokenizer=tokenizer,
            model_path=str(info.path),
            train_set=train_set,
            valid_set=valid_set,
            test_set=test_set,
            dequantized=deq,
            quantization_bits=info.quantization_bits,
        )
        self.control = TrainControl()
        from mlxtui.core.reporting import reporting_emit

        run = TrainRun(
            config if config.hf_dataset is not None else config.with_values(data=str(data_dir)),
            prepared,
            reporting_emit(self.emit, config),
            control=self.control,
            memory_check=self._memory_check(config)
            if config.memory_guard != "off"
            else self._sample_only,
            poll_while_paused=self._poll_while_paused,
            estimated_peak_bytes=estimated,
        )
        try:
            result = run.execute()
        except TrainingError as e:
            raise EngineError(str(e)) from None
        self.adapter_path = str(result.adapter_path)
        self.last_run_dir = str(result.run_dir)
        model.eval()
        _copy_to_user_adapter_path(config, result.adapter_path, self.emit)
        return result

    def _sample_only(self) -> None:
        self.sample_memory()
        return None

    def _estimate_bytes(self, config: TrainConfig) -> int | None:
        try:
            return self.estimate(config).total_bytes
        except Exception:  # noqa: BLE001 - an estimate is advice, never a blocker
            traceback.print_exc()
            return None

    def _validate_data(self, job_id: int, data_dir: Path, config: TrainConfig) -> None:
        from mlxtui.core.data import keys_from, validate_dataset

        self.emit(ev.JobProgress(job_id, "train", f"validating {data_dir}"))
        report = validate_dataset(
            data_dir,
            tokenizer=None,
            max_seq_length=config.max_seq_length,
            keys=keys_from(config),
            batch_size=config.batch_size,
        )
        if report.errors:
            first = report.errors[:5]
            lines = "\n".join(f.format() for f in first)
            more = f"\n… and {len(report.errors) - 5} more" if len(report.errors) > 5 else ""
            raise EngineError(
                f"the dataset has {len(report.errors)} error(s); training did not start:\n{lines}{more}",
                f"fix them (all are listed by `mlxtui data validate {data_dir}`)",
            )
        for w in report.warnings[:3]:
            self.emit(ev.Log("warning", w.format()))

    def _poll_while_paused(self) -> None:
        """While training is paused: keep sampling memory and answer chat jobs."""
        sample = self.sample_memory()
        control = self.control
        if (
            sample is not None
            and self.guard is not None
            and control is not None
            and control.pause_reason == "memory"
        ):
            decision = self.guard.check(sample, self.memory_history)
            if decision.action == "resume":
                self.emit(ev.Log("info", f"memory recovered ({decision.reason}): continuing"))
                control.request_resume()
                return
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return
        if item is _SHUTDOWN:
            self._queue.put(item)
            if self.control is not None:
                self.control.request_stop()
            return
        job_id, job = cast(tuple[int, Job], item)
        if job.kind in _JOBS_ALLOWED_WHILE_PAUSED:
            control = self.control
            self.model.eval()
            try:
                self._run(job_id, job)
            finally:
                self.control = control
                self.model.train()
        else:
            self._deferred.append((job_id, job))

    def _ensure_model(self) -> None:
        if self.model is None:
            self._load(0, self.model_spec, None, self.adapter_path)

    def _generate(self, job: Generate) -> dict[str, Any]:
        from mlxtui.core import generation

        self._ensure_model()
        weights = job.weights
        if weights not in ("adapter", "base"):
            self._use_adapter_file(Path(weights))
        has_adapter = generation.has_adapter(self.model)
        if weights == "adapter" and not has_adapter:
            self.emit(ev.Log("info", "no adapter is loaded yet: the base model answers"))
        use_base = weights == "base" and has_adapter
        return self._stream(job.messages, job, job.slot, base=use_base)

    def _use_adapter_file(self, path: Path) -> None:
        """Load an adapter (any checkpoint of any run) in place; reload the base only if needed."""
        from mlxtui.core import generation

        if not path.exists():
            raise EngineError(
                f"no adapter at {path}",
                "pick a checkpoint that exists (the run folder may have moved)",
            )
        wanted = generation.read_adapter_config(path).get("model")
        current = str(self.model_info.path) if self.model_info is not None else None
        if (
            wanted
            and current
            and Path(str(wanted)).resolve() != Path(current).resolve()
            and Path(str(wanted)).exists()
        ):
            self.emit(ev.Log("info", f"this adapter was trained on {wanted}: loading that base"))
            self._load(0, str(wanted), None, None)
        try:
            generation.load_adapter_file(self.model, path)
        except ValueError as e:
            self.emit(ev.Log("info", f"{e}: reloading the base model"))
            self._load(0, self.model_spec, None, None)
            generation.load_adapter_file(self.model, path)
        self.adapter_path = str(path)
        self.emit(ev.Log("info", f"answering with {path}"))

    def _require_adapter(self, adapter_path: str | None) -> None:
        from mlxtui.core import generation

        if adapter_path:
            self._ensure_model()
            self._use_adapter_file(Path(adapter_path))
        if self.model is None or not generation.has_adapter(self.model):
            raise EngineError(
                "there is no adapter to evaluate", "train first, or choose a run's adapter"
            )

    def _evaluate(self, job_id: int, job: Evaluate) -> dict[str, Any]:
        from mlxtui.core import evaluation, generation

        self._require_adapter(None)
        data_dir = _resolve_data(job.data)

        def progress(message: str, done: int = 0, total: int = 0) -> None:
            if job.cancel.is_set():
                raise EngineError("evaluation stopped", "press e and run it again when you want it")
            self.emit(ev.JobProgress(job_id, "evaluate", message, done, total))

        losses: dict[str, tuple[float, float]] = {}
        if (data_dir / "test.jsonl").is_file():
            progress("test loss of the base")
            with generation.adapter_disabled(self.model):
                losses["base"] = evaluation.test_loss_and_ppl(
                    self.model,
                    self.tokenizer,
                    data_dir,
                    batch_size=job.batch_size,
                    max_seq_length=job.max_seq_length,
                )
            progress("test loss of the adapter")
            losses["adapter"] = evaluation.test_loss_and_ppl(
                self.model,
                self.tokenizer,
                data_dir,
                batch_size=job.batch_size,
                max_seq_length=job.max_seq_length,
            )
        records = evaluation.load_records(
            data_dir, "test" if (data_dir / "test.jsonl").is_file() else "valid"
        )
        report = evaluation.before_after(
            self.model,
            self.tokenizer,
            records,
            n=job.n,
            max_tokens=job.max_tokens,
            progress=progress,
        )
        return {"losses": losses, "report": report, "data": str(data_dir)}

    def _benchmark(self, job: Benchmark) -> dict[str, Any]:
        from mlxtui.core import evaluation

        self._require_adapter(None)
        kwargs: dict[str, Any] = {"runs": job.runs, "max_tokens": job.max_tokens}
        if job.prompt:
            kwargs["prompt"] = job.prompt
        base, adapter = evaluation.benchmark_base_and_adapter(self.model, self.tokenizer, **kwargs)
        return {"base": base, "adapter": adapter}

    def _export(self, job_id: int, job: Fuse | ExportGGUF) -> str:
        from mlxtui.core import export

        # the adapter the chat answers with: a run's folder, or the very checkpoint file chosen
        adapter = job.adapter_path or self.adapter_path
        if not adapter:
            raise EngineError(
                "there is no adapter to export", "train first, or give an adapter folder"
            )

        def progress(message: str, done: int = 0, total: int = 0) -> None:
            self.emit(ev.JobProgress(job_id, job.kind, message, done, total))

        spec = str(self.model_info.path) if self.model_info is not None else None
        try:
            if isinstance(job, Fuse):
                out = export.fuse_adapter(
                    spec,
                    adapter,
                    job.save_path,
                    dequantize=job.dequantize,
                    force=job.force,
                    progress=progress,
                    gguf_file=job.gguf_path,
                )
            else:
                out = export.export_gguf(
                    spec, adapter, job.out_file, force=job.force, progress=progress
                )
        except export.ExportError as e:
            raise EngineError(str(e)) from None
        self.emit(ev.Log("info", f"written: {out}"))
        return str(out)

    def _compare(self, job: Compare) -> dict[str, Any]:
        from mlxtui.core import generation

        if self.model is None or not generation.has_adapter(self.model):
            raise EngineError(
                "there is no adapter to compare with",
                "train first, or pick a run's adapter in the chat",
            )
        a = self._stream(job.messages, job, "A", base=True)
        b = (
            self._stream(job.messages, job, "B", base=False)
            if not job.cancel.is_set()
            else {}
        )
        return {"A": a, "B": b}

    def _stream(
        self, messages: list[dict[str, str]], job: Any, slot: str, base: bool
    ) -> dict[str, Any]:
        import contextlib

        from mlxtui.core import generation

        ctx = generation.adapter_disabled(self.model) if base else contextlib.nullcontext()
        text = ""
        last = None
        if job.cancel.is_set():  # cancelled while it waited in the queue
            ctx = contextlib.nullcontext()
        with ctx:
            for chunk in () if job.cancel.is_set() else generation.stream_reply(
                self.model,
                self.tokenizer,
                messages,
                temperature=job.temperature,
                top_p=job.top_p,
                max_tokens=job.max_tokens,
                should_stop=job.cancel.is_set,
            ):
                text += chunk.text
                last = chunk
                if chunk.text:
                    self.emit(ev.GenerationToken(id(job), chunk.text, slot))
                self.sample_memory()
        done = ev.GenerationDone(
            request_id=id(job),
            text=text,
            slot=slot,
            prompt_tokens=getattr(last, "prompt_tokens", 0),
            generation_tokens=getattr(last, "generation_tokens", 0),
            prompt_tps=getattr(last, "prompt_tps", 0.0),
            generation_tps=getattr(last, "generation_tps", 0.0),
            peak_memory=getattr(last, "peak_memory", 0.0),
            stopped=job.cancel.is_set(),
        )
        self.emit(done)
        return done.to_dict()


# ------------------------------------------------------------------ helpers


def _wait_for_native_exit(thread: threading.Thread, timeout: float = 2.0) -> None:
    """Wait until the OS thread is gone, not just its Python part.

    `join()` returns before the thread's C++ thread-local destructors run; MLX's take the
    GIL, and if the interpreter is finalizing by then the thread is killed mid-unwind and
    the process aborts ("terminate called without an active exception", exit 134).
    """
    native = getattr(thread, "native_id", None)
    task = Path(f"/proc/self/task/{native}")
    deadline = time.monotonic() + timeout
    if native is not None and Path("/proc/self/task").is_dir():
        while task.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(0.2)


def _resolve_data(data: str | None) -> Path:
    if data in (None, "", "demo"):
        from mlxtui.demo_data import demo_data_dir

        return demo_data_dir()
    path = Path(str(data)).expanduser()
    if not path.is_dir():
        raise EngineError(
            f"data: {path} is not a folder",
            "give a folder with train.jsonl (and optionally valid.jsonl, test.jsonl), or leave it empty for the demo dataset",
        )
    return path


def _model_loaded(info: Any, adapter: str | None) -> ev.ModelLoaded:
    return ev.ModelLoaded(
        name=info.name,
        path=str(info.path),
        num_layers=info.num_layers,
        num_parameters=info.num_parameters,
        quantization_bits=info.quantization_bits,
        dtype=str(info.dtype),
        dequantized=bool(getattr(info, "dequantized", False)),
        adapter=adapter,
        chat_template=bool(getattr(info, "has_chat_template", True)),
        source_quantization_bits=getattr(info, "source_quantization_bits", info.quantization_bits),
        size_bytes=int(getattr(info, "size_bytes", 0)),
    )


def _copy_to_user_adapter_path(config: TrainConfig, adapter_dir: Path, emit: EventSink) -> None:
    """mlx-lm users expect the adapter in --adapter-path: copy the final one there too."""
    import shutil

    if not config.adapter_path:
        return
    target = Path(config.adapter_path).expanduser()
    if target.resolve() == adapter_dir.resolve():
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in ("adapters.safetensors", "adapter_config.json"):
        src = adapter_dir / name
        if src.is_file():
            shutil.copy2(src, target / name)
    emit(ev.Log("info", f"adapter also written to {target}"))


def _user_errors() -> tuple[type[Exception], ...]:
    """Exception types the core raises for a user's mistake, with a message that says what to do."""
    from mlxtui.core import evaluation, export, models
    from mlxtui.core.training import TrainingError

    found: list[type[Exception]] = [models.ModelError, evaluation.EvalError, export.ExportError, TrainingError]
    try:
        from mlxtui.core.gguf_import import GGUFError

        found.append(GGUFError)
    except ImportError:
        pass
    try:
        from mlxtui.core.data import PrepareError

        found.append(PrepareError)
    except ImportError:
        pass
    return tuple(found)


def _hint_for(e: Exception) -> str:
    import errno

    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" ({e.filename})" if e.filename else ""
        return f"the disk is full{where}: free some space; checkpoints already saved are intact"
    text = str(e).lower()
    if "memory" in text or isinstance(e, MemoryError):
        return "out of memory: lower batch size, layers or max_seq_length, or turn on gradient checkpointing"
    if isinstance(e, FileNotFoundError):
        return "check the path in the Config pane"
    return "see the log for details"
