"""Stop and pause requests: set by any thread, read by the engine thread at safe points."""

from __future__ import annotations

import threading
from collections.abc import Callable


class TrainControl:
    """Thread-safe flags the UI thread sets and the engine thread reads at safe points
    (step boundaries, evaluation batches, generated tokens)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self.pause_reason = ""

    def request_stop(self) -> None:
        self._stop.set()
        self._resume.set()

    def request_pause(self, reason: str = "user") -> None:
        self.pause_reason = reason
        self._resume.clear()

    def request_resume(self) -> None:
        self._resume.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._resume.is_set()

    def wait_while_paused(
        self, poll: Callable[[], None] | None = None, interval: float = 0.2
    ) -> None:
        while not self._resume.wait(interval):
            if poll is not None:
                poll()
