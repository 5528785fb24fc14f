"""The train job's user-facing error."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """A failure the user can act on; the message says what and where."""
