"""Tests of the memory guard, driven by a scripted probe."""

from __future__ import annotations

import pytest
from fake_memory import MB, ScriptedProbe

from mlxtui.core.guard import MemoryGuard
from mlxtui.core.memory import MemoryHistory


def drive(guard: MemoryGuard, script: list[tuple[int, str]]) -> list[str]:
    probe, history, actions = ScriptedProbe(script), MemoryHistory(), []
    for _ in script:
        s = probe.sample()
        history.append(s)
        actions.append(guard.check(s, history).action)
    return actions


CALM = [(0, "green")] * 5
# 64 MB every 2 s = 1.9 GB/min of swap growth
RAMP = [(i * 64 * MB, "green") for i in range(1, 8)]
FLAT = [(7 * 64 * MB, "green")] * 40


def test_swap_ramp_pauses_then_recovery_resumes():
    guard = MemoryGuard("pause", swap_growth_mb_per_min=512, recovery_samples=3)
    actions = drive(guard, CALM + RAMP + FLAT)
    assert actions[:5] == ["none"] * 5
    first_pause = actions.index("pause")
    assert 5 <= first_pause < 5 + len(RAMP)
    assert actions.count("pause") == 1  # paused stays paused, no repeats
    resume = actions.index("resume")
    assert resume > 5 + len(RAMP)  # only after the swap has stopped growing
    assert actions.count("resume") == 1


def test_red_pressure_pauses_and_yellow_does_not_resume():
    guard = MemoryGuard("pause", recovery_samples=2)
    script = CALM + [(0, "red")] + [(0, "yellow")] * 4 + [(0, "green")] * 3
    actions = drive(guard, script)
    assert actions[5] == "pause"
    assert "resume" not in actions[6:10]  # yellow is not calm
    assert actions[11] == "resume"  # second green sample


def test_red_pressure_ignored_when_disabled():
    guard = MemoryGuard("pause", red_pressure=False)
    assert set(drive(guard, CALM + [(0, "red")] * 3)) == {"none"}


def test_warn_policy_warns_once_per_episode():
    guard = MemoryGuard("warn")
    actions = drive(guard, CALM + [(0, "red")] * 3 + CALM + [(0, "red")])
    assert actions.count("warn") == 2
    assert "pause" not in actions and not guard.paused


def test_off_policy_never_acts():
    assert set(drive(MemoryGuard("off"), CALM + RAMP + [(0, "red")])) == {"none"}


def test_slow_swap_growth_is_fine():
    # 1 MB every 2 s = 30 MB/min, far under 512
    script = [(i * MB, "green") for i in range(30)]
    assert set(drive(MemoryGuard("pause"), script)) == {"none"}


def test_reason_names_the_cause():
    guard = MemoryGuard("pause")
    probe, history = ScriptedProbe(CALM + RAMP), MemoryHistory()
    decisions = []
    for _ in CALM + RAMP:
        s = probe.sample()
        history.append(s)
        decisions.append(guard.check(s, history))
    pause = next(d for d in decisions if d.action == "pause")
    assert "swap is growing" in pause.reason and "512 MB/min" in pause.reason


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError, match="pause, warn or off"):
        MemoryGuard("panic")  # type: ignore[arg-type]


def test_the_figure_and_the_history_give_the_same_decisions():
    """check(sample, growth) with the shown figure decides as check(sample, history) does."""
    script = CALM + RAMP + FLAT
    by_history = drive(MemoryGuard("pause", recovery_samples=3), script)
    guard, probe, history, by_figure = (
        MemoryGuard("pause", recovery_samples=3),
        ScriptedProbe(script),
        MemoryHistory(),
        [],
    )
    for _ in script:
        s = probe.sample()
        history.append(s)
        by_figure.append(guard.check(s, history.swap_growth_per_minute()).action)
    assert by_figure == by_history
    assert "pause" in by_figure and "resume" in by_figure


def test_no_trend_yet_is_not_calm():
    guard = MemoryGuard("pause", recovery_samples=1)
    probe = ScriptedProbe([(0, "red")] + [(0, "green")] * 3)
    assert guard.check(probe.sample(), None).action == "pause"  # red needs no trend
    assert guard.check(probe.sample(), None).action == "none"  # green, but swap unknown
    assert guard.check(probe.sample(), 0.0).action == "resume"
