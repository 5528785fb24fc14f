"""The terminal resized down to 40x12 (and below) and back, on every pane, while training.

The dashboard's choice at small sizes: the compact layout (one pane at a time, tabs on top) keeps
working down to 40x12, so nothing says "too small"; below that it must still not crash. After
growing back the grid of panes is readable again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from test_tui_app import wait_for
from test_tui_fakes import FakeEngine

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.tui.app import PANES, MlxtuiApp
from mlxtui.tui.widgets.loss_plot import LossPlot


def slow_fake_app(step_s: float = 0.02) -> tuple[MlxtuiApp, dict[str, FakeEngine]]:
    """The fake engine with steps that take `step_s`, like a real run (never done in a test)."""
    box: dict[str, FakeEngine] = {}

    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        def slowed(event: ev.Event) -> None:
            if isinstance(event, ev.TrainStep):
                time.sleep(step_s)
            on_event(event)

        box["engine"] = FakeEngine(slowed, train_steps=1_000_000)
        return box["engine"]

    return MlxtuiApp(TrainConfig.quick_start(), engine_factory=factory), box


def screen_text(app: MlxtuiApp) -> str:
    """What the terminal shows, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def assert_readable(text: str, compact: bool, wanted: bool) -> None:
    assert compact is wanted
    assert "Config" in text and "TRAINING" in text, text
    if not compact:  # the grid: every pane's title is on screen again
        assert all(f"{i} {t}" in text for i, (_p, t) in enumerate(PANES, start=1)), text


async def test_every_pane_survives_40x12_and_reads_again_at_120x40_and_80x24() -> None:
    app, box = slow_fake_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")
        box["engine"].gate.clear()  # training holds before its first step until released
        await pilot.press("t")
        assert await wait_for(pilot, lambda: len(box["engine"].jobs) >= 2)
        for index, (_pane, title) in enumerate(PANES, start=1):
            await pilot.press(str(index))
            await pilot.resize_terminal(40, 12)
            await pilot.pause(0.05)
            small = screen_text(app)
            assert app.compact
            rows = small.splitlines()
            assert len(rows) == 12 and all(len(row) <= 40 for row in rows)
            assert f"{index} {title}" in small  # the pane's title, on its tab or border
            if index == 2:
                box["engine"].gate.set()  # steps arrive while the Loss pane is 40x12
                assert await wait_for(pilot, lambda: len(app.query_one(LossPlot).train_points) > 5)
            await pilot.resize_terminal(120, 40)
            await pilot.pause(0.05)
            assert_readable(screen_text(app), compact=app.compact, wanted=False)
        await pilot.resize_terminal(10, 4)  # far too small: drawn clipped, no crash
        await pilot.pause(0.05)
        assert len(screen_text(app).splitlines()) == 4
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.05)
        assert_readable(screen_text(app), compact=app.compact, wanted=True)
        assert app.is_running
        assert app.status.state == "training"
