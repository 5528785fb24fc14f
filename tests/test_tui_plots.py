"""Plots read without colour: no legend box over the data, whole and evenly spaced ticks."""

from __future__ import annotations

import re

from textual.app import App, ComposeResult
from textual_plotext import PlotextPlot

from mlxtui.tui.widgets.loss_plot import TITLE, VAL_MARKER, LossPlot, integer_ticks
from mlxtui.tui.widgets.word_switch import WordSwitch


class PlotApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LossPlot(id="plot")


def test_integer_ticks_are_evenly_spaced_whole_numbers() -> None:
    assert integer_ticks(0, 6) == [0, 2, 4, 6]  # was 0 2 3 4 6
    assert integer_ticks(0, 4) == [0, 1, 2, 3, 4]
    assert integer_ticks(1, 12) == [2, 4, 6, 8, 10, 12]
    assert integer_ticks(0, 1000) == [0, 200, 400, 600, 800, 1000]
    assert integer_ticks(5, 5) == [5]
    for lo, hi in [(0, 7), (3, 97), (1, 1234), (0, 2)]:
        ticks = integer_ticks(lo, hi)
        assert 2 <= len(ticks) <= 7, (lo, hi, ticks)
        assert all(lo <= t <= hi for t in ticks)
        assert len({b - a for a, b in zip(ticks, ticks[1:], strict=False)}) == 1


async def test_loss_plot_has_no_legend_box_and_dots_the_val_points() -> None:
    app = PlotApp()
    async with app.run_test(size=(60, 20)) as pilot:
        plot = app.query_one(LossPlot)
        plot.add_val(0, 4.76)
        for it in range(1, 7):
            plot.add_train(it, 4.7 - 0.3 * it)
        plot.add_val(4, 3.2)
        await pilot.pause(0.4)
        drawn = plot.query_one(PlotextPlot).plt.build()
        text = re.sub(r"\x1b\[[0-9;]*m", "", drawn)
        assert TITLE in text
        assert "train" not in text.replace(TITLE, "")  # no legend box
        assert text.count(VAL_MARKER) >= 2 + TITLE.count(VAL_MARKER)
        axis = text.splitlines()[-2]  # the x tick labels
        assert axis.split() == ["0", "2", "4", "6"]
        labels = [float(line.split("┤")[0]) for line in text.splitlines() if "┤" in line]
        assert labels[0] == 4.76 and len(labels) == 4  # evenly spaced, none skipped
        gaps = {round(a - b, 2) for a, b in zip(labels, labels[1:], strict=False)}
        assert len(gaps) == 1


class SwitchApp(App[None]):
    def compose(self) -> ComposeResult:
        yield WordSwitch(False, id="sw")


async def test_word_switch_says_on_and_off_without_colour() -> None:
    from rich.console import Console

    app = SwitchApp()
    async with app.run_test(size=(30, 5)) as pilot:
        switch = app.query_one(WordSwitch)

        def drawn() -> str:
            console = Console(width=20, color_system=None)
            with console.capture() as capture:
                console.print(switch.render())
            return capture.get()

        assert "off" in drawn()
        switch.focus()
        await pilot.press("enter")
        assert switch.value and "on" in drawn() and "off" not in drawn()
        assert switch.region.width >= 8  # the word is not cut off
