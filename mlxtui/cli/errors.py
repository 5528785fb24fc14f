"""How the command line words the core's typed errors: a setting is named by its flag."""

from __future__ import annotations

from typing import Any

COMMAND_LINE = "the command line"


def config_error_text(e: Any) -> str:
    """A ConfigError for a person at a terminal.

    A bad flag value reads `--batch-size: must be at least 1`; a bad YAML value keeps the file
    and the key (`run.yaml: batch_size: …`), since that is what the user edits.
    """
    from mlxtui.core.config import flag_for

    field = getattr(e, "field", None)
    where = getattr(e, "where", None)
    message = getattr(e, "message", str(e))
    flag = flag_for(field) if field else None
    if flag and where in (COMMAND_LINE, None):
        return f"{flag}: {message}"
    return str(e)


def replace_worded(text: str) -> str:
    """A core message whose fix is to replace what exists, with the fix said as the --force flag."""
    from mlxtui.core.fileio import worded_replace

    return worded_replace(text, "pass --force to replace it")
