"""What a training step, a memory sample and a pane key cost the UI thread, counted (not timed).

A one-row or fixed-height text redraws in place: no layout pass of the whole screen (0.15 s each
on the shared box with the Config form mounted). Lighting a pane up restyles that pane, not its
~290 descendants. benchmarks/README.md, "Dashboard", has the figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_tui_fakes import FakeEngine, sample
from test_tui_memory import from_engine_thread, wait_for
from textual.geometry import Region
from textual.widget import Widget

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig
from mlxtui.tui.app import MlxtuiApp, Pane
from mlxtui.tui.widgets.lr_preview import LossPane
from mlxtui.tui.widgets.memory_gauge import TEXT_LINES, MemoryGauge

GiB = 1024**3


def make_app() -> MlxtuiApp:
    return MlxtuiApp(
        TrainConfig.quick_start(), engine_factory=lambda on_event: FakeEngine(on_event)
    )


@pytest.fixture
def layouts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`refresh(layout=True)` requests, as 'WidgetType#id', from when the test clears it."""
    asked: list[str] = []
    refresh = Widget.refresh

    def spy(self: Widget, *regions: Any, **kwargs: Any) -> Any:
        if kwargs.get("layout"):
            asked.append(f"{type(self).__name__}#{self.id}")
        return refresh(self, *regions, **kwargs)

    monkeypatch.setattr(Widget, "refresh", spy)
    yield asked


def step(iteration: int) -> ev.TrainStep:
    loss = 2.0 - iteration / 100
    return ev.TrainStep(iteration, 100, loss, 1e-4, 500.0, 2.0, 64 * iteration, 1.5, 30.0, 0.5)


def inside(app: MlxtuiApp, asked: list[str], *selectors: str) -> list[str]:
    """The requests that came from widgets under `selectors`."""
    ids = {
        f"{type(w).__name__}#{w.id}"
        for selector in selectors
        for root in app.query(selector)
        for w in [root, *root.query("*")]
    }
    return [a for a in asked if a in ids]


async def test_steps_and_memory_samples_redraw_in_place(layouts: list[str]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        app.query_one(LossPane).toggle()  # the loss and its lr line, as while training
        await pilot.pause(0.6)  # the dataset's count line is polled twice a second
        layouts.clear()
        for i in range(1, 6):
            from_engine_thread(app, ev.MemorySampled(sample(i), 300 * 1024**2), step(i))
            await pilot.pause()
        assert await wait_for(pilot, lambda: "+300.0 MB/min" in gauge.text())
        assert await wait_for(pilot, lambda: "at it 5" in str(app.query_one("#lr-line").render()))
        await pilot.pause(0.6)
        watched = ("#pane-memory", "#pane-loss", "#status", "#ds-count", "#tabbar")
        assert inside(app, layouts, *watched) == []


async def test_the_memory_figures_keep_their_rows_when_a_line_is_too_wide() -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        text = gauge.query_one("#mem-text")
        wide = dataclasses.replace(
            sample(1), mlx_active=1023 * 1024**2 + 900 * 1024, mlx_peak=1023 * 1024**2 + 900 * 1024
        )
        from_engine_thread(app, ev.MemorySampled(wide, -1000 * 1024**2))
        assert await wait_for(pilot, lambda: "-1000.0 MB/min" in gauge.text())
        await pilot.pause()
        assert text.size.height == TEXT_LINES
        lines = gauge.text().splitlines()
        assert len(lines) == TEXT_LINES and lines[-1].startswith("● GREEN")
        shown = [strip.text for strip in text.render_lines(text.size.region)]
        assert shown[0].rstrip().endswith("…")  # "MLX   1023.9 MB  peak 1023.9 MB" is 31 wide
        assert "swap" in shown[5] and "-1000.0 MB/min" in shown[6]


def count_restyles(app: MlxtuiApp, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    applied = [0]
    apply = app.stylesheet.apply

    def counted(node: Any, **kwargs: Any) -> None:
        applied[0] += 1
        apply(node, **kwargs)

    monkeypatch.setattr(app.stylesheet, "apply", counted)
    return lambda: applied[0]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_pane_key_restyles_the_panes_not_the_form(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        config, loss = app.query_one("#pane-config", Pane), app.query_one("#pane-loss", Pane)
        restyles = count_restyles(app, monkeypatch)
        await pilot.press("2")
        await pilot.pause()
        after_two = restyles()
        await pilot.press("1")
        await pilot.pause()
        # The Config pane alone holds ~290 widgets: restyling its subtree shows up at once.
        assert after_two < 40 and restyles() - after_two < 40, (after_two, restyles())
        # and the highlight, the focus border and (at 80x24) the visible pane still follow
        assert config.has_class("-active") and not loss.has_class("-active")
        assert title_style(config).bold and not title_style(loss).bold
        assert config.has_focus and config.styles.border_top[0] == "double"
        assert loss.styles.border_top[0] == "round"
        if app.compact:
            assert on_screen(app, config) and not on_screen(app, loss)
            await pilot.press("2")
            await pilot.pause()
            assert on_screen(app, loss) and not on_screen(app, config)
            assert loss.styles.border_top[0] == "double" and title_style(loss).bold


def title_style(pane: Pane) -> Any:
    """The style the pane's border title is drawn in."""
    strip = pane.render_lines(Region(0, 0, pane.size.width, 1))[0]
    return next(seg.style for seg in strip if seg.text.strip() and seg.text.strip() in pane.title)


def on_screen(app: MlxtuiApp, widget: Widget) -> bool:
    return app.screen.region.overlaps(widget.region)


async def test_a_pane_key_lays_nothing_out_again_at_80x24(
    layouts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The panes stand side by side in the compact layout: a key scrolls the row, the Config
    form's widgets get no Show, Hide or Resize (display: none gave each one of each per key)."""
    from textual import events

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        posted: list[str] = []
        post = Widget.post_message

        def spy(self: Widget, message: Any) -> bool:
            if isinstance(message, events.Show | events.Hide | events.Resize):
                posted.append(type(message).__name__)
            return post(self, message)

        monkeypatch.setattr(Widget, "post_message", spy)
        for key in "21212":
            await pilot.press(key)
            await pilot.pause()
        assert posted == []
        assert on_screen(app, app.query_one("#pane-loss", Pane))


async def test_tab_keeps_to_the_pane_on_screen_at_80x24() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        config = app.query_one("#pane-config", Pane)
        for _ in range(60):  # more than the form's fields: Tab wraps around inside the pane
            await pilot.press("tab")
            focused = app.focused
            assert focused is not None and (focused is config or config in focused.ancestors)
