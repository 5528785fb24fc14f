"""What the dashboard remembers between sessions: the form's values, the chat options, the theme
and the dataset view, in `session.json` of the user's config folder (platformdirs;
`MLXTUI_CONFIG_DIR` overrides it, which the tests use).

Form values are kept as the text a person typed and go back through the same validation as a
keystroke (`config.validate_field`): a value a newer mlxtui refuses is dropped with its reason,
never applied half-checked. A missing or unreadable file means the quick-start defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlxtui.core.config import FORM_FIELD_NAMES, TrainConfig, get_field, set_field, validate_field
from mlxtui.core.fileio import atomic_write_text

SESSION_FILE = "session.json"
VERSION = 1
ENV_DIR = "MLXTUI_CONFIG_DIR"


def config_dir() -> Path:
    """The user's mlxtui config folder (`MLXTUI_CONFIG_DIR` when set)."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("mlxtui"))


def session_path() -> Path:
    return config_dir() / SESSION_FILE


@dataclass
class Session:
    form: dict[str, str] = field(default_factory=dict)  # field name -> the text typed
    chat: dict[str, str] = field(default_factory=dict)  # system, temp, top_p, max, rep, weights
    theme: str | None = None
    dataset_split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "form": self.form,
            "chat": self.chat,
            "theme": self.theme,
            "dataset_split": self.dataset_split,
        }


def form_text(value: Any) -> str:
    """A field's value as the text that types it back (validate_field's input)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def form_values(config: TrainConfig, names: tuple[str, ...] = FORM_FIELD_NAMES) -> dict[str, str]:
    return {name: form_text(get_field(config, name)) for name in names}


def load_session(path: Path | None = None) -> tuple[Session | None, str | None]:
    """(the saved session, None), or (None, why it was not read) for a damaged file; (None, None)
    when there is none yet."""
    path = path or session_path()
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path}: cannot read it ({e}); starting from the quick-start settings"
    except json.JSONDecodeError as e:
        return (
            None,
            f"{path}:{e.lineno}: not valid JSON ({e.msg}); starting from the quick-start settings",
        )
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None, f"{path}: not a session file of this mlxtui (version {VERSION}); ignored"

    def strings(key: str) -> dict[str, str]:
        value = data.get(key)
        if not isinstance(value, dict):
            return {}
        return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float | bool)}

    theme = data.get("theme")
    split = data.get("dataset_split")
    return (
        Session(
            form=strings("form"),
            chat=strings("chat"),
            theme=theme if isinstance(theme, str) else None,
            dataset_split=split if isinstance(split, str) else None,
        ),
        None,
    )


def save_session(session: Session, path: Path | None = None) -> Path:
    path = path or session_path()
    atomic_write_text(path, json.dumps(session.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def forget_session(path: Path | None = None) -> bool:
    """Remove the saved session (back to the quick-start defaults); True when there was one."""
    path = path or session_path()
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def apply_form(config: TrainConfig, values: dict[str, str]) -> tuple[TrainConfig, dict[str, str]]:
    """`config` with the remembered form values typed in, and {field: why} for those refused
    (an unknown field, or a value that no longer validates)."""
    rejected: dict[str, str] = {}
    for name, raw in values.items():
        if name not in FORM_FIELD_NAMES:
            rejected[name] = "not a field of this version's form"
            continue
        try:
            value, error = validate_field(name, raw)
            if error is None:
                error = _gone(name, raw)
            if error is None:
                candidate = set_field(config, name, value)
        except Exception as e:  # noqa: BLE001 - a bad remembered value must never stop the dashboard
            value, error = None, str(e)
        if error is not None:
            rejected[name] = error
            continue
        config = candidate
    return config, rejected


# Fields whose value may be a folder on this machine: a folder removed since the last session
# (a temporary copy, a model deleted to free space) is not put back in the form, where loading
# it would greet the user with an error; the field's default (the demo) stands.
PATH_FIELDS = ("model", "data")


def _gone(name: str, raw: str) -> str | None:
    text = str(raw).strip()
    if name not in PATH_FIELDS or not text.startswith(("/", "~", "./", "../")):
        return None  # empty (the demo), a hub id (owner/name), or not a path field
    if Path(text).expanduser().exists():
        return None
    return f"{text} no longer exists"


class SessionKeeper:
    """Keeps `session.json` up to date while the dashboard runs, so a dashboard that is killed
    (kill -9, a closed terminal, a crash) still opens next time as it was left.

    The dashboard offers the session as it is on screen at a steady tick (`offer`); it is
    written (atomically) once it differs from what was last written and has not changed since
    the tick before: a burst of edits (typing a value, cycling themes) is one write, a second
    or two after it settles. After `forget()` (back to the quick-start settings), the next
    settled session is taken as the new starting point without writing it.
    """

    def __init__(self, written: Session | None = None, path: Path | None = None) -> None:
        self.path = path
        self._written: dict[str, Any] | None = written.to_dict() if written is not None else None
        self._pending: dict[str, Any] | None = None
        self._forgotten = False
        self.writes = 0

    def offer(self, session: Session) -> bool:
        """The session now; True when this call wrote it."""
        now = session.to_dict()
        if now == self._written:
            self._pending = None
            return False
        if now != self._pending:  # still changing: wait for it to settle
            self._pending = now
            return False
        self._pending = None
        if self._forgotten:
            self._forgotten = False
            self._written = now
            return False
        return self.save(session)

    def save(self, session: Session) -> bool:
        """Write it now when it differs from the file (the quit's save); True when written."""
        now = session.to_dict()
        if now == self._written and (self.path or session_path()).is_file():
            return False
        save_session(session, self.path)
        self._written, self._pending, self._forgotten = now, None, False
        self.writes += 1
        return True

    def forget(self) -> None:
        """The file was removed on purpose: do not write the reset settings back by themselves."""
        forget_session(self.path)
        self._written, self._pending, self._forgotten = None, None, True
