"""The key bar at the bottom: Textual's Footer, rebuilt only when the keys it shows change.

Textual's Footer removes and mounts all its keys again whenever the screen's bindings may have
changed, which is on every focus change: a pane key (1-5) rebuilt about twenty keys and restyled
each twice, with a layout pass, though moving between panes leaves the keys the same.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


def keys_shown(screen: Screen[Any]) -> tuple[tuple[Any, ...], ...]:
    """What the footer draws from: each active binding's key, action, label and state."""
    return tuple(
        (key, binding.action, binding.description, binding.key_display, binding.show, enabled, tip)
        for key, (_node, binding, enabled, tip) in screen.active_bindings.items()
    )


class Footer(TextualFooter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._built_for: tuple[tuple[Any, ...], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        # Textual's rebuilds only in this case (focus on the app, this footer's screen).
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            keys = keys_shown(screen)
            if keys == self._built_for:
                return
            self._built_for = keys
        super().bindings_changed(screen)
