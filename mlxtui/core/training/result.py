"""What goes into a run (the prepared model and data) and what comes out of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev


@dataclass
class Prepared:
    """What the train job loads and tokenizes before the run starts."""

    model: Any
    tokenizer: Any
    model_path: str
    train_set: Any
    valid_set: Any
    test_set: Any
    dequantized: bool
    quantization_bits: int | None


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
