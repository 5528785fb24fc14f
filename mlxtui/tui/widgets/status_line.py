"""The one-line run status under the panes."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import Static

from mlxtui.tui.status import Status, status_text
from mlxtui.tui.ticks import STATUS_SLOT, until_slot

# While training, a step's figures reach the line at most this often (twice a second: each draw is
# a frame, whose CPU the training thread waits for). The draw also comes in a frame of its own
# (mlxtui/tui/ticks.py): a frame holding this full-width bottom row and a row of
# a pane (the Loss pane's lr line, drawn each step) repaints every widget between them, the
# Config form's ~100 included: about 7 ms of CPU here, against 0.4 + 0.9 ms for the two apart.
TRAINING_DRAW_INTERVAL_S = STATUS_SLOT[0]


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; background: $panel; color: $text; }
    StatusLine.-training { background: $primary 40%; }
    StatusLine.-paused { background: $warning 40%; }
    StatusLine.-error { background: $error 40%; }
    StatusLine.-done { background: $success 40%; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown: Status | None = None  # the status on screen
        self._wanted: Status | None = None
        self._timer: Any = None
        self._drawn_at = 0.0

    def show(self, status: Status) -> None:
        """Show `status`: at once, except a training's next figures (see TRAINING_DRAW_INTERVAL_S)."""
        self._wanted = status
        if self.shown is None or not (self.shown.state == status.state == "training"):
            self._draw()
        elif self._timer is None:
            wait = until_slot(STATUS_SLOT, self._drawn_at + TRAINING_DRAW_INTERVAL_S)
            self._timer = self.set_timer(max(wait, 0.001), self._draw)

    def _draw(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        status = self._wanted
        if status is None:
            return
        for state in ("training", "paused", "error", "done", "loading"):
            self.set_class(status.state == state, f"-{state}")
        # One row whatever the text (height 1, ellipsis): no layout pass of the whole screen,
        # which cost ~0.15 s a time with the Config form mounted, several times a step.
        self.update(Text(status_text(status), no_wrap=True, overflow="ellipsis"), layout=False)
        self.shown = status
        self._drawn_at = time.monotonic()
