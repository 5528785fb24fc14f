"""Real run folders and training on the tiny model, shared by the tests.

Not a test module: the runs, compare and TUI tests build their folders with these helpers, and
the training and checkpoint-fault tests take their config, event recorder and engine run here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from demo_slice import demo_slice

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.engine import Engine, Train


def small_data(out: Path) -> Path:
    """24/8/8 examples of the demo dataset: enough to train a few steps, quick to tokenize."""
    return demo_slice(out, train=24, valid=8, test=8)


def run_config(model: Path, data: Path, runs: Path, **kw: Any) -> TrainConfig:
    """A short LoRA run of the tiny model (2 layers, 6 steps); `kw` overrides any setting."""
    values: dict[str, Any] = dict(
        model=str(model),
        data=str(data),
        runs_dir=str(runs),
        num_layers=2,
        batch_size=4,
        iters=6,
        learning_rate=1e-3,
        steps_per_report=2,
        steps_per_eval=3,
        save_every=3,
        val_batches=2,
        max_seq_length=256,
        sample_prompts=0,
        memory_guard="off",
    )
    values.update(kw)
    return TrainConfig().with_values(**values)


class Recorder:
    """Collects an engine's events. `on_step(engine, event)` acts at each step and
    `on_pause(engine, event)` at each pause, both on the engine thread."""

    def __init__(self, on_step: Any = None) -> None:
        self.events: list[ev.Event] = []
        self.on_step = on_step
        self.on_pause: Any = None
        self.engine: Engine | None = None

    def __call__(self, e: ev.Event) -> None:
        self.events.append(e)
        if self.on_step is not None and isinstance(e, ev.TrainStep):
            self.on_step(self.engine, e)
        if self.on_pause is not None and isinstance(e, ev.TrainPaused):
            self.on_pause(self.engine, e)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def logs(self, level: str | None = None) -> list[str]:
        return [e.message for e in self.of(ev.Log) if level is None or e.level == level]


def train(cfg: TrainConfig, rec: Recorder | None = None) -> tuple[Any, Recorder]:
    """Run `cfg` as a Train job on a fresh engine; returns its result and the recorder."""
    rec = rec or Recorder()
    engine = Engine(rec)
    rec.engine = engine
    engine.start()
    try:
        return engine.run_sync(Train(cfg), timeout=600), rec
    finally:
        engine.shutdown()


def train_run(model: Path, data: Path, runs: Path, stop_at: int | None = None, **kw: Any) -> Path:
    """Train one run (stopping at step `stop_at` when given); returns its folder."""
    from mlxtui.pipeline import TrainPipeline

    pipe: TrainPipeline

    def on_event(e: ev.Event) -> None:
        if stop_at is not None and isinstance(e, ev.TrainStep) and e.iteration == stop_at:
            pipe.stop()

    pipe = TrainPipeline(run_config(model, data, runs, **kw), on_event=on_event)
    return Path(pipe.execute().run_dir)


_PAUSER = """
import sys, time
import mlxtui
from pathlib import Path
sys.path.insert(0, {tests!r})
from run_folders import run_config
from mlxtui.core import events as ev
from mlxtui.pipeline import TrainPipeline

def on_event(e):
    if isinstance(e, ev.TrainStep) and e.iteration == 2:
        pipe.pause()
    if isinstance(e, ev.TrainPaused):
        print("PAUSED", flush=True)

pipe = TrainPipeline(run_config(Path({model!r}), Path({data!r}), Path({runs!r}), iters=50, run_name="elsewhere"),
                     on_event=on_event)
pipe.execute()
"""


def start_paused_elsewhere(model: Path, data: Path, runs: Path) -> subprocess.Popen[str]:
    """A second process that trains a run and holds it paused at step 2 until killed."""
    code = textwrap.dedent(_PAUSER).format(
        tests=str(Path(__file__).parent), model=str(model), data=str(data), runs=str(runs)
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "PAUSED":
            return proc
        if not line and proc.poll() is not None:
            raise RuntimeError(f"the training process ended early (exit {proc.returncode})")
    proc.kill()
    raise RuntimeError("the training process did not pause within 120 s")
