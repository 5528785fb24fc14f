"""Textual messages for the dashboard, and the bridge that brings engine events onto the UI thread.

The engine calls its `on_event` callback on the MLX thread. The bridge queues each event and posts
one `EventsPending` message; several pending ones merge (`can_replace`), so a flood of training
steps or tokens costs one UI wake-up, yet no event is lost and their order is kept.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from mlxtui.core.events import Event


class EventsPending(Message):
    """Engine events are waiting in the bridge: drain them with `EventBridge.drain()`."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsPending)


class EventBridge:
    """Callable given to the engine as `on_event`; safe to call from any thread."""

    def __init__(self, target: MessagePump) -> None:
        self._target = target
        self._queue: deque[Event] = deque()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._queue.append(event)
        # post_message is thread-safe; after the app closed it returns False and the event is dropped.
        self._target.post_message(EventsPending())

    def drain(self) -> list[Event]:
        with self._lock:
            events = list(self._queue)
            self._queue.clear()
        return events
