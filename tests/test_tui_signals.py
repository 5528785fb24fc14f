"""q, Ctrl+C, Ctrl+Z and SIGHUP/SIGTERM from every screen of the dashboard: what each one does.

The decisions (also in the help screen and tests/RELIABILITY.md):
- Ctrl+C quits from every screen, as q does on the main screen: at once when idle; while a
  training runs it asks first, and a second Ctrl+C (or q) while asked answers yes; yes stops the
  run at its next step, the adapter is saved, then mlxtui quits.
- q closes the screen it is on (help, runs, evaluate, samples, memory details, error), quits from
  the main screen (asking while training), types a q into a focused text field, and does nothing
  in the Validate/Stats modals (Esc closes those).
- Ctrl+Z suspends the process to the shell (SIGTSTP; fg continues) where the terminal allows it;
  elsewhere (here, under run_test) it says so and nothing else happens.
- SIGHUP (the SSH session closed) and SIGTERM: no one can answer, so a training stops at its next
  step, saves and mlxtui quits; idle, it quits at once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from test_tui_app import make_app, wait_for

from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.screens.modals import ConfirmScreen, ErrorModal

# (key that opens it, the screen class's name, what q does there)
SCREENS = [
    (None, "Screen", "quit"),
    ("question_mark", "HelpScreen", "close"),
    ("r", "RunsScreen", "close"),
    ("x", "ExportScreen", "typed"),  # its first field has the focus
    ("e", "EvaluateScreen", "close"),
    ("v", "ValidateScreen", "stay"),
    ("i", "StatsScreen", "stay"),
    ("d", "PrepareScreen", "typed"),
    ("m", "EstimateScreen", "close"),
    ("a", "SamplesScreen", "close"),
    ("error", "ErrorModal", "close"),
]


async def open_screen(app: MlxtuiApp, pilot: Any, opener: str | None) -> None:
    if opener == "error":
        app.push_screen(ErrorModal("Something failed", "because", "do this"))
    elif opener is not None:
        await pilot.press(opener)
    await pilot.pause(0.1)


async def idle_app_ready(app: MlxtuiApp, pilot: Any) -> None:
    assert await wait_for(pilot, lambda: app.status.model == "fake-model")
    # the memory-details modal opens once an estimate is there
    assert await wait_for(pilot, lambda: app.query_one("EstimateView").estimate is not None)


async def test_q_on_every_screen_does_what_the_table_says() -> None:
    app, _box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await idle_app_ready(app, pilot)
        for opener, name, outcome in SCREENS[1:]:
            await open_screen(app, pilot, opener)
            assert type(app.screen).__name__ == name, opener
            focused = app.focused
            value_before = getattr(focused, "value", None)
            await pilot.press("q")
            await pilot.pause(0.1)
            assert app.is_running, name
            shown = type(app.screen).__name__
            if outcome == "close":
                assert shown == "Screen", name
            else:
                assert shown == name, name
                if outcome == "typed":
                    value = getattr(app.focused, "value", None)
                    assert value != value_before and "q" in str(value), name
                await pilot.press("escape")
                await pilot.pause(0.1)
                if type(app.screen).__name__ != "Screen":
                    await pilot.press("escape")  # the first Esc left the field
                    await pilot.pause(0.1)
                assert type(app.screen).__name__ == "Screen", name
        await pilot.press("q")  # the main screen, idle: quits at once
        await pilot.pause(0.1)
    assert app.return_code == 0


async def test_ctrl_c_quits_from_every_screen_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    app, _box = make_app()
    quits: list[Any] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await idle_app_ready(app, pilot)
        monkeypatch.setattr(app, "exit", lambda *args, **kw: quits.append(args))
        for opener, name, _q in SCREENS:
            await open_screen(app, pilot, opener)
            assert type(app.screen).__name__ == name, opener
            await pilot.press("ctrl+c")
            await pilot.pause(0.05)
            assert len(quits) == 1, f"ctrl+c on {name} did not quit"
            quits.clear()
            while type(app.screen).__name__ != "Screen":
                app.pop_screen()
                await pilot.pause(0.05)
        monkeypatch.undo()
        await open_screen(app, pilot, "question_mark")
        await pilot.press("ctrl+c")  # for real, from a modal: the app ends
        await pilot.pause(0.1)
    assert app.return_code == 0 and not app.is_running


async def training_app(pilot: Any, app: MlxtuiApp, box: dict[str, Any]) -> None:
    assert await wait_for(pilot, lambda: app.status.model == "fake-model")
    box["engine"].gate.clear()  # the run holds before its first step: it is still running
    await pilot.press("t")
    assert await wait_for(pilot, lambda: app.status.busy_training and len(box["engine"].jobs) >= 2)


@pytest.mark.parametrize("opener", [None, "r"])
async def test_ctrl_c_twice_while_training_saves_then_quits(opener: str | None) -> None:
    app, box = make_app(train_steps=5)
    async with app.run_test(size=(120, 40)) as pilot:
        await training_app(pilot, app, box)
        await open_screen(app, pilot, opener)
        await pilot.press("ctrl+c")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.is_running and "stop" not in box["engine"].calls
        await pilot.press("ctrl+c")  # again while asked: yes
        await pilot.pause(0.05)
        assert "stop" in box["engine"].calls
        assert app.status.state == "stopping"
        box["engine"].gate.set()  # the run reaches its step boundary, saves, reports
        assert await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 0
    assert box["engine"].calls.index("stop") < box["engine"].calls.index("shutdown")


async def test_ctrl_c_then_no_keeps_training() -> None:
    app, box = make_app(train_steps=5)
    async with app.run_test(size=(120, 40)) as pilot:
        await training_app(pilot, app, box)
        await pilot.press("ctrl+c")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause(0.05)
        assert app.is_running and "stop" not in box["engine"].calls
        box["engine"].gate.set()
        assert await wait_for(pilot, lambda: app.status.state == "done")
        assert app.is_running


async def test_ctrl_z_where_the_terminal_cannot_suspend_says_so() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        await pilot.press("ctrl+z")
        await pilot.pause(0.05)
        assert app.is_running
        notes = [n.message for n in app._notifications]
        assert any("cannot suspend" in note for note in notes), notes


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
async def test_a_hangup_signal_while_training_stops_saves_and_quits(signum: int) -> None:
    """A real signal to this process: the app's handler takes it instead of the default death."""
    before = signal.getsignal(signum)  # SIG_IGN under nohup, the default otherwise
    app, box = make_app(train_steps=5)
    async with app.run_test(size=(120, 40)) as pilot:
        await training_app(pilot, app, box)
        assert signum in app.hangup_signals
        os.kill(os.getpid(), signum)
        assert await wait_for(pilot, lambda: "stop" in box["engine"].calls)
        assert app.is_running  # still running until the step boundary has saved
        box["engine"].gate.set()
        assert await wait_for(pilot, lambda: not app.is_running)
    assert box["engine"].calls.index("stop") < box["engine"].calls.index("shutdown")
    # the handlers went with the app: what was there before is back
    assert signal.getsignal(signum) == before


async def test_a_hangup_when_idle_quits_at_once() -> None:
    app, _box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        os.kill(os.getpid(), signal.SIGHUP)
        assert await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 0


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pty")
def test_the_real_dashboard_suspends_then_saves_its_adapter_on_sighup(
    tiny_model_dir: Path, tmp_path: Path, mlxtui_cache_dir: Path
) -> None:
    """`mlxtui` in a pseudo-terminal on the tiny model: t trains; Ctrl+Z stops the process (no
    step while stopped) and SIGCONT (fg) continues it; SIGHUP then ends the run at a step
    boundary with the adapter on disk, and the process exits 0."""
    import mlx.core as mx
    from dashboard_pty import hangup_trial, last_step, run_dirs

    env = dict(os.environ, MLXTUI_CACHE_DIR=str(mlxtui_cache_dir), TERM="xterm-256color")
    trial = hangup_trial(tiny_model_dir, tmp_path, env, how="sighup", try_suspend=True)
    assert not trial.notes, trial.notes
    assert trial.suspended and trial.continued
    assert trial.exit_code == 0
    assert trial.adapter is not None
    weights = mx.load(str(trial.adapter))
    assert weights and all("lora" in name for name in weights)
    run = run_dirs(tmp_path)[-1]
    assert last_step(run) >= trial.stepped_to  # the steps before the signal are all kept
    assert (run / "adapters" / "adapter_config.json").is_file()
