"""How the dashboard words the core's typed errors: a setting is named by its form label."""

from __future__ import annotations

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, field_label

# where a value came from when the dashboard was started with train flags (cli.errors's word)
_COMMAND_LINE = "the command line"


def failure_text(event: ev.JobFailed) -> tuple[str, str]:
    """(message, hint) of a failed job for the dashboard.

    A ConfigError names its setting (`batch_size`); the user sees the form's label for it
    ("Batch size") and where to fix it, not the CLI flag or the YAML key.
    """
    error = event.error
    if isinstance(error, ConfigError) and error.field:
        label = field_label(error.field)
        where = f"{error.where}: " if error.where and error.where != _COMMAND_LINE else ""
        return f"{where}{label}: {error.message}", f"fix {label} in the Config pane"
    return event.message, event.hint
