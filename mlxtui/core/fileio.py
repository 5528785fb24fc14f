"""Atomic writes: a crash at any moment leaves the previous file whole and loadable."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class DiskFullError(OSError):
    """Raised instead of a bare ENOSPC, naming the file and what to do."""


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
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise DiskFullError(
                errno.ENOSPC,
                f"disk full while writing {path}; the previous version is intact. "
                "Free some space (or choose another folder) and save again",
            ) from None
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
