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
    code = int(result or 0) if app.return_code in (None, 0) else int(app.return_code)
    if app.engine_left_running:
        # The MLX thread is still inside a load's native call: ending the interpreter around
        # it aborts the process (see engine._wait_for_native_exit). Nothing is left to save.
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
