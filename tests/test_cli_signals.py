"""The headless commands' Ctrl-C, SIGTERM and SIGHUP (mlxtui/cli/signals.py), in this process.

The commands' own signal tests (a real `mlxtui train` or `mlxtui sweep` interrupted: tests/test_cli.py,
tests/test_sweep_cli.py, tests/test_checkpoint_faults.py) check what each one does with it.
"""

from __future__ import annotations

import signal

import pytest

from mlxtui.cli import signals as sig
from mlxtui.cli.signals import StopSignals, signal_name

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(sig.time, "monotonic", c)
    return c


def test_the_first_signal_stops_a_repeat_of_it_is_ignored_and_a_second_ends(clock: Clock) -> None:
    calls: list[tuple[str, int]] = []
    with StopSignals(
        lambda s: calls.append(("first", s)), lambda s: calls.append(("second", s))
    ) as stops:
        assert not stops.interrupted
        signal.raise_signal(signal.SIGINT)
        assert calls == [("first", signal.SIGINT)] and stops.interrupted
        clock.now += sig.REPEAT_S / 2  # `uv run` passing the same press on
        signal.raise_signal(signal.SIGINT)
        assert calls == [("first", signal.SIGINT)] and stops.count == 1
        clock.now += sig.REPEAT_S
        signal.raise_signal(signal.SIGTERM)
        clock.now += sig.REPEAT_S
        signal.raise_signal(signal.SIGHUP)
    assert calls == [
        ("first", signal.SIGINT),
        ("second", signal.SIGTERM),
        ("second", signal.SIGHUP),
    ]
    assert stops.count == 3


def test_the_handlers_that_were_there_come_back_even_after_an_error(clock: Clock) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with pytest.raises(RuntimeError), StopSignals(lambda s: None, lambda s: None) as stops:
            assert signal.getsignal(signal.SIGHUP) == stops._on_signal
            raise RuntimeError("the run failed")
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
    finally:
        signal.signal(signal.SIGHUP, before[signal.SIGHUP])


def test_without_hangup_sighup_keeps_its_handler(clock: Clock) -> None:
    before = signal.getsignal(signal.SIGHUP)
    with StopSignals(lambda s: None, lambda s: None, hangup=False) as stops:
        assert signal.getsignal(signal.SIGHUP) == before
        assert signal.getsignal(signal.SIGTERM) == stops._on_signal


def test_a_message_names_ctrl_c_or_the_signal() -> None:
    assert signal_name(signal.SIGINT) == "Ctrl-C"
    assert signal_name(signal.SIGTERM) == "SIGTERM"
    assert signal_name(signal.SIGHUP) == "SIGHUP"


def test_no_command_installs_signal_handlers_of_its_own() -> None:
    """The three copies this helper replaced must not grow back."""
    from pathlib import Path

    import mlxtui.cli

    cli = Path(mlxtui.cli.__file__).parent
    own = [
        p.name
        for p in sorted(cli.glob("*.py"))
        if p.name != "signals.py" and "signal.signal(" in p.read_text()
    ]
    assert own == []
