"""User theme files: parsed, validated, registered; a bad file becomes a notification."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_tui_fakes import FakeEngine

from mlxtui.tui import themes
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.themes import ThemeError, discover_themes, load_theme_file


def test_bundled_themes_load() -> None:
    found, errors = discover_themes([themes.bundled_themes_dir()])
    assert errors == []
    names = {t.name for t in found}
    assert {"mlxtui-dark", "mlxtui-light"} <= names
    light = next(t for t in found if t.name == "mlxtui-light")
    assert light.dark is False and light.primary == "#0969DA"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ('name = "x"\nprimary = "#00ff00"\nprimery = "#fff"\n', 3, "did you mean 'primary'"),
        ('name = "x"\n\nprimary = "not-a-colour"\n', 3, "is not a colour"),
        ('name = "x"\nprimary = "#fff"\ndark = "yes"\n', 3, "true or false"),
        ('name = "x"\nsurface = "#fff"\n', None, "'primary' is missing"),
        ('name = "x"\nprimary = #fff\n', 2, "invalid TOML"),
        ('primary = "#fff"\n', None, "'name' must be"),
    ],
)
def test_bad_theme_file_says_where_and_what(
    tmp_path: Path, text: str, line: int | None, needle: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = load_theme_file(path)
    assert isinstance(result, ThemeError)
    assert result.line == line
    assert needle in result.message
    assert str(result).startswith(f"{path}:{line}" if line else str(path))


async def test_app_registers_user_themes_and_reports_bad_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine.toml").write_text('name = "my-theme"\nprimary = "#ff00ff"\ndark = true\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "purple-ish"\n')
    monkeypatch.setattr(themes, "user_themes_dir", lambda: tmp_path)
    app = MlxtuiApp(engine_factory=lambda on_event: FakeEngine(on_event))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "my-theme" in app.available_themes
        assert "broken" not in app.available_themes
        assert app.theme == "mlxtui-dark"
        messages = [n.message for n in app._notifications]
        assert any("broken.toml:2" in m and "not a colour" in m for m in messages)
        app.theme = "my-theme"  # switching to a user theme works
        await pilot.pause()
        assert app.current_theme.primary == "#ff00ff"


async def test_theme_chosen_by_name_or_reported() -> None:
    app = MlxtuiApp(engine_factory=lambda on_event: FakeEngine(on_event), theme="mlxtui-light")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == "mlxtui-light"
    app = MlxtuiApp(engine_factory=lambda on_event: FakeEngine(on_event), theme="nope")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == "mlxtui-dark"
        assert any("no theme named 'nope'" in n.message for n in app._notifications)


COLOUR_NAMES = r"(red|green|yellow|blue|cyan|magenta|orange|white|black|grey\d*|gray\d*)"
HARD_CODED = [
    re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}(?![\w-])"),  # hex, not a #widget-id
    re.compile(rf"(style|color)\s*=\s*f?\"[^\"]*\b{COLOUR_NAMES}\b"),
    re.compile(rf"\"(bold|dim|italic|reverse|underline)[^\"]*\b{COLOUR_NAMES}\b[^\"]*\""),
    re.compile(rf"\[/?((bold|dim|italic) )*{COLOUR_NAMES}\]"),  # Rich markup
    re.compile(r"Style\(color=|rgb\("),
    re.compile(rf"plt\.\w+\([^)]*\"{COLOUR_NAMES}\""),  # plotext
    re.compile(rf"(color|background|border[\w-]*|tint)\s*:[^;$\n]*\b{COLOUR_NAMES}\b"),  # CSS
]


def test_dashboard_colours_come_from_the_theme() -> None:
    """Colours are theme variables ($error, $success…), never values written in the code, so a
    theme file recolours everything. themes.py is exempt: it documents the theme file format."""
    tui = Path(themes.__file__).parent
    found = []
    for path in sorted([*tui.rglob("*.py"), *tui.rglob("*.tcss")]):
        if path.name == "themes.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if any(p.search(line) for p in HARD_CODED):
                found.append(f"{path.relative_to(tui)}:{number}: {line.strip()}")
    assert found == []


def test_the_hard_coded_colour_check_finds_them() -> None:
    for line in (
        'text.append("x", style="bold red")',
        'SEVERITY = {"error": "bold red"}',
        'plt.bar(xs, ys, color="cyan")',
        'plt.vline(3, "red")',
        "Static { color: #ff0000; }",
        "MemoryGauge { background: red; }",
        '"[bold red]failed[/]"',
        "Style(color=x)",
    ):
        assert any(p.search(line) for p in HARD_CODED), line
    for line in ('query_one("#mem-text")', 'style="bold $error"', 'pressure == "red"', "#add-x"):
        assert not any(p.search(line) for p in HARD_CODED), line
