"""SIGHUP (the SSH session closed) and SIGTERM while the dashboard runs: save, then quit.

By default either signal ends the process at once, mid-step, and the run loses everything since
its last checkpoint. Here the app is asked to stop the training at its next step (the adapter is
saved) and quit; idle, it quits at once.

A closed terminal needs more: Textual's writer thread dies on the first write that fails (EIO)
and the UI thread then blocks forever on the writer's full queue, so the app could never quit
(seen: the adapter saved, the process still there minutes later). So on SIGHUP, and only in a
real terminal, the output descriptors are pointed at /dev/null before anything else happens, and
a writer thread that already died has its queue drained. The handler is a plain `signal.signal`
one: Python runs it even while the UI thread waits on that queue; the app's part is scheduled
onto its loop from there.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

HANGUP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGHUP", None), getattr(signal, "SIGTERM", None)) if s is not None
)


def silence_terminal(driver: Any) -> None:
    """Make every later write to the terminal succeed (into /dev/null) and unblock the writer."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            try:
                os.dup2(devnull, fd)
            except OSError:
                pass
    finally:
        os.close(devnull)
    writer = getattr(driver, "_writer_thread", None)
    queue = getattr(writer, "_queue", None)
    if writer is not None and queue is not None and not writer.is_alive():

        def drain() -> None:
            while queue.get() is not None:
                pass

        threading.Thread(target=drain, name="hangup-drain", daemon=True).start()


class HangupHandlers:
    """Installs the handlers (main thread only) and puts the previous ones back."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}

    @property
    def signals(self) -> list[int]:
        return list(self.previous)

    def install(self, loop: Any, on_signal: Callable[[int], None], driver: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread

        def handler(signum: int, _frame: Any) -> None:
            if signum == getattr(signal, "SIGHUP", None) and not getattr(
                driver, "is_headless", True
            ):
                silence_terminal(driver)
            loop.call_soon_threadsafe(on_signal, signum)

        for signum in HANGUP_SIGNALS:
            try:
                self.previous[int(signum)] = signal.signal(signum, handler)
            except (OSError, RuntimeError, ValueError):
                continue

    def restore(self) -> None:
        for signum, previous in self.previous.items():
            try:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            except (OSError, RuntimeError, ValueError):
                pass
        self.previous.clear()
