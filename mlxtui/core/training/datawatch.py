"""The dataset files under a running training: the run trains on the copy it tokenized at the
start, so a file edited, replaced or deleted meanwhile changes nothing in this run, but the
user is told (once per file), because a resume or a new run would read the new content.

The run asks at every safe point (each step, each evaluation batch, while paused) through
`poll`, which looks at most once every POLL_SECONDS (a stat of three files): the warning comes
while the run goes on, not at the next save or at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 1.0
SPLITS = ("train.jsonl", "valid.jsonl", "test.jsonl")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class DataWatch:
    def __init__(
        self,
        data_dir: Path,
        every: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self._seen = {name: _stamp(data_dir / name) for name in SPLITS}
        self._told: set[str] = set()
        self.every = every
        self._clock = clock
        self._looked = clock()

    def poll(self) -> list[str]:
        """`changes()`, at most once every `every` seconds (else nothing): cheap at every step."""
        now = self._clock()
        if now - self._looked < self.every:
            return []
        self._looked = now
        return self.changes()

    def changes(self) -> list[str]:
        """One message per file that changed since the start and was not reported yet."""
        out = []
        for name, before in self._seen.items():
            if before is None or name in self._told:
                continue
            now = _stamp(self.data_dir / name)
            if now == before:
                continue
            self._told.add(name)
            what = "was deleted" if now is None else "changed on disk"
            out.append(
                f"{self.data_dir / name} {what} during training; this run goes on with the "
                f"examples it loaded at the start (nothing is lost), but a resume or a new run "
                f"reads the file as it is now"
            )
        return out
