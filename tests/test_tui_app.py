"""The dashboard driven by Pilot with a fake engine that emits from a real background thread."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from test_tui_fakes import REPLY_TOKENS, FakeEngine, sample
from textual.widgets import Input

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig
from mlxtui.core.engine import Compare, Estimate, Generate, LoadModel, Train
from mlxtui.tui.app import PANES, MlxtuiApp, Pane
from mlxtui.tui.screens.modals import ConfirmScreen, ErrorModal, HelpScreen
from mlxtui.tui.widgets.chat import ChatPane
from mlxtui.tui.widgets.config_form import ConfigForm, widget_id
from mlxtui.tui.widgets.dataset_browser import DatasetBrowser
from mlxtui.tui.widgets.loss_plot import LossPlot
from mlxtui.tui.widgets.memory_gauge import MemoryGauge, format_bytes
from mlxtui.tui.widgets.status_line import StatusLine


def make_app(**engine_kw: Any) -> tuple[MlxtuiApp, dict[str, FakeEngine]]:
    box: dict[str, FakeEngine] = {}

    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        box["engine"] = FakeEngine(on_event, **engine_kw)
        return box["engine"]

    return MlxtuiApp(TrainConfig.quick_start(), engine_factory=factory), box


async def wait_for(pilot: Any, condition: Callable[[], bool], tries: int = 300) -> bool:
    """Let the app run until `condition` holds (or give up); the caller asserts."""
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


async def test_startup_layout_suggestions_help_and_shutdown() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        engine = box["engine"]
        assert engine.calls[0] == "start"
        assert isinstance(engine.jobs[0], LoadModel)
        assert engine.jobs[0].spec is None
        assert app.status.state == "idle"

        # All five panes on one screen.
        assert not app.screen.has_class("-compact")
        for pane_id, _title in PANES:
            region = app.query_one(f"#{pane_id}", Pane).region
            assert region.width >= 30 and region.height >= 10, pane_id

        # The demo dataset has 296 training examples: the iteration hint is computed from it.
        form = app.query_one(ConfigForm)
        # the dataset is scanned off the UI thread: the hint comes when the scan is done
        assert await wait_for(pilot, lambda: "epochs" in form.suggestions.get("iters", ""), 1500)
        assert "epochs" in form.note_text("iters")

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-keys").render())
        for key in ("ctrl+t", "pause", "stop", "F1-F5", "quit"):
            assert key in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.resize_terminal(80, 24)
        assert await wait_for(pilot, lambda: app.screen.has_class("-compact"), 500)
    assert engine.shut_down


async def test_train_streams_loss_and_memory_from_engine_thread() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        before = gauge.text()
        await pilot.press("t")
        assert await wait_for(pilot, lambda: app.status.state == "done")
        engine = box["engine"]
        train = [j for j in engine.jobs if isinstance(j, Train)]
        assert len(train) == 1 and train[0].config == app.query_one(ConfigForm).config

        plot = app.query_one(LossPlot)
        assert [it for it, _ in plot.train_points] == list(range(1, 21))
        losses = [loss for _, loss in plot.train_points]
        assert losses == sorted(losses, reverse=True) and losses[0] == pytest.approx(2.9)
        assert [it for it, _ in plot.val_points] == [5, 10, 15, 20]

        after = gauge.text()
        assert after != before
        last = sample(4)
        assert format_bytes(last.mlx_active) in after
        assert format_bytes(last.swap_used) in after
        assert "+768.0 MB/m" in after  # the swap growth core computed, as it came
        assert app.status.iteration == 20 and app.status.message == "completed"
        assert not app.query_one(ConfigForm).disabled


async def test_pause_continue_and_stop() -> None:
    app, box = make_app(train_steps=50)
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        engine.gate.clear()  # hold the training before its first step
        await pilot.press("t")
        assert app.status.state == "training"
        await pilot.press("p")
        assert await wait_for(pilot, lambda: app.status.state == "paused")
        await pilot.press("p")
        assert await wait_for(pilot, lambda: app.status.state == "training")
        await pilot.press("s")
        assert engine.calls[-3:] == ["pause", "resume", "stop"]
        line = app.query_one(StatusLine)
        assert str(line.render()).startswith("STOPPING: saving the adapter…")
        engine.gate.set()
        assert await wait_for(pilot, lambda: app.status.state == "done")
        assert app.status.message == "stopped"
        assert str(line.render()).startswith("DONE") and "stopped" in str(line.render())
        assert len(app.query_one(LossPlot).train_points) == 0  # stopped before step 1


async def test_chat_streams_reply_and_uses_chosen_weights() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        chat = app.query_one(ChatPane)
        assert app.focused is app.query_one("#chat-input", Input)
        await pilot.press(*"hi lumo")
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: not chat.generating)
        reply = "".join(REPLY_TOKENS)
        assert reply in chat.transcript()
        job = box["engine"].jobs[-1]
        assert isinstance(job, Generate)
        assert job.messages == [{"role": "user", "content": "hi lumo"}]
        assert job.weights == "adapter"
        assert chat.history[-1] == {"role": "assistant", "content": reply}

        chat.query_one("#chat-weights").value = "compare"
        await pilot.press(*"again", "enter")
        assert await wait_for(pilot, lambda: not chat.generating)
        assert isinstance(box["engine"].jobs[-1], Compare)
        assert chat.transcript().count(reply) == 3  # one answer, then A and B


async def test_escape_stops_generation() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        chat = app.query_one(ChatPane)
        box["engine"].reply_gate.clear()  # hold the reply before its first token
        await pilot.press("5", *"hello", "enter")
        assert chat.generating
        await pilot.press("escape")
        assert "cancel_generation" in box["engine"].calls
        box["engine"].reply_gate.set()
        assert await wait_for(pilot, lambda: not chat.generating)
        assert "(stopped)" in str(chat.query("Bubble").last().render())
        assert app.focused is chat.query_one("#chat-input")  # Esc stopped, it did not leave


async def test_invalid_config_value_is_refused_in_place() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        field = form.query_one(f"#{widget_id('batch_size')}", Input)
        form.set_value("batch_size", "four")
        await pilot.pause()
        assert field.has_class("-invalid")
        assert "'four' is not a whole number" in form.note_text("batch_size")
        assert form.config.batch_size == 4  # the refused value did not reach the config
        await pilot.press("t")
        assert not any(isinstance(j, Train) for j in box["engine"].jobs)
        assert any("Batch size: " in n.message for n in app._notifications)

        form.set_value("batch_size", "0")
        await pilot.pause()
        assert "from 1 to 4096" in form.note_text("batch_size")
        form.set_value("batch_size", "2")
        await pilot.pause()
        assert not field.has_class("-invalid")
        assert form.config.batch_size == 2 and not form.errors
        await pilot.press("escape", "t")  # the refusal put focus in the field: leave it
        assert await wait_for(pilot, lambda: app.status.state == "done")
        trained = [j for j in box["engine"].jobs if isinstance(j, Train)]
        assert trained[0].config.batch_size == 2


async def test_quit_asks_while_training() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        box["engine"].gate.clear()
        await pilot.press("t", "q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
        assert "stop" in box["engine"].calls
        assert app.is_running  # it waits for the adapter to be saved
        assert app.status.state == "stopping"
        box["engine"].gate.set()  # the step ends, TrainFinished(stopped) arrives
        assert await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert box["engine"].shut_down


async def test_job_failure_opens_error_modal_and_bad_events_do_not_crash() -> None:
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()

        def from_engine_thread(*events: ev.Event) -> None:
            thread = threading.Thread(target=lambda: [app.bridge(e) for e in events])
            thread.start()
            thread.join()

        # Malformed payloads: the app must report and carry on.
        from_engine_thread(
            ev.TrainStep(1, 10, None, 0.0, 0.0, 0.0, 0, 0.0, None),  # type: ignore[arg-type]
            ev.ValReport("x", object(), 0.0, False),  # type: ignore[arg-type]
            ev.MemorySampled(object()),
        )
        await pilot.pause(0.1)
        assert app.is_running
        assert app.query_one(LossPlot).val_points == []
        from_engine_thread(ev.JobFailed(7, "train", "out of memory at step 3", "lower batch_size"))
        assert await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        shown = str(app.screen.query_one("#error-message").render())
        assert "out of memory at step 3" in shown
        assert "Training failed" in str(app.screen.query_one(".modal-title").render())
        assert "lower batch_size" in str(app.screen.query_one("#error-hint").render())
        assert app.status.state == "error"
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorModal)

        # a ConfigError from the engine names its setting by the form's label, not its key
        refused = ConfigError("must be at least 1", "batch_size")
        from_engine_thread(ev.JobFailed(8, "train", str(refused), "fix that value", error=refused))
        assert await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        shown = str(app.screen.query_one("#error-message").render())
        assert shown == "Batch size: must be at least 1"
        assert "fix Batch size in the Config pane" in str(app.screen.query_one("#error-hint").render())
        assert "Batch size: must be at least 1" in str(app.query_one(StatusLine).render())
        await pilot.press("escape")


async def test_small_terminal_shows_one_pane_at_a_time() -> None:
    app, _ = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-compact")
        for keys in (("1", "2", "3", "4", "5"), ("f1", "f2", "f3")):
            for index, key in enumerate(keys):
                await pilot.press(key)
                await pilot.pause()
                for i, (pane_id, _title) in enumerate(PANES):
                    pane = app.query_one(f"#{pane_id}", Pane)
                    # the others stand beside it, off screen (laid out, not drawn)
                    on_screen = app.screen.region.overlaps(pane.region)
                    assert on_screen == (i == index), (key, pane_id)
                shown = app.query_one(f"#{PANES[index][0]}", Pane)
                assert shown.region.height >= 15 and shown.region.width >= 70
                if key in ("5", "f5"):
                    await pilot.press("escape")  # leave the chat input so digits act again
        await pilot.press("escape")
        await pilot.press("t")  # still trains from a small terminal
        assert await wait_for(pilot, lambda: app.status.state == "done")


async def test_dataset_browser_pages_splits_and_renders_with_tokenizer(tiny_model_dir: Any) -> None:
    from mlx_lm.utils import load_tokenizer

    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        browser = app.query_one(DatasetBrowser)
        await pilot.pause()
        assert browser.index is not None and len(browser.index) == 296
        assert browser.loaded_rows == 100  # lazy: one page until the cursor nears its end
        assert '"messages"' in browser.example_text()  # raw JSON before a tokenizer

        await pilot.press("4")
        assert app.focused is browser.query_one("#ds-table")
        browser.query_one("#ds-table").move_cursor(row=94)
        await pilot.press("down")
        assert browser.loaded_rows == 200
        assert browser.selected == 95

        browser.query_one("#ds-split").value = "valid"
        await pilot.pause()
        assert browser.split == "valid" and len(browser.index) == 30

        tokenizer = load_tokenizer(tiny_model_dir)
        browser.set_tokenizer(tokenizer, mask_prompt=True)
        text = browser.example_text()
        assert "<|im_start|>assistant" in text
        assert "trained, in green" in text


async def test_train_with_a_refused_field_names_its_label_and_focuses_it() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        form = app.query_one(ConfigForm)
        form.set_value("optimizer_options", "X")
        await pilot.pause()
        app.query_one("#pane-chat", Pane).focus()
        await pilot.press("t")
        assert await wait_for(
            pilot,
            lambda: app.focused is not None and app.focused.id == widget_id("optimizer_options"),
        )
        assert not any(isinstance(j, Train) for j in box["engine"].jobs)
        shown = [n.message for n in app._notifications]
        assert any("Optimizer options: 'X' is not KEY=VALUE" in m for m in shown), shown
        assert not any("optimizer_options" in m for m in shown)
        # Typing now fixes it in place.
        await pilot.press("ctrl+u")
        assert await wait_for(pilot, lambda: not form.errors)


async def test_a_resumed_run_shows_its_curve_so_far(tmp_path: Any) -> None:
    import json

    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {"event": "val", "iteration": 0, "val_loss": 3.0},
        {"event": "train", "iteration": 5, "train_loss": 2.5},
        {"event": "val", "iteration": 10, "val_loss": 2.0},
        {"event": "train", "iteration": 10, "train_loss": 1.9},
        {
            "event": "train",
            "iteration": 15,
            "train_loss": 1.5,
        },  # after the resume point: a new run's
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut by a cr")
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        box["engine"].on_event(ev.TrainStarted(str(run), 20, 10, 100, 1000, "lora"))
        plot = app.query_one(LossPlot)
        assert await wait_for(pilot, lambda: len(plot.val_points) == 2)
        assert plot.train_points == [(5, 2.5), (10, 1.9)]
        assert plot.val_points == [(0, 3.0), (10, 2.0)]


async def test_dataset_warnings_are_accepted_before_training(tmp_path: Any) -> None:
    from mlxtui.demo_data import demo_data_dir

    data = tmp_path / "data"
    data.mkdir()
    lines = (demo_data_dir() / "train.jsonl").read_text().splitlines()[:12]
    (data / "train.jsonl").write_text(
        "\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n"
    )  # a blank line
    (data / "valid.jsonl").write_text("\n".join(lines[:4]) + "\n")  # leakage: shared with train
    box: dict[str, FakeEngine] = {}

    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        box["engine"] = FakeEngine(on_event)
        return box["engine"]

    app = MlxtuiApp(TrainConfig.quick_start(data=str(data)), engine_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        await pilot.press("t")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "warning" in app.screen.question and "train.jsonl:7" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert not any(isinstance(j, Train) for j in engine.jobs)
        await pilot.press("t")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        assert await wait_for(pilot, lambda: any(isinstance(j, Train) for j in engine.jobs))


def from_engine_thread(app: MlxtuiApp, *events: ev.Event) -> None:
    thread = threading.Thread(target=lambda: [app.bridge(e) for e in events])
    thread.start()
    thread.join()


async def test_status_line_names_the_phase_and_its_seconds_move_on_without_events() -> None:
    app, _box = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        line = app.query_one(StatusLine)
        shown = lambda: str(line.render())  # noqa: E731
        from_engine_thread(
            app,
            ev.PhaseStarted(9, "train", "validate", "validation", 4, time.time() - 12.2),
            ev.PhaseProgress(9, "train", "validate", "validation", 2, 4),
        )
        assert await wait_for(pilot, lambda: "validation 2/4 · " in shown())
        found = re.search(r"validation 2/4 · (\d+) s", shown())
        assert found is not None and 12 <= int(found.group(1)) < 30
        # On an 80-column screen the phase is inside the visible line (78 cells inside padding).
        assert found.end() <= line.content_region.width
        # No new event: the timer moves the seconds on.
        seconds = int(found.group(1))
        assert await wait_for(
            pilot,
            lambda: (
                f"validation 2/4 · {seconds + 1} s" in shown()
                or f"validation 2/4 · {seconds + 2} s" in shown()
            ),
        )
        from_engine_thread(app, ev.PhaseFinished(9, "train", "validate", "validation", 13.0))
        assert await wait_for(pilot, lambda: "validation" not in shown())


async def test_a_committed_model_field_loads_that_model_then_estimates_and_chats_with_it() -> None:
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        assert await wait_for(pilot, lambda: any(isinstance(j, Estimate) for j in engine.jobs))
        form = app.query_one(ConfigForm)
        loads = lambda: [j for j in engine.jobs if isinstance(j, LoadModel)]  # noqa: E731
        assert len(loads()) == 1  # the start-up model

        form.focus_field("model")
        await pilot.press(*"/models/other")
        await pilot.pause(0.5)
        assert len(loads()) == 1  # typing alone loads nothing
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: len(loads()) == 2)
        load = loads()[1]
        assert load.spec == "/models/other"
        assert load.dequantize is None  # the form's "auto", as at start-up
        after = engine.jobs[engine.jobs.index(load) + 1 :]
        assert await wait_for(
            pilot,
            lambda: any(isinstance(j, Estimate) for j in engine.jobs[engine.jobs.index(load) :]),
        ), after
        estimate = next(
            j for j in engine.jobs[engine.jobs.index(load) :] if isinstance(j, Estimate)
        )
        assert estimate.config.model == "/models/other"
        assert await wait_for(pilot, lambda: app.status.model == "fake:/models/other")

        await pilot.press("escape")  # leaving the field commits the same value: no new load
        await pilot.pause(0.6)
        assert len(loads()) == 2

        # One load at a time: commits during a load wait, and only the latest is loaded next.
        engine.load_gate.clear()
        for spec in ("/models/a", "/models/b", "/models/c"):
            form.set_value("model", spec)
            form.post_message(ConfigForm.Committed("model", spec))
            await pilot.pause(0.5)
        assert [j.spec for j in loads()[2:]] == ["/models/a"]
        engine.load_gate.set()
        assert await wait_for(pilot, lambda: len(loads()) == 4)
        assert loads()[3].spec == "/models/c"
        assert await wait_for(pilot, lambda: app.status.model == "fake:/models/c")

        # The chat's next reply goes to the engine after that load, so it answers with that model.
        await pilot.press("5")
        await pilot.press(*"hi", "enter")
        assert await wait_for(pilot, lambda: any(isinstance(j, Generate) for j in engine.jobs))
        generate = next(j for j in engine.jobs if isinstance(j, Generate))
        assert engine.jobs.index(generate) > engine.jobs.index(loads()[3])
