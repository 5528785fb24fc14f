"""The train job: check the settings and the data, load, tokenize, then run the step loop."""

from __future__ import annotations

import shutil
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
    slot.clear()  # free the previous model before loading this one
    try:
        model, tokenizer, info = models.load_model(
            config.model, dequantize=deq, reporter=reporter, trust_remote_code=config.trust_remote_code
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
    slot.adapter_path = str(result.adapter_path)
    slot.last_run_dir = str(result.run_dir)
    model.eval()
    _copy_to_user_adapter_path(ctx, config, result.adapter_path)
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


def _copy_to_user_adapter_path(ctx: JobContext, config: TrainConfig, adapter_dir: Path) -> None:
    """mlx-lm users expect the adapter in --adapter-path: copy the final one there too."""
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
    ctx.emit(ev.Log("info", f"adapter also written to {target}"))
