"""The train job: check the settings and the data, load, tokenize, then run the step loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.datadir import is_demo, resolve_data_dir
from mlxtui.core.jobs import estimate as estimate_job
from mlxtui.core.jobs.context import EngineError, JobContext
from mlxtui.core.jobs.load import model_loaded
from mlxtui.core.progress import Interrupted, Reporter


def run(ctx: JobContext) -> Any:
    from mlxtui.core import models
    from mlxtui.core.training import Prepared, TrainControl, TrainingError, TrainRun, load_datasets

    config: TrainConfig = ctx.job.config
    engine = ctx.engine
    # The control exists from the start, so a stop while loading ends the job at the next
    # safe point instead of after the whole preparation.
    control = engine.control = TrainControl()

    def stop_point() -> None:
        if control.stop_requested:
            raise Interrupted

    reporter = Reporter(ctx.emit, ctx.job_id, "train", stop_point)
    _check_paths(config)
    data_dir = resolve_data_dir(config.data)
    _validate_data(reporter, data_dir, config)
    deq = models.wants_dequantize(config.dequantize, config.fine_tune_type)
    slot = ctx.slot
    loaded = slot.take_fresh(config.model, deq)  # the same model, just loaded by a load job
    if loaded is not None:
        model, tokenizer, info = loaded
    else:
        slot.clear()  # free the previous model before loading this one
        try:
            model, tokenizer, info = models.load_model(
                config.model,
                dequantize=deq,
                reporter=reporter,
                trust_remote_code=config.trust_remote_code,
            )
        except models.ModelError as e:
            raise EngineError(str(e), "check the model field") from None
    slot.model, slot.tokenizer, slot.info = model, tokenizer, info
    slot.spec = config.model
    slot.adapter_path = None
    ctx.emit(model_loaded(info, None))
    stop_point()
    with reporter.phase("tokenize", "tokenizing the dataset"):
        try:
            train_set, valid_set, test_set = load_datasets(config, data_dir, tokenizer)
        except TrainingError as e:
            raise EngineError(str(e), f"run `mlxtui data validate {data_dir}`") from None
    _warn_too_long(ctx, config, train_set)
    slot.train_lengths_for = (str(data_dir), id(tokenizer))
    stop_point()
    with reporter.phase("estimate", "estimating memory"):
        estimated = estimate_job.estimated_bytes(ctx, config.with_values(data=str(data_dir)))
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
    stop_point()
    from mlxtui.core.reporting import reporting_emit

    train_run = TrainRun(
        config if config.hf_dataset is not None else config.with_values(data=str(data_dir)),
        prepared,
        reporting_emit(ctx.emit, config),
        control=control,
        memory_check=engine.memory_check(config, lambda: estimate_job.suggestions(ctx, config)),
        poll_while_paused=engine.serve_while_paused,
        estimated_peak_bytes=estimated,
        job_id=ctx.job_id,
    )
    try:
        result = train_run.execute()
    except TrainingError as e:
        raise EngineError(str(e)) from None
    except RuntimeError as e:
        if not _out_of_memory(e):
            raise
        raise _out_of_memory_error(e, config, train_run) from None
    finally:
        if train_run.store is not None:
            train_run.store.close()  # the folder locks
    slot.adapter_path = str(result.adapter_path)
    slot.last_run_dir = str(result.run_dir)
    model.eval()
    if train_run.world.is_writer and train_run.store is not None and train_run.store.mirror_dir is not None:
        ctx.emit(ev.Log("info", f"checkpoints also written to {train_run.store.mirror_dir}"))
    return result


def _check_paths(config: TrainConfig) -> None:
    """Report a wrong path before anything slow starts."""
    from mlxtui.core import models

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
    if config.resume_adapter_file:
        try:
            models.check_weights_file(Path(config.resume_adapter_file), "give another checkpoint of the run")
        except models.ModelError as e:
            raise EngineError(f"resume_adapter_file: {e}", "give the path of an adapters .safetensors file") from None
    if config.resume_run:
        _check_resume_state(Path(config.resume_run))
    _check_folders(config)
    if not is_demo(config.model):
        try:  # cheap for local paths: a wrong model path is reported before the data is read
            models.resolve_model(config.model)
        except models.ModelError as e:
            raise EngineError(str(e), "check the model field") from None


def _check_resume_state(run_dir: Path) -> None:
    """The run's state/ is whole: state.json parses, optimizer.safetensors is there and complete."""
    import json

    from mlxtui.core import models

    instead = (
        f"resume from its last adapter instead: mlxtui train --resume-adapter-file "
        f"{run_dir / 'adapters' / 'adapters.safetensors'} (with the run's settings, {run_dir / 'config.yaml'})"
    )
    state = run_dir / "state" / "state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"{state}:{e.lineno}" if isinstance(e, json.JSONDecodeError) else str(state)
        raise EngineError(f"{where}: the resume state is truncated or damaged (not valid JSON)", instead) from None
    optimizer = run_dir / "state" / "optimizer.safetensors"
    if not optimizer.is_file():
        raise EngineError(f"{optimizer} is missing: the run cannot resume exactly without it", instead)
    try:
        models.check_safetensors(optimizer, "the optimizer state is lost")
    except models.ModelError as e:
        raise EngineError(str(e), instead) from None


def _validate_data(reporter: Reporter, data_dir: Path, config: TrainConfig) -> None:
    from mlxtui.core.data import keys_from, validate_dataset

    with reporter.phase("validate_data", f"checking {data_dir}"):
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
        reporter.emit(ev.Log("warning", w.format()))


def _warn_too_long(ctx: JobContext, config: TrainConfig, train_set: Any) -> None:
    lengths = [len(train_set[i][0]) for i in range(len(train_set))]
    ctx.slot.train_lengths = lengths
    too_long = [n for n in lengths if n > config.max_seq_length]
    if too_long:
        ctx.emit(
            ev.Log(
                "warning",
                f"{len(too_long)} of {len(lengths)} training examples are longer than "
                f"max_seq_length {config.max_seq_length} (longest {max(too_long)} tokens): they will be "
                "truncated; raise max_seq_length or split them (`mlxtui data stats` lists them)",
            )
        )


def _out_of_memory(e: RuntimeError) -> bool:
    """MLX's allocation failures: Metal's "[metal::malloc] Attempting to allocate …", CUDA's
    "out of memory", "[malloc] Unable to allocate …". (On the CPU back-end a failed allocation
    kills the process instead: the kill -9 trials stand for that case.)"""
    text = str(e).lower()
    return any(k in text for k in ("out of memory", "malloc", "unable to allocate", "attempting to allocate"))


def _out_of_memory_error(e: RuntimeError, config: TrainConfig, train_run: Any) -> EngineError:
    store = train_run.store
    done = train_run.step
    numbers = f"MLX peak {train_run.peak_memory:.2f} GB up to step {done}"
    numbers += f", memory_limit {config.memory_limit}" if config.memory_limit else ""
    if train_run.estimated_peak_bytes:
        numbers += f", estimated {train_run.estimated_peak_bytes / 1e9:.2f} GB"
    if store is not None and store.good_iteration > 0:
        kept = (
            f"the last checkpoint, of step {store.good_iteration}, is intact in "
            f"{store.adapter_dir}"
        )
        hint = (
            f"resume with `mlxtui train --resume {store.run_dir} --batch-size N` (smaller), "
            "a shorter --max-seq-length or --grad-checkpoint"
        )
    else:
        kept = "no checkpoint had been saved yet"
        hint = "train again with a smaller --batch-size, a shorter --max-seq-length or --grad-checkpoint"
    return EngineError(f"out of memory during step {done + 1}: {e} ({numbers}); {kept}", hint)


def _check_folders(config: TrainConfig) -> None:
    """A folder that another process writes, or an --adapter-path that is not an adapter
    folder, is refused before the model loads (the checkpoint store checks again, locked)."""
    from mlxtui.core.distributed import current_world
    from mlxtui.core.runlock import FolderInUse, holder
    from mlxtui.core.training.checkpoints import adapter_dir_problem

    if not current_world().is_writer:
        return  # rank 0 writes and locks these folders; the other ranks only read

    folders = [Path(config.resume_run)] if config.resume_run else []
    if config.adapter_path:
        target = Path(config.adapter_path).expanduser()
        is_run_own = config.resume_run and target.resolve() == (
            Path(config.resume_run) / "adapters"
        ).resolve()
        if not is_run_own:
            problem = adapter_dir_problem(target)
            if problem:
                raise EngineError(problem, "give --adapter-path a new or empty folder")
            folders.append(target)
    for folder in folders:
        held = holder(folder)
        if held is not None:
            raise EngineError(str(FolderInUse(folder, held)))
