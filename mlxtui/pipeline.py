"""The Python API: `TrainPipeline(config).execute()` runs the same engine the dashboard uses.

    from mlxtui import TrainConfig, TrainPipeline
    result = TrainPipeline(TrainConfig.quick_start(iters=50), on_event=print).execute()
    result.adapter_path, result.train_losses, result.val_losses
"""

from __future__ import annotations

from collections.abc import Callable

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Call, Engine, EngineError, Train
from mlxtui.core.training import TrainResult


class TrainPipeline:
    def __init__(self, config: TrainConfig, on_event: Callable[[ev.Event], None] | None = None) -> None:
        self.config = config
        self.on_event = on_event or (lambda e: None)
        self.engine: Engine | None = None
        # A script or a headless run has nobody to press continue: a NaN pause (or one for a
        # peak past memory_limit) would wait forever, so it ends the run (the stop saves; after
        # a NaN the last good checkpoint is kept). False: the caller decides, calling resume()
        # or stop() from on_event.
        self.stop_on_nan = True

    def execute(self) -> TrainResult:
        """Train on the engine thread and return the result; raises EngineError on failure
        (ConfigError for data files that cannot make a data folder, or train turned off)."""
        from mlxtui.core.config import ConfigError
        from mlxtui.core.datafiles import with_data_folder
        from mlxtui.core.hub_data import check_hub_data
        from mlxtui.core.reporting import check_reporting

        if not self.config.train:
            raise ConfigError("is off, and a pipeline trains: use evaluate_test_set(config) to only test", "train")
        config = with_data_folder(self.config)
        # a run asked to report, or to read the hub, that cannot is refused before the model loads
        check_reporting(config)
        check_hub_data(config)
        self.engine = Engine(self._on_event)
        self.engine.start()
        try:
            result = self.engine.run_sync(Train(config))
        finally:
            self.engine.shutdown()
        return result

    def _on_event(self, event: ev.Event) -> None:
        self.on_event(event)
        if isinstance(event, ev.TrainPaused) and self.stop_on_nan and event.reason in (
            "nan",
            "memory_limit",
        ):
            self.stop()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def pause(self) -> None:
        if self.engine is not None:
            self.engine.pause()

    def resume(self) -> None:
        if self.engine is not None:
            self.engine.resume()


def evaluate_test_set(config: TrainConfig) -> tuple[float, float]:
    """Test loss and perplexity of config.model with the adapter in config.adapter_path."""
    from mlxtui.core.datafiles import with_data_folder

    config = with_data_folder(config)
    from pathlib import Path

    def job(engine: Engine) -> tuple[float, float]:
        from mlxtui.core import models
        from mlxtui.core.datadir import resolve_data_dir
        from mlxtui.core.training import load_datasets, test_loss

        adapter = Path(config.adapter_path).expanduser() if config.adapter_path else None
        if adapter is None or not (adapter / "adapters.safetensors").is_file():
            raise EngineError(
                f"adapter_path: no adapter in {adapter} (adapters.safetensors)",
                "give --adapter-path of a trained adapter, e.g. runs/<run>/adapters",
            )
        deq = models.wants_dequantize(config.dequantize)
        model, tokenizer, _info = models.load_model(
            config.model, adapter_path=str(adapter), dequantize=deq, trust_remote_code=config.trust_remote_code
        )
        data_dir = resolve_data_dir(config.data)
        _, _, test = load_datasets(config, data_dir, tokenizer)
        if not test:
            raise EngineError(f"{data_dir}/test.jsonl is missing or empty", "add a test split, e.g. with `mlxtui data split`")
        return test_loss(model, test, config.batch_size, config.test_batches, config.max_seq_length)

    engine = Engine(lambda e: None)
    engine.start()
    try:
        return engine.run_sync(Call(fn=job, description="test set"))
    finally:
        engine.shutdown()


__all__ = ["TrainPipeline", "TrainConfig", "TrainResult", "evaluate_test_set"]
