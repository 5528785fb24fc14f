"""metrics.jsonl: a subscriber of the engine's events that writes one line per event of a run.

The train job emits events; this writer turns them into the run folder's metrics.jsonl
(train reports with the gradient norm, validations, checkpoints, pauses, the diagnosis's advice,
phase durations, memory, the end). Events
of the job that come before the run folder exists (loading the model, tokenizing) are kept
and written once `TrainStarted` names the folder. Lines keep mlx-lm-like names ("train",
"val", "checkpoint"…) because `mlxtui runs` and the dashboard read them back.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

from mlxtui.core import events as ev

MEMORY_EVERY_S = 10.0


class MetricsWriter:
    """Call it with every engine event (it is an `on_event` subscriber).

    Events come from the engine thread and, for memory samples, from the telemetry thread:
    one lock keeps the lines whole and in order.
    """

    def __init__(self, memory_every_s: float = MEMORY_EVERY_S) -> None:
        self.memory_every_s = memory_every_s
        self._job: int | None = None
        self._file: IO[str] | None = None
        self._pending: list[dict[str, Any]] = []
        self._last_memory = 0.0
        self._peak_gb = 0.0
        self._estimated: int | None = None
        self._lock = threading.Lock()

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.JobStarted):
            if event.kind == "train" and self._job is None:
                self._job = event.job_id
                self._pending = []
                self._peak_gb = 0.0
            return
        if self._job is None:
            return
        if isinstance(event, ev.JobFinished | ev.JobFailed):
            if event.job_id == self._job:
                self._close()
            return
        if isinstance(event, ev.TrainStarted):
            self._open(Path(event.run_dir))
            self._estimated = event.estimated_peak_bytes
        record = self._record(event)
        if record is None:
            return
        record.setdefault("time", time.time())
        if self._file is None:
            self._pending.append(record)
        else:
            self._write(record)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._job = None
        self._pending = []

    # ------------------------------------------------------------------ internals

    def _open(self, run_dir: Path) -> None:
        if self._file is not None:
            self._file.close()
        self._file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        pending, self._pending = self._pending, []
        for record in pending:
            self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    def _record(self, event: ev.Event) -> dict[str, Any] | None:
        if isinstance(event, ev.PhaseFinished):
            if event.job_id != self._job:
                return None  # a chat answered during a pause is not part of the run
            return {
                "event": "phase",
                "phase": event.phase,
                "label": event.label,
                "seconds": event.seconds,
                "outcome": event.outcome,
            }
        if isinstance(event, ev.TrainStarted):
            return event.to_dict() | {"event": "start"}
        if isinstance(event, ev.TrainStep):
            self._peak_gb = max(self._peak_gb, event.peak_memory)
            return None  # every step would drown the file; TrainReport aggregates them
        if isinstance(event, ev.TrainReport):
            return event.to_dict() | {"event": "train"}
        if isinstance(event, ev.ValReport):
            return {
                "event": "val",
                "iteration": event.iteration,
                "val_loss": event.val_loss,
                "val_time": event.val_time,
                "is_best": event.is_best,
            }
        if isinstance(event, ev.CheckpointSaved):
            return {
                "event": "checkpoint",
                "iteration": event.iteration,
                "path": event.path,
                "kind": event.kind,
            }
        if isinstance(event, ev.SamplePredictions):
            return {
                "event": "samples",
                "iteration": event.iteration,
                "items": [i.__dict__ for i in event.items],
            }
        if isinstance(event, ev.TrainPaused):
            return {"event": "paused", "iteration": event.iteration, "reason": event.reason}
        if isinstance(event, ev.TrainResumed):
            return {"event": "resumed", "iteration": event.iteration}
        if isinstance(event, ev.Diagnosis) and not event.earlier:  # earlier: already written
            return {
                "event": "diagnosis",
                "kind": event.kind,
                "iteration": event.iteration,
                "message": event.message,
                "numbers": event.numbers,
            }
        if isinstance(event, ev.TestResult):
            return {"event": "test", "test_loss": event.test_loss, "test_ppl": event.test_ppl}
        if isinstance(event, ev.RankReport):  # a run across ranks: how the work divides
            return event.to_dict() | {"event": "ranks"}
        if isinstance(event, ev.MemoryAlert):
            return {"event": "memory_alert", "action": event.action, "message": event.message}
        if isinstance(event, ev.MemorySampled):
            now = time.monotonic()
            if self._file is None or now - self._last_memory < self.memory_every_s:
                return None
            self._last_memory = now
            s = event.sample
            return {
                "event": "memory",
                "process_rss": getattr(s, "process_rss", None),
                "mlx_active": getattr(s, "mlx_active", None),
                "mlx_peak": getattr(s, "mlx_peak", None),
                "system_available": getattr(s, "system_available", None),
                "swap_used": getattr(s, "swap_used", None),
                "pressure": getattr(s, "pressure", None),
                "swap_growth_per_min": event.swap_growth_per_min,
            }
        if isinstance(event, ev.TrainFinished):
            return {
                "event": "finished",
                "status": event.status,
                "iteration": event.final_iteration,
                "peak_memory_gb": self._peak_gb,
                "estimated_peak_bytes": self._estimated,
                "test_loss": event.test_loss,
                "message": event.message,
            }
        return None
