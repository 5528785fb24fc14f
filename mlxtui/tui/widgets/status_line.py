"""The one-line run status under the panes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from mlxtui.tui.status import Status, status_text


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; background: $panel; color: $text; }
    StatusLine.-training { background: $primary 40%; }
    StatusLine.-paused { background: $warning 40%; }
    StatusLine.-error { background: $error 40%; }
    StatusLine.-done { background: $success 40%; }
    """

    def show(self, status: Status) -> None:
        for state in ("training", "paused", "error", "done", "loading"):
            self.set_class(status.state == state, f"-{state}")
        # One row whatever the text (height 1, ellipsis): no layout pass of the whole screen,
        # which cost ~0.15 s a time with the Config form mounted, several times a step.
        self.update(Text(status_text(status), no_wrap=True, overflow="ellipsis"), layout=False)
