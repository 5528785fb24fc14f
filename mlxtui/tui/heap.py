"""Keep the garbage collector's full passes short: the dashboard's long-lived objects are frozen.

A full (generation 2) collection walks every object the collector tracks. With Textual's widgets,
mlx-lm and its imports alive, that took 80-110 ms here (benchmarks/bench_dashboard.py prints
them), about once a second while training: the UI thread stopped for that long, so a key press
waited for it, and the training thread too, since the collector holds the GIL. `gc.freeze()`
moves the objects alive now (modules, classes, widgets, the loaded model's modules) into a
permanent generation that collections skip. Reference counting still frees them; only garbage
cycles among them would stay, and those are long-lived by then.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Call once what exists now is meant to last: after the first frame, after a model load."""
    gc.freeze()


def thaw() -> None:
    """When the dashboard closes: its objects go back to the collector (a process that runs
    another app afterwards, as the tests do, gets their memory back)."""
    gc.unfreeze()
