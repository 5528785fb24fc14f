"""Atomic writes: a crash at any moment leaves the previous file whole and loadable."""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


class DiskFullError(OSError):
    """Raised instead of a bare ENOSPC, naming the file and what to do."""

    path: Path | None = None  # the file whose write found the disk full


# Fault injection for the kill -9 trials (benchmarks/kill_trials.py): seconds to sleep between
# writing a temporary file and renaming it, so a kill lands inside a checkpoint write.
WRITE_DELAY_ENV = "MLXTUI_FAULT_WRITE_DELAY"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC (or a full quota) from Python, or MLX's own word for it: on a full disk
    `mx.save_safetensors` raises RuntimeError("[write] Unable to write 8 bytes to file.")."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return str(e).startswith("[write] Unable to write")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)`, fsync it, then rename it over `path`.

    `write` receives a temporary path in the same folder (so the rename is atomic); on any
    failure the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        delay = os.environ.get(WRITE_DELAY_ENV)
        if delay:
            time.sleep(float(delay))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            full = DiskFullError(
                errno.ENOSPC,
                f"disk full while writing {path}; the previous version is intact. "
                "Free some space (or choose another folder) and save again",
            )
            full.path = path
            raise full from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def atomic_save_safetensors(
    path: Path, arrays: dict, metadata: dict[str, str] | None = None
) -> None:
    import mlx.core as mx

    # mx.save_safetensors appends ".safetensors" when missing, so the temp name must end with it.
    atomic_write(
        Path(path), lambda tmp: mx.save_safetensors(str(tmp), arrays, metadata=metadata or {})
    )


def path_inside(child: Path, parent: Path) -> bool:
    """True when `child` is `parent` or lies under it (after resolving links)."""
    try:
        child.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


# The core names no front end's control (as ConfigError names no flag): where replacing what
# exists is the fix, a message says REPLACE_REMEDY, and each front end words it with
# `worded_replace`: the CLI as its --force flag, the dashboard as its switch's label.
REPLACE_REMEDY = "allow replacing it"


def worded_replace(text: str, words: str) -> str:
    """`text` with the plain REPLACE_REMEDY said as the front end says it ("pass --force…")."""
    return text.replace(REPLACE_REMEDY, words)


def why_not_replace(out: Path, force: bool) -> str | None:
    """Why the non-empty folder `out` may not be written over, or None when it may (or is empty).

    force replaces an earlier model, never a folder of other things (`--save-path .`)."""
    if not out.is_dir() or not any(out.iterdir()):
        return None
    if not force:
        return f"{out} exists and is not empty; choose another path or {REPLACE_REMEDY}"
    if not (out / "config.json").is_file():
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        return (
            f"{out} is not a model folder (no config.json; it holds {shown}…) and only a model "
            "folder is ever replaced: choose a new or empty folder"
        )
    return None


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy `src` over `dst` atomically: a reader of `dst` sees the old file or the new one."""
    import shutil

    def write(tmp: Path) -> None:
        shutil.copyfile(src, tmp)

    atomic_write(Path(dst), write)


def is_adapter_file(name: str) -> bool:
    return name == "adapter_config.json" or name.endswith("adapters.safetensors")


def why_not_adapter_dir(out: Path, ignore: tuple[str, ...] = ()) -> str | None:
    """Why checkpoints may not be written into `out`, or None when they may.

    An adapter folder (mlx-lm's --adapter-path) is written over checkpoint by checkpoint, as
    mlx-lm does; a folder of other things never is (`--adapter-path .` or a data folder)."""
    if out.exists() and not out.is_dir():
        return f"--adapter-path {out} is a file, not a folder; give a folder for the adapter"
    if not out.is_dir():
        return None
    others = sorted(p.name for p in out.iterdir() if p.name not in ignore and not p.name.startswith("."))
    if not others or any(is_adapter_file(n) for n in others):
        return None
    shown = ", ".join(others[:3]) + ("…" if len(others) > 3 else "")
    return (
        f"--adapter-path {out} holds other files ({shown}) and no adapter; checkpoints are "
        "written there as they are saved, so give a new or empty folder, or an adapter folder"
    )
