"""The dashboard remembers the last session (form, chat options, theme, dataset split)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_tui_fakes import FakeEngine
from textual.widgets import Input

from mlxtui.core import events as ev
from mlxtui.core import session_memory as sm
from mlxtui.core.config import TrainConfig
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.widgets.chat import ChatPane
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.dataset_browser import DatasetBrowser


def test_the_suite_never_touches_the_real_config_folder():
    import platformdirs

    assert sm.config_dir() == Path(os.environ[sm.ENV_DIR])
    assert sm.config_dir() != Path(platformdirs.user_config_dir("mlxtui"))
    assert not any(sm.config_dir().iterdir())  # each test starts with an empty one


def test_save_load_and_forget(tmp_path):
    session = sm.Session(
        form=sm.form_values(TrainConfig.quick_start(learning_rate=3e-4)),
        chat={"temp": "0.2", "system": "Be brief."},
        theme="gruvbox",
        dataset_split="valid",
    )
    path = sm.save_session(session)
    assert path == sm.config_dir() / "session.json"
    loaded, problem = sm.load_session()
    assert problem is None and loaded == session
    config, rejected = sm.apply_form(TrainConfig.quick_start(), loaded.form)
    assert rejected == {} and config == TrainConfig.quick_start(learning_rate=3e-4)
    assert sm.forget_session() is True and sm.load_session() == (None, None)
    assert sm.forget_session() is False


def test_a_damaged_or_foreign_file_is_named_and_ignored():
    path = sm.session_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"version": 1,\n "form": {')
    session, problem = sm.load_session()
    assert session is None and problem and f"{path}:2: not valid JSON" in problem
    path.write_text(json.dumps({"version": 99}))
    session, problem = sm.load_session()
    assert session is None and problem and "version 1" in problem


def test_refused_values_are_dropped_with_the_reason():
    config, rejected = sm.apply_form(
        TrainConfig.quick_start(),
        {"num_layers": "many", "batch_size": "2", "no_such_field": "1"},
    )
    assert config.batch_size == 2 and config.num_layers == TrainConfig.quick_start().num_layers
    assert "whole number" in rejected["num_layers"] and "not a field" in rejected["no_such_field"]


def test_a_remembered_folder_that_is_gone_is_not_put_back(tmp_path):
    """A model or data folder removed since the last session (a temporary copy): the default
    stands, with the reason; a hub id or a folder that is still there is kept."""
    kept = tmp_path / "data"
    kept.mkdir()
    config, rejected = sm.apply_form(
        TrainConfig.quick_start(), {"model": str(tmp_path / "gone" / "model"), "data": str(kept)}
    )
    assert config.model == TrainConfig.quick_start().model and config.data == str(kept)
    assert rejected == {"model": f"{tmp_path / 'gone' / 'model'} no longer exists"}
    config, rejected = sm.apply_form(TrainConfig.quick_start(), {"model": "mlx-community/SmolLM2"})
    assert config.model == "mlx-community/SmolLM2" and not rejected


# ---------------------------------------------------------------- in the dashboard


def make_app(config: TrainConfig | None = None, theme: str | None = None) -> MlxtuiApp:
    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        return FakeEngine(on_event)

    return MlxtuiApp(config, engine_factory=factory, theme=theme)


async def wait_for(pilot: Any, condition: Callable[[], bool], tries: int = 200) -> bool:
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


async def edit_and_quit(pilot: Any, app: MlxtuiApp) -> None:
    form = app.query_one(ConfigForm)
    form.set_value("learning_rate", "3e-4")
    form.set_value("iters", "123")
    chat = app.query_one(ChatPane)
    chat.query_one("#chat-temp", Input).value = "0.3"
    chat.query_one("#chat-rep", Input).value = "1.2"
    chat.query_one("#chat-system", Input).value = "Answer in French."
    chat.select_weights("base")
    app.theme = "textual-light"
    app.query_one(DatasetBrowser).split = "valid"
    await pilot.pause()
    assert form.config.learning_rate == 3e-4
    await pilot.press("q")


@pytest.fixture(scope="module")
def last_session(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session.json a dashboard writes when a person edits and quits, made once (in a config
    folder of its own) for the tests that open the next session after it."""

    async def first_session() -> None:
        app = make_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await edit_and_quit(pilot, app)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(sm.ENV_DIR, str(tmp_path_factory.mktemp("first_session")))
        asyncio.run(first_session())
        return sm.session_path().read_text()


def remember(last_session: str) -> None:
    """This test's (empty) config folder gets the first session's file."""
    path = sm.session_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(last_session)


async def test_the_next_session_opens_with_the_last_ones_settings(last_session):
    saved = json.loads(last_session)
    assert saved["form"]["learning_rate"] == "0.0003" and saved["form"]["iters"] == "123"
    assert saved["chat"]["temp"] == "0.3" and saved["chat"]["weights"] == "base"
    assert (saved["theme"], saved["dataset_split"]) == ("textual-light", "valid")

    remember(last_session)
    again = make_app()
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        form = again.query_one(ConfigForm)
        assert form.config.learning_rate == 3e-4 and form.config.iters == 123
        assert form.query_one("#field-learning_rate", Input).value == "0.0003"
        chat = again.query_one(ChatPane)
        assert chat.query_one("#chat-temp", Input).value == "0.3"
        assert chat.query_one("#chat-rep", Input).value == "1.2"
        assert chat.system_prompt == "Answer in French." and chat.weights == "base"
        assert again.theme == "textual-light"
        assert again.query_one(DatasetBrowser).split == "valid"


async def test_flags_win_over_the_remembered_form(last_session):
    remember(last_session)
    given = TrainConfig.quick_start(iters=7)
    app = make_app(given, theme="textual-dark")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.query_one(ConfigForm).config == given
        assert app.theme == "textual-dark"  # --theme given
        assert app.query_one(ChatPane).query_one("#chat-temp", Input).value == "0.3"


async def test_a_remembered_value_now_refused_is_said_and_the_rest_kept():
    sm.save_session(sm.Session(form={"batch_size": "2", "num_layers": "-3"}))
    app = make_app()
    notes: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert app.query_one(ConfigForm).config.batch_size == 2
        assert app.query_one(ConfigForm).config.num_layers == TrainConfig.quick_start().num_layers
    assert any("num_layers" in n and "not used" in n for n in notes)


async def test_ctrl_r_goes_back_to_the_quick_start_settings(last_session):
    remember(last_session)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.query_one(ConfigForm).config.iters == 123
        await pilot.press("ctrl+r")
        await pilot.press("n")  # asked first: no keeps everything
        assert app.query_one(ConfigForm).config.iters == 123 and sm.session_path().is_file()
        await pilot.press("ctrl+r")
        await pilot.press("y")
        form = app.query_one(ConfigForm)
        assert await wait_for(pilot, lambda: form.config == TrainConfig.quick_start())
        assert form.query_one("#field-iters", Input).value == "80"
        assert app.query_one(ChatPane).query_one("#chat-temp", Input).value == "0.7"
        assert app.query_one(ChatPane).weights == "adapter"
        assert not sm.session_path().exists()


async def test_the_command_palette_offers_the_quick_start_settings():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Quick-start settings" in titles and "Runs" in titles


@pytest.mark.parametrize("bad", ["[]", '{"version": 1, "form": [1]}'])
def test_odd_shapes_load_as_nothing_or_empty(bad):
    path = sm.session_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bad)
    session, problem = sm.load_session()
    assert (session is None and problem) or (session is not None and session.form == {})
