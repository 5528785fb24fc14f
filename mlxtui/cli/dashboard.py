"""`mlxtui` / `mlxtui dashboard`: open the Textual dashboard, with train flags as its start values."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlxtui.cli.errors import config_error_text
from mlxtui.cli.train import add_train_arguments, config_from_args, given_train_flags


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("dashboard", help="open the dashboard (the default)")
    add_train_arguments(p)
    p.add_argument("--theme", help="theme name (see themes/)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mlxtui.core.config import ConfigError

    if given_train_flags(args):
        try:
            config = config_from_args(args)
        except ConfigError as e:
            print(f"mlxtui: {config_error_text(e)}", file=sys.stderr)
            return 2
    else:
        config = None  # the dashboard opens with the last session's settings, else quick-start
    from mlxtui.tui import run_dashboard

    return int(run_dashboard(config, theme=getattr(args, "theme", None)) or 0)
