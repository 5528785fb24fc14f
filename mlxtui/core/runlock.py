"""One writer per folder: a run folder (or an --adapter-path folder) is written by one mlxtui
process at a time.

The lock is an advisory `flock` on a small file in the folder that names the holder (pid,
host, command). The kernel drops a flock when its process dies, even by `kill -9`, so a lock
left by a dead process is simply taken over; the pid in the file only serves the message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LOCK_FILE = ".mlxtui.lock"


class FolderInUse(RuntimeError):
    """Another live process holds the folder's lock; the message names it."""

    def __init__(self, folder: Path, holder: dict[str, Any]) -> None:
        self.folder = folder
        self.holder = holder
        pid = holder.get("pid", "?")
        since = holder.get("since")
        when = time.strftime(" since %H:%M:%S", time.localtime(since)) if since else ""
        super().__init__(
            f"{folder} is in use by another mlxtui process (pid {pid} on "
            f"{holder.get('host', '?')}{when}: {holder.get('command', '?')}); two processes writing "
            f"one folder would mix their checkpoints. Wait for it to finish, stop it "
            f"(`kill {pid}` saves and exits), or give another folder"
        )


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class FolderLock:
    """Hold `folder`'s lock until `release()` (or the process ends)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._file: Any = None
        self.took_over_from: int | None = None  # the pid of a dead holder that left its file

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                raise FolderInUse(self.folder, _read_holder(self.path)) from None
            # The holder before us may have unlinked the file between our open and our flock:
            # then we hold a lock on a name nobody else sees, so start again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        stale = _read_holder(self.path)
        f.seek(0)
        f.truncate()
        f.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.time(),
                    "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
                    "took_over_from": stale.get("pid"),
                }
            )
        )
        f.flush()
        self._file = f
        pid = stale.get("pid")
        self.took_over_from = pid if isinstance(pid, int) else None
        return self

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self._file.close()  # closing drops the flock
            self._file = None


def holder(folder: Path) -> dict[str, Any] | None:
    """Who holds `folder`'s lock now (a live process), or None: a cheap check before a long load."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(path)
    except OSError:
        return None
    return None
