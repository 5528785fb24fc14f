"""Engine events as one line of JSON: how rank 0 of a launched run speaks to the dashboard.

A run across ranks trains in other processes (started by `mlx.launch`, on other hosts too),
so its events cannot be handed over in memory. Rank 0 prints each one as a line; the
launching process reads it back into the same frozen dataclass, and the dashboard's panes
take it as they take the in-process engine's events. Only plain values cross: nested
dataclasses (a SamplePrediction) keep their type's name, tuples come back as tuples, and a
value JSON cannot hold (a Path, an exception) crosses as its text.

Both sides may run different mlxtui versions (one per host): a field the reader does not know
is dropped, and a line it cannot rebuild is returned as None, never raised.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from mlxtui.core import events as ev

_TYPE = "__type__"
# The event classes by name, and the plain dataclasses that travel inside events.
_NESTED: dict[str, type[Any]] = {"SamplePrediction": ev.SamplePrediction}


def _event_classes() -> dict[str, type[ev.Event]]:
    return {
        name: cls
        for name, cls in vars(ev).items()
        if isinstance(cls, type) and issubclass(cls, ev.Event) and cls is not ev.Event
    }


_EVENTS = _event_classes()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # JSON has no NaN/inf; the loss of a diverging run is exactly that
        return value if math.isfinite(value) else {_TYPE: "float", "value": repr(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        out[_TYPE] = type(value).__name__
        return out
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _rebuilt(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_rebuilt(v) for v in value)  # the events' sequences are tuples
    if isinstance(value, dict):
        kind = value.get(_TYPE)
        if kind == "float":
            return float(value["value"])
        inner = {k: _rebuilt(v) for k, v in value.items() if k != _TYPE}
        cls = _NESTED.get(kind) if isinstance(kind, str) else None
        if cls is None:
            return inner
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in inner.items() if k in names})
    return value


def encode(event: ev.Event) -> str:
    """One line of JSON (no newline) that `decode` turns back into `event`."""
    fields = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return json.dumps({"event": type(event).__name__, "fields": fields}, separators=(",", ":"))


def decode(text: str) -> ev.Event | None:
    """The event `encode` wrote, or None when the line is not one (damaged, or unknown here)."""
    try:
        data = json.loads(text)
        cls = _EVENTS[data["event"]]
        raw = data["fields"]
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        values = {k: _rebuilt(v) for k, v in raw.items() if k in known}
        if "error" in values:
            values["error"] = None  # an exception crosses as its text; the message holds it
        return cls(**values)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
