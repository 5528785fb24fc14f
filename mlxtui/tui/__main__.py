"""`python -m mlxtui.tui`: the dashboard with the quick-start settings."""

import sys

from mlxtui.tui import run_dashboard

sys.exit(run_dashboard())
