"""The session is written while the dashboard runs (debounced, atomic), not only at quit: a
dashboard that is killed opens next time as it was left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from test_session_memory import make_app, wait_for
from textual.widgets import Input

from mlxtui.core import session_memory as sm
from mlxtui.core.config import TrainConfig
from mlxtui.tui.widgets.chat import ChatPane
from mlxtui.tui.widgets.config_form import ConfigForm


def _session(lr: str) -> sm.Session:
    return sm.Session(form={"learning_rate": lr}, chat={"temp": "0.7"}, theme="textual-dark")


def test_a_change_is_written_once_it_settles():
    keeper = sm.SessionKeeper(_session("0.0002"))
    assert keeper.offer(_session("0.0002")) is False and not sm.session_path().exists()
    assert keeper.offer(_session("0.0003")) is False, "changed this tick: wait for it to settle"
    assert keeper.offer(_session("0.0004")) is False, "still changing"
    assert keeper.offer(_session("0.0004")) is True
    assert json.loads(sm.session_path().read_text())["form"]["learning_rate"] == "0.0004"
    assert keeper.offer(_session("0.0004")) is False and keeper.writes == 1
    # nothing but the file is written: no temporary file is left beside it
    assert [p.name for p in sm.config_dir().iterdir()] == ["session.json"]


def test_forget_does_not_write_the_reset_settings_back():
    keeper = sm.SessionKeeper(None)
    keeper.offer(_session("0.0003"))
    keeper.offer(_session("0.0003"))
    assert sm.session_path().is_file()
    keeper.forget()
    assert not sm.session_path().exists()
    for _ in range(3):
        keeper.offer(_session("0.0002"))  # the quick-start values, settled
    assert not sm.session_path().exists()
    keeper.offer(_session("0.001"))
    keeper.offer(_session("0.001"))
    assert json.loads(sm.session_path().read_text())["form"]["learning_rate"] == "0.001"


async def test_the_dashboard_writes_an_edit_without_quitting():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.query_one(ConfigForm).set_value("iters", "321")
        app.query_one(ChatPane).query_one("#chat-temp", Input).value = "0.2"

        def saved() -> dict:
            path = sm.session_path()
            return json.loads(path.read_text()) if path.is_file() else {}

        assert await wait_for(pilot, lambda: saved().get("form", {}).get("iters") == "321", tries=300)
        assert saved()["chat"]["temp"] == "0.2"
        assert app.is_running  # written while it runs: a kill now keeps it
        writes = app.session_keeper.writes
        await pilot.pause(1.5)
        assert app.session_keeper.writes == writes, "nothing changed: nothing written again"


_DASHBOARD = """
import sys
sys.path.insert(0, {tests!r})
from test_tui_fakes import FakeEngine
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.widgets.config_form import ConfigForm

async def edit(pilot):
    await pilot.pause()
    pilot.app.query_one(ConfigForm).set_value("iters", "4321")
    print("EDITED", flush=True)
    await pilot.pause(600)

app = MlxtuiApp(None, engine_factory=FakeEngine)
import asyncio
async def main():
    async with app.run_test(size=(120, 40)) as pilot:
        await edit(pilot)
asyncio.run(main())
"""


def test_a_killed_dashboard_keeps_the_session(tmp_path):
    """The dashboard in a subprocess, edited, then SIGKILLed: no quit ran, the edit is kept."""
    code = textwrap.dedent(_DASHBOARD).format(tests=str(Path(__file__).parent))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "EDITED", proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 30
        path = sm.session_path()
        while not (path.is_file() and json.loads(path.read_text())["form"].get("iters") == "4321"):
            assert time.monotonic() < deadline, "not written while the dashboard ran"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    session, problem = sm.load_session()
    assert problem is None and session is not None
    config, rejected = sm.apply_form(TrainConfig.quick_start(), session.form)
    assert rejected == {} and config.iters == 4321
