"""User-editable colour themes: TOML files parsed, validated and turned into Textual `Theme`s.

The bundled files live in the repository's `themes/` folder; a user adds more in
`<user config dir>/mlxtui/themes/*.toml`. A bad file is reported (file:line, key, what to do) and
skipped, never a crash. A file looks like:

    name = "mlxtui-dark"
    dark = true
    primary = "#4EA1FF"
    ...
    [variables]
    footer-key-foreground = "#4EA1FF"
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

COLOR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
KNOWN_KEYS = ("name", "dark", "luminosity_spread", "text_alpha", "variables", *COLOR_KEYS)
DEFAULT_THEME = "mlxtui-dark"


@dataclass(frozen=True)
class ThemeError:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


class _Invalid(Exception):
    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


def bundled_themes_dir() -> Path:
    """`themes/` beside the package in a wheel (if packaged there), else the repository's."""
    here = Path(__file__).resolve()
    packaged = here.parent / "themes"
    return packaged if packaged.is_dir() else here.parents[2] / "themes"


def user_themes_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("mlxtui")) / "themes"


def _line_of(text: str, key: str | None) -> int | None:
    if not key:
        return None
    pattern = re.compile(rf"^[ \t]*\"?{re.escape(key)}\"?[ \t]*=", re.M)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _color(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(key, f"'{key}' must be a colour string like \"#4EA1FF\", not {value!r}")
    try:
        Color.parse(value)
    except ColorParseError:
        raise _Invalid(
            key, f'\'{key}\' = {value!r} is not a colour (use "#RRGGBB", "rgb(r,g,b)" or a name)'
        ) from None
    return value


def theme_from_dict(data: dict[str, object]) -> Theme:
    """Validate a parsed TOML table; raise `_Invalid` naming the bad key."""
    for key in data:
        if key not in KNOWN_KEYS:
            near = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(KNOWN_KEYS)}"
            raise _Invalid(key, f"unknown key '{key}': {hint}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise _Invalid("name", "'name' must be a word of letters, digits, '-', '_' or '.'")
    if "primary" not in data:
        raise _Invalid(None, "'primary' is missing: every theme needs a primary colour")
    colors = {key: _color(key, data[key]) for key in COLOR_KEYS if key in data}
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise _Invalid("dark", "'dark' must be true or false")
    numbers: dict[str, float] = {}
    for key in ("luminosity_spread", "text_alpha"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise _Invalid(key, f"'{key}' must be a number between 0 and 1")
            numbers[key] = float(value)
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise _Invalid("variables", "[variables] must map names to strings")
    return Theme(name=name, dark=dark, variables=dict(variables), **colors, **numbers)  # type: ignore[arg-type]


def load_theme_file(path: Path) -> Theme | ThemeError:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ThemeError(path, None, f"cannot read the theme file ({exc})")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        return ThemeError(path, line, f"invalid TOML: {exc} (fix the syntax there)")
    try:
        return theme_from_dict(data)
    except _Invalid as exc:
        return ThemeError(path, _line_of(text, exc.key), str(exc))


def discover_themes(dirs: list[Path] | None = None) -> tuple[list[Theme], list[ThemeError]]:
    """All themes in the bundled and user folders (later folders override earlier names)."""
    themes: dict[str, Theme] = {}
    errors: list[ThemeError] = []
    for folder in dirs if dirs is not None else [bundled_themes_dir(), user_themes_dir()]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            result = load_theme_file(path)
            if isinstance(result, ThemeError):
                errors.append(result)
            else:
                themes[result.name] = result
    return list(themes.values()), errors
