"""A run's checkpoint store: atomic adapter saves (periodic, best, final, stop), the resume
state, and the in-memory snapshot a NaN rolls back to.

A save never puts non-finite weights over a good file: after a NaN the last good adapter
stays on disk. Every file is written atomically (fileio), so a crash or an SSH drop at any
moment leaves the previous one whole.

The user's --adapter-path (mlx-lm's meaning: where checkpoints go during training) gets each
adapter as soon as it is saved, under mlx-lm's names; the run folder stays the run's home.
Both folders are locked for the run (runlock): a second process is refused, never interleaved.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from mlxtui.core import events as ev
from mlxtui.core import pause_words as words
from mlxtui.core.config import TrainConfig
from mlxtui.core.fileio import (
    DiskFullError,
    atomic_copy,
    atomic_save_safetensors,
    atomic_write_text,
    why_not_adapter_dir,
)
from mlxtui.core.runlock import FolderInUse, FolderLock
from mlxtui.core.runs import ADAPTER_FILE, STATE_DIR, checkpoints, new_run_dir, read_state
from mlxtui.core.training.errors import TrainingError

Emit = Callable[[ev.Event], None]


def open_run_dir(config: TrainConfig, model_path: str) -> tuple[Path, dict[str, Any] | None]:
    """(the run folder, its resume state or None for a new run)."""
    if config.resume_run:
        run_dir = Path(config.resume_run)
        state = read_state(run_dir)
        if state is None or not state_files(run_dir / STATE_DIR, state)[0].is_file():
            raise TrainingError(
                f"{run_dir}: no resume state (state/state.json and state/optimizer.safetensors); "
                "give a run folder that mlxtui wrote, or use --resume-adapter-file for a bare adapter"
            )
        return run_dir, state
    return new_run_dir(config.runs_dir, config.run_name or Path(model_path).name), None


def state_files(state_dir: Path, state: dict[str, Any]) -> tuple[Path, Path]:
    """(optimizer file, trainable weights file) that state.json commits to; runs written
    before the files were versioned name none and use the fixed names."""
    return (
        state_dir / state.get("optimizer_file", "optimizer.safetensors"),
        state_dir / state.get("adapters_file", "adapters.safetensors"),
    )


def adapter_dir_problem(path: Path) -> str | None:
    """Why checkpoints may not go to --adapter-path `path`, or None: a folder of other files,
    or another run's own adapters/ (its final adapter would be replaced)."""
    if (path.parent / STATE_DIR / "state.json").is_file() and path.name == "adapters":
        return (
            f"--adapter-path {path} is the adapters folder of the run {path.parent}; this run's "
            "checkpoints would replace that run's. Give another folder, or `--resume "
            f"{path.parent}` to continue that run"
        )
    return why_not_adapter_dir(path)


def user_adapter_dir(
    config: TrainConfig, run_dir: Path, resume_state: dict[str, Any] | None
) -> Path | None:
    """The --adapter-path folder that gets each checkpoint as it is saved (None: only the run
    folder). A resumed run's saved config names its own adapters/ folder, so the folder the
    user gave when the run started comes from its state."""
    given = Path(config.adapter_path).expanduser() if config.adapter_path else None
    if given is not None and given.resolve() == (run_dir / "adapters").resolve():
        given = None
    if given is None and resume_state and resume_state.get("user_adapter_path"):
        given = Path(resume_state["user_adapter_path"])
    if given is None:
        return None
    problem = adapter_dir_problem(given)
    if problem:
        raise TrainingError(problem)
    return given.absolute()  # kept in the state: a resume from another folder finds it


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
    def __init__(
        self, run_dir: Path, model: Any, emit: Emit, mirror_dir: Path | None = None
    ) -> None:
        self.run_dir = run_dir
        self.adapter_dir = run_dir / "adapters"
        self.state_dir = run_dir / STATE_DIR
        self.mirror_dir = mirror_dir
        self.model = model
        self.emit = emit
        self.good_iteration = 0
        self._good: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        self._locks: list[FolderLock] = []
        try:
            for folder in [run_dir] + ([mirror_dir] if mirror_dir is not None else []):
                lock = FolderLock(folder).acquire()
                self._locks.append(lock)
                if lock.took_over_from is not None:
                    emit(
                        ev.Log(
                            "info",
                            f"{folder}: took over the lock of process {lock.took_over_from}, "
                            "which is no longer running",
                        )
                    )
        except FolderInUse as e:
            self.close()
            raise TrainingError(str(e)) from None
        self.adapter_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Release the folder locks (the run is over)."""
        for lock in self._locks:
            lock.release()
        self._locks = []

    # ------------------------------------------------------------ the user's --adapter-path

    def mirror(self, name: str) -> None:
        """Copy adapters/`name` to the --adapter-path folder, atomically, under the same name."""
        if self.mirror_dir is None or not (
            name in (ADAPTER_FILE, "adapter_config.json")
            or checkpoints_named(self.adapter_dir, name)
        ):
            return
        atomic_copy(self.adapter_dir / name, self.mirror_dir / name)

    def bytes_per_save(self, optimizer: Any) -> int:
        """About how much disk one periodic save writes (old files are replaced only after)."""
        adapter = sum(int(v.nbytes) for v in self.adapter_weights().values())
        opt = sum(int(v.nbytes) for _, v in flat(optimizer.state) if hasattr(v, "nbytes"))
        copies = 4 if self.mirror_dir is not None else 2  # periodic + latest, in one or two folders
        return adapter * (copies + 1) + opt + 64 * 1024

    def disk_full_message(self, error: DiskFullError, iteration: int, optimizer: Any) -> str:
        """Where the disk is full, how much a save needs and how much is free."""
        where = error.path or self.run_dir
        folder = where if where.is_dir() else where.parent
        need = self.bytes_per_save(optimizer)
        try:
            free = shutil.disk_usage(folder).free
            free_text = f"{_mb(free)} free now"
        except OSError:
            free_text = "free space unknown"
        return (
            f"disk full while saving the checkpoint of step {iteration} in {folder}: a save "
            f"needs about {_mb(need)} free there ({free_text}). The previous checkpoint (step "
            f"{self.good_iteration}) is intact. Training is paused: free some space and it "
            f"continues by itself ({words.DISK_KEYS})"
        )

    def space_free_for_save(self, optimizer: Any) -> bool:
        """Whether every folder this store writes has room for one more save."""
        need = self.bytes_per_save(optimizer)
        folders = [self.run_dir] + ([self.mirror_dir] if self.mirror_dir is not None else [])
        try:
            return all(shutil.disk_usage(f).free >= need for f in folders)
        except OSError:
            return False

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
        self.mirror(name)
        self.emit(ev.CheckpointSaved(iteration, str(path), kind))
        return path

    # ------------------------------------------------------------ resume state

    def save_state(self, optimizer: Any, fields: dict[str, Any]) -> None:
        """Optimizer state, trainable weights and `fields` (iteration, status, best…).

        Three files that must agree, so state.json is the commit: the two weight files are
        written under names of their step first, then state.json names them, and only then
        are older ones removed. A kill between any two writes leaves a state.json whose files
        are whole and of its step (the kill trials found optimizer moments of step 6 with the
        weights of step 4 when the fixed names were written one after the other).
        """
        it = int(fields["iteration"])
        opt_name, ad_name = f"optimizer-{it:07d}.safetensors", f"adapters-{it:07d}.safetensors"
        atomic_save_safetensors(self.state_dir / opt_name, dict(flat(optimizer.state)))
        atomic_save_safetensors(self.state_dir / ad_name, self.adapter_weights())
        atomic_write_text(
            self.state_dir / "state.json",
            json.dumps(
                fields
                | {
                    "saved_at": time.time(),
                    "user_adapter_path": str(self.mirror_dir) if self.mirror_dir else None,
                    "optimizer_file": opt_name,
                    "adapters_file": ad_name,
                },
                indent=2,
            ),
        )
        # The fixed names stay for readers that look for them (the runs screen): hard links
        # to the committed files, each swapped in atomically; no second copy is written.
        for versioned, fixed in ((opt_name, "optimizer.safetensors"), (ad_name, ADAPTER_FILE)):
            _link_over(self.state_dir / versioned, self.state_dir / fixed)
        for p in self.state_dir.glob("*-???????.safetensors"):
            if p.name not in (opt_name, ad_name):
                p.unlink(missing_ok=True)

    def restore_state(self, optimizer: Any, state: dict[str, Any]) -> None:
        """Load the saved trainable weights and optimizer state into the model and `optimizer`."""
        import mlx.core as mx

        opt_file, ad_file = state_files(self.state_dir, state)
        saved = cast(dict[str, Any], mx.load(str(ad_file)))
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
        loaded = cast(dict[str, Any], mx.load(str(opt_file)))
        # The learning rate is this run's setting (a schedule recomputes it from the step), not
        # the saved one: `--resume RUN --learning-rate 1e-5` after a NaN must act.
        loaded.pop("learning_rate", None)
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


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def checkpoints_named(folder: Path, name: str) -> bool:
    """Whether `name` is a periodic checkpoint (mlx-lm's 0000100_adapters.safetensors)."""
    return any(p.name == name for _, p in checkpoints(folder))


def _link_over(src: Path, dst: Path) -> None:
    """Make `dst` another name of `src`, atomically (a copy where links are not possible)."""
    import os

    tmp = dst.with_name(f".{dst.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        atomic_copy(src, dst)
        return
    os.replace(tmp, dst)
