"""The chat pane and the sample answers, driven by Pilot with the fake engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_tui_fakes import REPLY_TOKENS, SAMPLE_PROMPTS, FakeEngine, sample_answer
from textual.widgets import Input, Select

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig, save_config
from mlxtui.core.engine import Compare, Generate
from mlxtui.tui.app import MlxtuiApp
from mlxtui.tui.widgets.chat import ABRow, Bubble, ChatPane, short_label
from mlxtui.tui.widgets.samples import LossWithSamples, SamplesPanel, SamplesScreen

REPLY = "".join(REPLY_TOKENS)


def make_run(
    runs_dir: Path,
    name: str,
    status: str = "completed",
    iteration: int = 20,
    total: int = 20,
    optimizer: bool = False,
    iters: int = 20,
) -> Path:
    """A run folder laid out as mlxtui.core.runs reads it (the adapter files are placeholders)."""
    run = runs_dir / name
    (run / "adapters").mkdir(parents=True)
    (run / "state").mkdir()
    save_config(TrainConfig.quick_start().with_values(iters=iters), run / "config.yaml")
    state = {"iteration": iteration, "total_iters": total, "status": status, "best_val_loss": 1.234}
    (run / "state" / "state.json").write_text(json.dumps(state))
    for file in (
        "adapters.safetensors",
        "best_adapters.safetensors",
        "0000010_adapters.safetensors",
    ):
        (run / "adapters" / file).write_bytes(b"placeholder")
    if optimizer:
        (run / "state" / "optimizer.safetensors").write_bytes(b"placeholder")
    return run


def make_app(runs_dir: Path, **engine_kw: Any) -> tuple[MlxtuiApp, dict[str, FakeEngine]]:
    box: dict[str, FakeEngine] = {}

    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        box["engine"] = FakeEngine(on_event, **engine_kw)
        return box["engine"]

    config = TrainConfig.quick_start().with_values(runs_dir=str(runs_dir))
    return MlxtuiApp(config, engine_factory=factory), box


async def wait_for(pilot: Any, condition: Callable[[], bool], tries: int = 300) -> bool:
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


async def ask(pilot: Any, chat: ChatPane, text: str) -> None:
    chat.query_one("#chat-input", Input).focus()
    await pilot.press(*text, "enter")
    assert await wait_for(pilot, lambda: not chat.generating)


async def test_chat_weights_history_system_prompt_clear_copy_and_ab(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = make_run(runs, "20250101-000000-demo")
    app, box = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        chat = app.query_one(ChatPane)
        values = [v for _label, v in chat.adapter_options]
        adapters = run / "adapters"
        assert values == [
            str(adapters / "adapters.safetensors"),
            str(adapters / "best_adapters.safetensors"),
            str(adapters / "0000010_adapters.safetensors"),
        ]
        await pilot.press("5")
        chat.query_one("#chat-system", Input).value = "Answer briefly."
        chat.query_one("#chat-temp", Input).value = "0.2"
        chat.query_one("#chat-max", Input).value = "64"
        chat.query_one("#chat-rep", Input).value = "1.3"

        # Turn 1: the current adapter, with the system prompt first.
        await ask(pilot, chat, "hi")
        job = engine.jobs[-1]
        assert isinstance(job, Generate)
        assert job.weights == "adapter"
        assert (job.temperature, job.top_p, job.max_tokens, job.repetition_penalty) == (0.2, 0.95, 64, 1.3)
        system = {"role": "system", "content": "Answer briefly."}
        assert job.messages == [system, {"role": "user", "content": "hi"}]

        # Turn 2: the base; the history carries turn 1 and its answer.
        chat.query_one("#chat-weights", Select).value = "base"
        await ask(pilot, chat, "more")
        job = engine.jobs[-1]
        assert job.weights == "base"
        assert job.messages == [
            system,
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": REPLY},
            {"role": "user", "content": "more"},
        ]

        # Turn 3: a run's best checkpoint, by path (loaded in place by the engine).
        best = str(adapters / "best_adapters.safetensors")
        chat.query_one("#chat-weights", Select).value = best
        await ask(pilot, chat, "again")
        assert engine.jobs[-1].weights == best
        assert len(engine.jobs[-1].messages) == 6
        assert "01-01 00:00 demo best" in [b.title for b in chat.query(Bubble)]

        # A bad temperature is refused in place: nothing sent, the field and the prompt are kept.
        n_jobs = len(engine.jobs)
        temp = chat.query_one("#chat-temp", Input)
        temp.value = "3"
        await pilot.pause()
        assert temp.has_class("-invalid")
        chat.query_one("#chat-input", Input).focus()
        await pilot.press(*"nope", "enter")
        await pilot.pause()
        assert len(engine.jobs) == n_jobs
        assert chat.query_one("#chat-input", Input).value == "nope"
        assert temp.value == "3"
        temp.value = "0.2"
        # so is a repetition penalty outside mlx-lm's useful range (1 is off)
        rep = chat.query_one("#chat-rep", Input)
        rep.value = "2.5"
        await pilot.pause()
        assert rep.has_class("-invalid")
        chat.query_one("#chat-input", Input).value = ""
        chat.query_one("#chat-input", Input).focus()
        await pilot.press(*"nope", "enter")
        await pilot.pause()
        assert len(engine.jobs) == n_jobs
        rep.value = "1.3"
        chat.query_one("#chat-input", Input).value = ""

        # Copy the last reply (OSC 52 and the app's clipboard).
        await pilot.press("ctrl+y")
        assert app.clipboard == REPLY

        # New conversation.
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert chat.history == [] and not list(chat.query(Bubble))

        # A/B: base and adapter side by side, both streamed.
        chat.query_one("#chat-weights", Select).value = "compare"
        await ask(pilot, chat, "compare")
        job = engine.jobs[-1]
        assert isinstance(job, Compare)
        assert job.messages == [system, {"role": "user", "content": "compare"}]
        assert (job.temperature, job.max_tokens, job.repetition_penalty) == (0.2, 64, 1.3)
        row = chat.query_one(ABRow)
        a, b = row.query(Bubble)
        assert (a.title, b.title) == ("A · base", "B · adapter")
        assert a.text == REPLY and b.text == REPLY
        assert a.region.y == b.region.y and a.region.x < b.region.x  # two columns
        assert chat.history[-1] == {"role": "assistant", "content": REPLY}

        # A finished training adds its checkpoints to the choices (the current choice stays).
        new = make_run(runs, "20250102-000000-next")
        engine.on_event(ev.TrainFinished(str(new), str(new / "adapters"), 20, 20, "completed"))
        assert await wait_for(pilot, lambda: len(chat.adapter_options) == 6)
        assert chat.weights == "compare"


async def test_samples_panel_follows_training(tmp_path: Path) -> None:
    app, box = make_app(tmp_path / "runs", samples=True)
    async with app.run_test(size=(120, 40)) as pilot:
        box_widget = app.query_one(LossWithSamples)
        assert not box_widget.has_class("-has-samples")
        await pilot.press("t")
        assert await wait_for(pilot, lambda: app.status.state == "done")
        assert app.samples.iteration == 20
        assert box_widget.has_class("-has-samples")
        summary = str(box_widget.query_one("#samples-summary").render())
        assert "it 20" in summary and sample_answer(0, 20) in summary

        await pilot.press("a")
        assert isinstance(app.screen, SamplesScreen)
        texts = app.screen.query_one(SamplesPanel).item_texts()
        assert len(texts) == len(SAMPLE_PROMPTS)
        for i, (prompt, reference) in enumerate(SAMPLE_PROMPTS):
            assert prompt in texts[i] and reference in texts[i]
            assert sample_answer(i, 20) in texts[i]  # the latest
            assert sample_answer(i, 15) in texts[i]  # and the one before, to see the change

        # A new evaluation while the screen is open shows at once.
        items = tuple(
            ev.SamplePrediction(p, r, f"new {i}") for i, (p, r) in enumerate(SAMPLE_PROMPTS)
        )
        box["engine"].on_event(ev.SamplePredictions(25, items))
        assert await wait_for(
            pilot, lambda: "new 1" in app.screen.query_one(SamplesPanel).item_texts()[1]
        )
        assert "iteration 25" in str(app.screen.query_one("#samples-title").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SamplesScreen)

        # Small terminals reach it with the same key.
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.press("a")
        assert isinstance(app.screen, SamplesScreen)
        assert app.screen.query_one(SamplesPanel).region.height > 5


def test_short_labels_fit_the_weights_picker() -> None:
    assert (
        short_label("20250131-235959-SmolLM2-135M-Instruct step 100")
        == "01-31 23:59 SmolLM2… step 100"
    )
    assert short_label("20250131-235959-demo final") == "01-31 23:59 demo final"
    assert short_label("my-run best") == "my-run best"  # not a timestamped name: unchanged
