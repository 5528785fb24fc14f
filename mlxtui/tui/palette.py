"""Colours for what CSS cannot reach (Rich tables, plotext plots), read from the current theme.

Widgets' own text uses `$variables` (in .tcss or in `Content` styles such as "bold $error"),
which Textual resolves when it draws. A Rich `Table` and plotext want concrete colours instead:
these functions look them up in the running app's theme, so a theme file recolours them too.
"""

from __future__ import annotations

from typing import Any

from textual.color import Color

# What each meaning is drawn in: theme variable names, never colour values.
TRAIN_CURVE = "primary"
VAL_CURVE = "accent"
LR_CURVE = "success"
CURRENT_MARK = "accent"  # the current iteration on the learning-rate schedule
HISTOGRAM = "primary"
LIMIT_LINE = "error"
REFERENCE = "success"


def theme_color(app: Any, variable: str) -> str:
    """The theme's colour for `variable` ("error", "primary", …) as "#RRGGBB"."""
    value = app.theme_variables.get(variable) or app.theme_variables["foreground"]
    return Color.parse(value).hex6


def plot_color(app: Any, variable: str) -> tuple[int, int, int]:
    """The same colour as plotext takes it: an (r, g, b) tuple."""
    return Color.parse(theme_color(app, variable)).rgb
