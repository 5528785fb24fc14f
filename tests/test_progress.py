"""Phases: what a Reporter emits, and how a safe point's Interrupted ends a phase."""

from __future__ import annotations

import pytest

from mlxtui.core import events as ev
from mlxtui.core.progress import Interrupted, Reporter, optional_phase, staged


def test_a_phase_reports_start_each_unit_and_its_duration():
    events: list[ev.Event] = []
    checks: list[int] = []
    r = Reporter(events.append, job_id=7, kind="train", safe_point=lambda: checks.append(1))
    with r.phase("validate", "validation", total=3) as phase:
        for _ in range(3):
            phase.advance()
    started = [e for e in events if isinstance(e, ev.PhaseStarted)]
    progress = [e for e in events if isinstance(e, ev.PhaseProgress)]
    finished = [e for e in events if isinstance(e, ev.PhaseFinished)]
    assert [(s.job_id, s.kind, s.phase, s.label, s.total) for s in started] == [(7, "train", "validate", "validation", 3)]
    assert [(p.done, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert len(finished) == 1 and finished[0].outcome == "done" and finished[0].seconds >= 0
    assert len(checks) == 3  # a safe point after every unit
    # the older free-text event goes out too, for front ends that show one line
    assert [(j.message, j.done) for j in events if isinstance(j, ev.JobProgress)] == [
        ("validation", 0), ("validation", 1), ("validation", 2), ("validation", 3),
    ]  # fmt: skip


def test_a_stop_at_a_safe_point_ends_the_phase_as_stopped_and_an_error_as_failed():
    events: list[ev.Event] = []
    stop = {"now": False}

    def safe_point() -> None:
        if stop["now"]:
            raise Interrupted

    r = Reporter(events.append, safe_point=safe_point)
    with pytest.raises(Interrupted), r.phase("samples", "sample answers", total=5) as phase:
        phase.advance()
        stop["now"] = True
        phase.check()  # between two tokens
        phase.advance()  # never reached
    with pytest.raises(ValueError), r.phase("save", "saving"):
        raise ValueError("disk")
    outcomes = [(e.phase, e.outcome) for e in events if isinstance(e, ev.PhaseFinished)]
    assert outcomes == [("samples", "stopped"), ("save", "failed")]
    assert [e.done for e in events if isinstance(e, ev.PhaseProgress)] == [1]


def test_staged_progress_callbacks_become_phase_progress_with_their_messages():
    events: list[ev.Event] = []
    printed: list[str] = []
    r = Reporter(events.append, job_id=1, kind="fuse")
    with staged(r, "fuse", "fusing the adapter", 3, lambda m, d, t: printed.append(m)) as progress:
        progress("loading", 0, 3)
        progress("fusing", 1, 3)
    assert printed == ["loading", "fusing"]
    assert [(e.message, e.done, e.total) for e in events if isinstance(e, ev.JobProgress)][1:] == [
        ("loading", 0, 3), ("fusing", 1, 3),
    ]  # fmt: skip
    assert [e.done for e in events if isinstance(e, ev.PhaseProgress)] == [0, 1]
    # without a reporter nothing is emitted and the caller's callback is used as it is
    with staged(None, "fuse", "x", 3, None) as quiet:
        quiet("nothing", 1, 3)
    with optional_phase(None, "evaluate", "x") as none:
        assert none is None
