"""The guides' advice from crafted loss sequences (pure: no MLX)."""

from __future__ import annotations

import pytest

from mlxtui.core import events as ev
from mlxtui.core.diagnosis import (
    PLATEAU_REPORTS,
    SPIKE_FACTOR,
    SPIKE_MIN_HISTORY,
    Diagnoser,
)


def report(it: int, loss: float, lr: float = 1e-4) -> ev.TrainReport:
    return ev.TrainReport(it, 1000, loss, lr, 100.0, 1.0, it * 100, 1.0)


def val(it: int, loss: float, is_best: bool = False) -> ev.ValReport:
    return ev.ValReport(it, loss, 0.1, is_best)


def feed_all(d: Diagnoser, events: list[ev.Event]) -> list[ev.Diagnosis]:
    return [x for e in events for x in d.feed(e)]


def falling(n: int, start: float = 3.0, step: float = 0.1, every: int = 10) -> list[ev.Event]:
    return [report((i + 1) * every, start - step * i) for i in range(n)]


# ------------------------------------------------------------------ spike


def test_a_spike_advises_halving_the_learning_rate_once_with_its_numbers():
    d = Diagnoser(learning_rate=2e-4)
    events = falling(6) + [report(70, 2.4 * SPIKE_FACTOR + 0.5), report(80, 9.0)]
    out = feed_all(d, events)
    assert [x.kind for x in out] == ["spike"]  # once, though step 80 spikes too
    spike = out[0]
    assert spike.iteration == 70
    assert spike.numbers["median"] == pytest.approx(2.7)  # losses 2.9 2.8 2.7 2.6 2.5
    assert spike.numbers["suggested_learning_rate"] == pytest.approx(1e-4)
    assert "halve the learning rate" in spike.message and "1.00e-04" in spike.message


def test_a_rise_below_the_factor_is_not_a_spike():
    d = Diagnoser()
    assert feed_all(d, falling(6) + [report(70, 2.7 * SPIKE_FACTOR * 0.95)]) == []


def test_a_spike_right_at_the_start_is_seen_from_two_reports():
    out = feed_all(Diagnoser(), [report(1, 4.3), report(2, 4.2), report(3, 20.0)])
    assert [(x.kind, x.iteration) for x in out] == [("spike", 3)]
    assert out[0].numbers["median"] == pytest.approx(4.25)


def test_no_spike_during_warmup_or_without_history():
    assert feed_all(Diagnoser(), falling(SPIKE_MIN_HISTORY - 1) + [report(50, 50.0)]) == []
    warm = Diagnoser(warmup=70)
    assert [x.kind for x in feed_all(warm, falling(6) + [report(70, 50.0)])] == []


def test_a_nan_report_is_left_to_the_nan_pause():
    assert feed_all(Diagnoser(), falling(6) + [report(70, float("nan"))]) == []


# ------------------------------------------------------------------ plateau


def test_a_flat_loss_at_a_constant_rate_advises_raising_it():
    d = Diagnoser(learning_rate=1e-5)
    flat = [report((i + 1) * 10, 2.0 + (0.004 if i % 2 else 0.0)) for i in range(PLATEAU_REPORTS)]
    out = feed_all(d, falling(3) + flat)
    assert [x.kind for x in out] == ["plateau"]
    assert out[0].iteration == PLATEAU_REPORTS * 10
    assert abs(out[0].numbers["relative_change"]) < 0.01
    assert out[0].numbers["suggested_learning_rate"] == pytest.approx(1.5e-5)
    assert "raise the learning rate 1.5x" in out[0].message


def test_a_loss_stuck_above_its_best_is_no_plateau():
    # a rate far too high: the loss got worse, then stayed (the tiny model at lr 1.0 does this)
    stuck = [report((i + 4) * 10, 6.24) for i in range(PLATEAU_REPORTS)]
    assert (
        feed_all(Diagnoser(), [report(10, 6.27), report(20, 6.2), report(30, 6.14)] + stuck) == []
    )


def test_a_falling_loss_or_a_decaying_rate_is_no_plateau():
    assert feed_all(Diagnoser(), falling(2 * PLATEAU_REPORTS, step=0.05)) == []
    decaying = [report((i + 1) * 10, 2.0, lr=1e-4 * (1 - i / 20)) for i in range(PLATEAU_REPORTS)]
    assert feed_all(Diagnoser(), decaying) == []


# ------------------------------------------------------------------ overfitting


def test_validation_rising_twice_while_training_falls_is_overfitting():
    d = Diagnoser()
    events: list[ev.Event] = [
        val(0, 3.0, True),
        report(10, 2.5), report(20, 2.3), val(20, 2.0, True),
        report(30, 2.0), report(40, 1.8), val(40, 2.1),
        report(50, 1.6), report(60, 1.4), val(60, 2.3),
        report(70, 1.2), report(80, 1.0), val(80, 2.6),
    ]  # fmt: skip
    out = feed_all(d, events)
    assert [x.kind for x in out] == ["overfitting"]  # once, though 80 rises again
    over = out[0]
    assert over.iteration == 60
    assert over.numbers["best_iteration"] == 20 and over.numbers["best_val_loss"] == 2.0
    assert over.numbers["train_loss"] == pytest.approx(1.5)
    assert over.numbers["previous_train_loss"] == pytest.approx(1.9)
    assert "best checkpoint is step 20" in over.message and "--iters 20" in over.message


def test_validation_rising_with_training_rising_too_is_not_overfitting():
    d = Diagnoser()
    events: list[ev.Event] = [
        val(0, 3.0, True), report(10, 2.0), val(10, 2.0, True),
        report(20, 2.1), val(20, 2.1), report(30, 2.2), val(30, 2.2),
    ]  # fmt: skip
    assert feed_all(d, events) == []


def test_one_rise_is_not_enough():
    d = Diagnoser()
    events: list[ev.Event] = [
        val(0, 3.0, True), report(10, 2.0), val(10, 2.0, True),
        report(20, 1.8), val(20, 2.1), report(30, 1.6), val(30, 2.05),
    ]  # fmt: skip
    assert feed_all(d, events) == []


def test_other_events_are_ignored():
    assert Diagnoser().feed(ev.Log("info", "x")) == []


def test_the_state_goes_through_json_and_a_restored_diagnoser_continues():
    import json

    first: list[ev.Event] = [
        val(0, 3.0, True),
        report(10, 2.5), report(20, 2.3), val(20, 2.0, True),
        report(30, 2.0), report(40, 1.8), val(40, 2.1),
    ]  # fmt: skip
    second: list[ev.Event] = [report(50, 1.6), report(60, 1.4), val(60, 2.3), report(70, 1.2), val(70, 2.6)]
    d = Diagnoser()
    assert feed_all(d, first) == []
    resumed = Diagnoser.restore(json.loads(json.dumps(d.state())))
    out = feed_all(resumed, second)  # the rises span the stop: seen all the same
    assert [(x.kind, x.iteration) for x in out] == [("overfitting", 60)]
    assert out[0].numbers["best_iteration"] == 20
    again = Diagnoser.restore(json.loads(json.dumps(resumed.state())))
    assert feed_all(again, [report(80, 1.0), val(80, 2.9)]) == []  # said once per run
    assert Diagnoser.restore(None).given == set()  # a run saved before this state existed
