"""Ctrl-C, SIGTERM and SIGHUP for the headless commands: the first asks the run to stop and
save, a second ends it now.

`mlxtui train`, `mlxtui sweep` and the launching side of `mlxtui train --nproc/--hosts` share
this; each gives only its two actions. While the block runs the handlers are this helper's;
afterwards the ones that were there before (SIG_IGN under nohup, say) are put back.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

# `uv run` forwards the terminal's SIGINT to its child, which got it from the terminal too:
# one press can arrive twice. A repeat within this many seconds is that same press.
REPEAT_S = 1.0


def signal_name(signum: int) -> str:
    """How a message names the signal: a person pressed Ctrl-C, or something sent SIGTERM/SIGHUP."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class StopSignals:
    """`with StopSignals(first, second) as stops:` runs the block with SIGINT and SIGTERM (and
    SIGHUP, unless `hangup` is False) calling `first(signum)` the first time and `second(signum)`
    on every later one; `stops.count` says how many arrived (repeats of one press aside)."""

    def __init__(
        self,
        first: Callable[[int], None],
        second: Callable[[int], None],
        *,
        hangup: bool = True,
    ) -> None:
        self.first = first
        self.second = second
        self.signals = [signal.SIGINT, signal.SIGTERM]
        if hangup and hasattr(signal, "SIGHUP"):
            self.signals.append(signal.SIGHUP)
        self.count = 0
        self._at = 0.0
        self._previous: dict[int, Any] = {}

    @property
    def interrupted(self) -> bool:
        return self.count > 0

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.signals}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.count and now - self._at < REPEAT_S:
            return
        self.count += 1
        self._at = now
        (self.second if self.count > 1 else self.first)(signum)
