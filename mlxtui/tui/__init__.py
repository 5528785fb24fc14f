"""The Textual dashboard (`mlxtui` with no sub-command)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlxtui.core.config import TrainConfig


def run_dashboard(config: TrainConfig | None = None, theme: str | None = None) -> int:
    """Run the dashboard in this terminal until the user quits; returns the exit code.

    `theme` names a bundled or user theme (themes/*.toml, <config dir>/mlxtui/themes/*.toml).
    """
    from mlxtui.tui.app import MlxtuiApp

    app = MlxtuiApp(config, theme=theme)
    result = app.run()
    return int(result or 0) if app.return_code in (None, 0) else int(app.return_code)
