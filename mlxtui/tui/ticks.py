"""Periodic draws in slots of their own, so two never share a frame.

A frame repaints the rectangle around everything refreshed since the last one: the status line
(the bottom row) drawn with the Loss pane's lr line (row 13 at 120x40) repaints every widget
between them, the Config form's rows and the Dataset and Chat panes included, where each alone
repaints one row. Each periodic draw while training (status line, the Loss pane's line, the loss
plot) therefore comes at instants of the monotonic clock fixed modulo its interval, each at its
own phase, at least 125 ms from another's.
"""

from __future__ import annotations

import time

# (interval, phase) in seconds
STATUS_SLOT = (0.5, 0.0)
LOSS_LINE_SLOT = (0.5, 0.25)
PLOT_SLOT = (0.25, 0.125)


def until_slot(slot: tuple[float, float], not_before: float = 0.0) -> float:
    """Seconds from now to the first instant of `slot` at or after `not_before` (monotonic)."""
    interval, phase = slot
    now = time.monotonic()
    start = max(now, not_before)
    return start - now + (phase - start) % interval
