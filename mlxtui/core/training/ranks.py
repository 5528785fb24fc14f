"""The train loop's rank-aware parts: only rank 0 writes, and what each rank did.

Under mx.distributed every rank runs the same loop in lockstep (mlx-lm's step averages the
gradients), so every rank has the same weights and could save them; rank 0 alone does, so a
run leaves one run folder whatever the number of ranks. The other ranks keep a store that
checks what it would save (the NaN rule needs the answer) and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlxtui.core.training.checkpoints import CheckpointStore, Emit


class ReadOnlyStore(CheckpointStore):
    """A checkpoint store for ranks other than 0: same answers, no files, no events."""

    def __init__(self, run_dir: Path, model: Any, emit: Emit) -> None:
        # CheckpointStore.__init__ makes the run's folders: a rank other than 0 must not.
        self.run_dir = run_dir
        self.adapter_dir = run_dir / "adapters"
        self.state_dir = run_dir / "state"
        self.model = model
        self.emit = emit
        self.good_iteration = 0
        self._good = ({}, {})
        self.mirror_dir = None  # the --adapter-path copy is rank 0's
        self._locks = []

    def save_adapter(self, name: str, iteration: int, kind: str, nan_seen: bool) -> Path | None:
        if nan_seen or not self.finite(self.adapter_weights()):
            return None
        return self.adapter_dir / name

    def save_state(self, optimizer: Any, fields: dict[str, Any]) -> None:
        return None


def batch_tokens(lengths: Any, width: int) -> int:
    """Tokens a batch trains on, as mlx-lm's default_loss counts them (its mask's sum).

    `lengths` holds (offset, length) per row; the targets are positions 1..width-1.
    """
    pairs = np.asarray(lengths, dtype=np.int64).reshape(-1, 2)
    first = np.maximum(pairs[:, 0], 1)
    last = np.minimum(pairs[:, 1], width - 1)
    return int(np.maximum(last - first + 1, 0).sum())
