"""A run's checkpoint store: atomic adapter saves (periodic, best, final, stop), the resume
state, and the in-memory snapshot a NaN rolls back to.

A save never puts non-finite weights over a good file: after a NaN the last good adapter
stays on disk. Every file is written atomically (fileio), so a crash or an SSH drop at any
moment leaves the previous one whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.core.fileio import atomic_save_safetensors, atomic_write_text
from mlxtui.core.runs import STATE_DIR, new_run_dir, read_state
from mlxtui.core.training.errors import TrainingError

Emit = Callable[[ev.Event], None]


def open_run_dir(config: TrainConfig, model_path: str) -> tuple[Path, dict[str, Any] | None]:
    """(the run folder, its resume state or None for a new run)."""
    if config.resume_run:
        run_dir = Path(config.resume_run)
        state = read_state(run_dir)
        if state is None or not (run_dir / STATE_DIR / "optimizer.safetensors").is_file():
            raise TrainingError(
                f"{run_dir}: no resume state (state/state.json and state/optimizer.safetensors); "
                "give a run folder that mlxtui wrote, or use --resume-adapter-file for a bare adapter"
            )
        return run_dir, state
    return new_run_dir(config.runs_dir, config.run_name or Path(model_path).name), None


def flat(tree: Any) -> list[tuple[str, Any]]:
    from mlx.utils import tree_flatten

    return cast(list[tuple[str, Any]], tree_flatten(tree))


def set_leaves(tree: Any, leaves: dict[str, Any]) -> None:
    """Write flattened leaves ("a.b.0.c") into an existing state tree, in place.

    In place because train()'s compiled step holds the optimizer's state dict; leaf by leaf
    because the tree also has empty branches (e.g. for non-array model attributes) that a
    flattened file does not record.
    """
    for path, value in leaves.items():
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value


class CheckpointStore:
    def __init__(self, run_dir: Path, model: Any, emit: Emit) -> None:
        self.run_dir = run_dir
        self.adapter_dir = run_dir / "adapters"
        self.state_dir = run_dir / STATE_DIR
        self.adapter_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.emit = emit
        self.good_iteration = 0
        self._good: tuple[dict[str, Any], dict[str, Any]] = ({}, {})

    # ------------------------------------------------------------ adapters

    def adapter_weights(self) -> dict[str, Any]:
        return dict(flat(self.model.trainable_parameters()))

    @staticmethod
    def finite(weights: dict[str, Any]) -> bool:
        import mlx.core as mx

        checks = [mx.all(mx.isfinite(w)) for w in weights.values()]
        if not checks:
            return True
        return bool(mx.all(mx.stack(checks)).item())

    def save_adapter(self, name: str, iteration: int, kind: str, nan_seen: bool) -> Path | None:
        """Write the trainable weights to adapters/`name`; None (and a warning) when they are
        not finite, so a NaN never replaces a good checkpoint."""
        weights = self.adapter_weights()
        if nan_seen or not self.finite(weights):
            self.emit(
                ev.Log(
                    "warning", f"not saving {name} at step {iteration}: the weights are not finite"
                )
            )
            return None
        path = self.adapter_dir / name
        atomic_save_safetensors(path, weights)
        self.emit(ev.CheckpointSaved(iteration, str(path), kind))
        return path

    # ------------------------------------------------------------ resume state

    def save_state(self, optimizer: Any, fields: dict[str, Any]) -> None:
        """Optimizer state, trainable weights and `fields` (iteration, status, best…)."""
        atomic_save_safetensors(
            self.state_dir / "optimizer.safetensors", dict(flat(optimizer.state))
        )
        atomic_save_safetensors(self.state_dir / "adapters.safetensors", self.adapter_weights())
        atomic_write_text(
            self.state_dir / "state.json",
            json.dumps(fields | {"saved_at": time.time()}, indent=2),
        )

    def restore_state(self, optimizer: Any) -> None:
        """Load the saved trainable weights and optimizer state into the model and `optimizer`."""
        import mlx.core as mx

        saved = cast(dict[str, Any], mx.load(str(self.state_dir / "adapters.safetensors")))
        current = self.adapter_weights()
        if {k: tuple(v.shape) for k, v in saved.items()} != {
            k: tuple(v.shape) for k, v in current.items()
        }:
            raise TrainingError(
                f"{self.run_dir}: the saved state does not fit this configuration (its trainable weights differ: "
                "fine_tune_type, num_layers, lora rank or keys changed); resume with the run's own settings "
                f"(they are in {self.run_dir / 'config.yaml'})"
            )
        self.model.load_weights(list(saved.items()), strict=False)
        optimizer.init(self.model.trainable_parameters())
        loaded = cast(dict[str, Any], mx.load(str(self.state_dir / "optimizer.safetensors")))
        set_leaves(optimizer.state, loaded)

    # ------------------------------------------------------------ NaN rollback

    def snapshot_good(self, optimizer: Any, iteration: int) -> None:
        """Keep a copy of the weights and optimizer state of a saved step, so a NaN can be
        rolled back without reading the disk. Taken only at save points."""
        import mlx.core as mx

        weights = self.adapter_weights()
        opt = dict(flat(optimizer.state))
        mx.eval(weights, opt)
        self._good = (
            {k: mx.array(v) for k, v in weights.items()},
            {k: mx.array(v) for k, v in opt.items()},
        )
        self.good_iteration = iteration

    def roll_back(self, optimizer: Any) -> None:
        weights, opt = self._good
        self.model.load_weights(list(weights.items()), strict=False)
        set_leaves(optimizer.state, opt)
        self.emit(
            ev.Log("info", f"rolled back to the last good weights (step {self.good_iteration})")
        )
