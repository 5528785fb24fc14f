"""The memory cockpit and the learning-rate preview, driven through the app with the fake engine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from test_tui_fakes import FakeEngine, sample

from mlxtui.core import events as ev
from mlxtui.core.config import TrainConfig, schedule_preview
from mlxtui.core.engine import Call, Estimate
from mlxtui.tui.app import MlxtuiApp, Pane
from mlxtui.tui.screens.modals import HelpScreen
from mlxtui.tui.widgets.config_form import ConfigForm
from mlxtui.tui.widgets.lr_preview import LossPane
from mlxtui.tui.widgets.memory_estimate import EstimateScreen, EstimateView, estimate_lines
from mlxtui.tui.widgets.memory_gauge import MemoryGauge

GiB = 1024**3


def make_app(config: TrainConfig | None = None) -> tuple[MlxtuiApp, dict[str, FakeEngine]]:
    box: dict[str, FakeEngine] = {}

    def factory(on_event: Callable[[ev.Event], None]) -> FakeEngine:
        box["engine"] = FakeEngine(on_event)
        return box["engine"]

    return MlxtuiApp(config or TrainConfig.quick_start(), engine_factory=factory), box


async def wait_for(pilot: Any, condition: Callable[[], bool], tries: int = 300) -> bool:
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


def from_engine_thread(app: MlxtuiApp, *events: ev.Event) -> None:
    thread = threading.Thread(target=lambda: [app.bridge(e) for e in events])
    thread.start()
    thread.join()


def estimates(engine: FakeEngine) -> list[Estimate]:
    return [j for j in engine.jobs if isinstance(j, Estimate)]


def styles(text: Any) -> set[str]:
    return {str(span.style) for span in text.spans}


def test_estimate_lines_colour_the_verdict_and_list_options_when_it_does_not_fit() -> None:
    fits = ev.MemoryEstimated(3 * GiB, {}, "fits", 8 * GiB, "", (("batch size 4 → 2", GiB),))
    text = estimate_lines(fits)
    assert "estimated peak 3.0 GB — fits (8.0 GB available)" in text.plain
    assert "bold $success" in styles(text) and "cheaper" not in text.plain
    swap = ev.MemoryEstimated(9 * GiB, {}, "will swap", 8 * GiB, "", (("batch size 8 → 4", GiB),))
    text = estimate_lines(swap)
    assert "bold $error" in styles(text)
    assert "batch size 8 → 4: 1.0 GB" in text.plain
    assert "bold $warning" in styles(estimate_lines(ev.MemoryEstimated(6, {}, "tight", 8)))


async def test_estimate_follows_the_form_lr_preview_and_device() -> None:
    app, box = make_app(TrainConfig.quick_start(batch_size=4, iters=100))
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(EstimateView)
        form = app.query_one(ConfigForm)
        assert await wait_for(pilot, lambda: view.estimate is not None)
        engine = box["engine"]
        assert estimates(engine)[-1].config.batch_size == 4
        assert view.estimate is not None and view.estimate.verdict == "fits"
        assert "fits" in view.plain() and "8.0 GB available" in view.plain()

        # The device, fetched once through a Call job on the engine thread.
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: "fake-cpu" in gauge.device_line())
        assert "16.0 GB" in gauge.device_line()
        assert sum(isinstance(j, Call) for j in engine.jobs) == 1

        # Two quick changes: one estimate (debounced), of the last value.
        before = len(estimates(engine))
        form.set_value("batch_size", "6")
        form.set_value("batch_size", "8")
        assert await wait_for(pilot, lambda: view.estimate.verdict == "will swap")  # type: ignore[union-attr]
        assert [j.config.batch_size for j in estimates(engine)[before:]] == [8]
        assert "will swap" in view.plain() and "batch size 8 → 4" in view.plain()

        # A refused value asks for nothing; a field that does not change memory neither.
        before = len(estimates(engine))
        form.set_value("batch_size", "x")
        form.set_value("batch_size", "6")
        await pilot.pause(0.05)
        form.set_value("steps_per_report", "7")
        assert await wait_for(pilot, lambda: view.estimate.verdict == "tight")  # type: ignore[union-attr]
        await pilot.pause(0.7)
        assert [j.config.batch_size for j in estimates(engine)[before:]] == [6]

        # The breakdown on demand.
        await pilot.press("m")
        assert isinstance(app.screen, EstimateScreen)
        details = str(app.screen.query_one("#estimate-details").render())
        assert "breakdown" in details and "activations" in details
        await pilot.press("escape")

        # The learning-rate schedule: a warmup rises, then cosine decays.
        pane = app.query_one(LossPane)
        assert pane.show_lr
        form.set_value("warmup", "10")
        form.query_one("#field-lr_schedule_name").value = "cosine_decay"
        await pilot.pause(0.1)
        points = pane.schedule_points()
        assert points == schedule_preview(form.config, 100)
        lrs = [lr for _, lr in points]
        assert lrs[0] < lrs[5] < lrs[10]
        assert max(lrs) == lrs[10] and lrs[-1] < lrs[50] < lrs[10]
        form.set_value("iters", "40")
        assert await wait_for(pilot, lambda: pane.schedule_points()[-1][0] == 40)

        # Training: the loss takes over, the LR stays in a line, `l` toggles.
        form.set_value("batch_size", "4")
        await pilot.press("t")
        assert await wait_for(pilot, lambda: app.status.state == "done")
        assert not pane.show_lr
        assert "lr 2.0e-04 at it 20" in str(pane.query_one("#lr-line").render())
        await pilot.press("l")
        assert pane.show_lr
        # Estimate vs the peak the trainer measured (1.5 GB of 10^9 bytes in the fake).
        assert "last run: measured peak 1.4 GB, estimated 4.5 GB (-69%)" in view.plain()


async def test_pressure_colours_alert_banner_and_nan_pause() -> None:
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        pane = app.query_one("#pane-memory", Pane)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        assert gauge.has_class("-pressure-green") and "GREEN" in gauge.text()

        from_engine_thread(app, ev.MemorySampled(sample(1, "yellow")))
        assert await wait_for(pilot, lambda: gauge.has_class("-pressure-yellow"))
        assert pane.has_class("-pressure-yellow") and "YELLOW" in gauge.text()
        assert "fake" in gauge.text()  # where the level comes from

        from_engine_thread(
            app,
            ev.MemorySampled(sample(2, "red")),
            ev.MemoryAlert(
                "red",
                "pause",
                "swap grew 900 MB in the last minute",
                ("batch size 4 → 2: about 2.5 GB peak", "train 4 layers instead of 8: 3 GB"),
            ),
        )
        assert await wait_for(pilot, lambda: bool(gauge.banner_text()))
        assert gauge.has_class("-pressure-red") and pane.has_class("-pressure-red")
        banner = gauge.query_one("#mem-banner")
        assert banner.has_class("-red") and banner.display
        assert "swap grew 900 MB" in gauge.banner_text()
        assert "• batch size 4 → 2: about 2.5 GB peak" in gauge.banner_text()
        assert any("swap grew" in n.message for n in app._notifications)

        from_engine_thread(app, ev.TrainResumed(5))
        assert await wait_for(pilot, lambda: not gauge.banner_text())
        from_engine_thread(
            app,
            ev.MemoryAlert("red", "pause", "swap grows", ("lower max_seq_length: 2 GB",)),
            ev.TrainPaused(6, "memory", "memory pressure red: paused"),
        )
        assert await wait_for(pilot, lambda: "pressure red: paused" in gauge.banner_text())
        assert "• lower max_seq_length: 2 GB" in gauge.banner_text()  # what to change stays

        loss = app.query_one(LossPane)
        from_engine_thread(app, ev.TrainPaused(7, "nan", "loss became nan at step 7"))
        assert await wait_for(pilot, lambda: "loss became nan at step 7" in loss.banner_text())
        assert "loss became nan" in app.status.message
        assert any("loss became nan" in n.message for n in app._notifications)

        # The cockpit's keys are in the help.
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = str(app.screen.query_one("#help-keys").render())
        for text in ("learning-rate schedule", "memory estimate", "validate", "stats", "split"):
            assert text in keys, text
        assert "/ (dataset)" in keys and "g (dataset)" in keys


async def test_gauge_shows_the_swap_growth_core_computed() -> None:
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        assert "—/m" in gauge.text()  # the first sample: no span yet, so no figure

        # The figure is the event's, not one the gauge works out from the samples it saw
        # (these two samples would give +768 MB/m).
        from_engine_thread(app, ev.MemorySampled(sample(1), 300 * 1024**2))
        assert await wait_for(pilot, lambda: "+300.0 MB/m" in gauge.text())
        from_engine_thread(app, ev.MemorySampled(sample(2), -2 * GiB))
        assert await wait_for(pilot, lambda: "-2.0 GB/m" in gauge.text())
        from_engine_thread(app, ev.MemorySampled(sample(3), None))
        assert await wait_for(pilot, lambda: "—/m" in gauge.text())


async def test_the_loss_pane_shows_the_grad_norm_and_the_advice_once_notified() -> None:
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: bool(app.screen.query(ConfigForm)))
        pane = app.query_one(LossPane)
        from_engine_thread(
            app,
            ev.TrainStarted("/tmp/run", 40, 0, 10, 100, "lora"),
            ev.TrainStep(1, 40, 2.0, 2e-4, 100.0, 1.0, 10, 1.0, None, grad_norm=0.75),
            ev.TrainStep(2, 40, 2.0, 2e-4, 100.0, 1.0, 20, 1.0, None),  # accumulating: no norm
        )
        line = pane.query_one("#lr-line")
        assert await wait_for(pilot, lambda: "at it 2" in str(line.render()))
        assert "|g| 0.75" in str(line.render())
        assert not pane.query_one("#advice-line").display
        from_engine_thread(
            app, ev.Diagnosis("spike", 3, "loss spike at step 3: halve the learning rate", {"ratio": 4.0})
        )
        assert await wait_for(pilot, lambda: "halve the learning rate" in pane.advice_text())
        assert pane.query_one("#advice-line").display
        assert "step 3: loss spike" in pane.advice_text()
        assert any(n.title == "Training advice: spike" for n in app._notifications)
        from_engine_thread(app, ev.TrainStarted("/tmp/run2", 40, 0, 10, 100, "lora"))
        assert await wait_for(pilot, lambda: not pane.advice_text())


async def test_sparklines_off_the_screen_wait_to_be_seen_and_then_show_every_sample() -> None:
    """A refresh of an off-screen widget makes Textual arrange the whole screen again (the full
    compositor map): the Memory pane's lower sparklines are below its fold until it scrolls."""
    from textual.widgets import Sparkline

    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        for n in (1, 2, 3):
            from_engine_thread(app, ev.MemorySampled(sample(n), None))
        assert await wait_for(pilot, lambda: len(app.query_one("#spark-active", Sparkline).data or []) >= 3)
        seen = [key for key in ("active", "rss", "used", "swap") if app.screen.can_view_partial(app.query_one(f"#spark-{key}"))]
        assert "active" in seen and "swap" not in seen, seen
        assert not app.query_one("#spark-swap", Sparkline).data  # never drawn off the screen

        gauge.scroll_end(animate=False)  # the gauge scrolls inside its pane: down
        assert await wait_for(pilot, lambda: app.screen.can_view_partial(app.query_one("#spark-swap")))
        from_engine_thread(app, ev.MemorySampled(sample(4), None))
        swap = app.query_one("#spark-swap", Sparkline)
        assert await wait_for(pilot, lambda: len(swap.data or []) == len(gauge._series["swap"]) >= 4)


async def test_the_memory_pane_scrolls_from_the_keyboard_and_letters_still_act() -> None:
    """3 puts the focus in the memory figures, whose lower sparklines are below the fold at
    120x40: the arrow and page keys scroll them; t, p, s and q are still the app's."""
    app, box = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        gauge = app.query_one(MemoryGauge)
        assert await wait_for(pilot, lambda: gauge.latest is not None)
        await pilot.press("3")
        await pilot.pause()
        assert app.focused is gauge and app.active_pane == 2
        assert gauge.max_scroll_y > 0 and gauge.scroll_y == 0
        await pilot.press("down")
        assert await wait_for(pilot, lambda: gauge.scroll_y == 1)
        await pilot.press("end")
        assert await wait_for(pilot, lambda: gauge.scroll_y == gauge.max_scroll_y)
        assert app.screen.can_view_partial(app.query_one("#spark-swap"))
        await pilot.press("home")
        assert await wait_for(pilot, lambda: gauge.scroll_y == 0)
        await pilot.press("t")  # the focus in the gauge takes no letter: training starts
        assert await wait_for(pilot, lambda: app.status.state == "done")
        assert len(box["engine"].jobs) >= 1
