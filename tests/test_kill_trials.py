"""kill -9 during training, in the suite: one of tests/kill_trials.py's trials, killed inside a
checkpoint write (the 16th of the run's atomic writes, in its second save), then checked and
resumed. The full 24-trial run (kills inside writes, after random steps and after launch) is run
by hand and recorded in tests/RELIABILITY.md."""

from __future__ import annotations

from pathlib import Path

from kill_trials import ITERS, trials


def test_kill_9_inside_a_write_loses_nothing_and_resumes_exactly(tmp_path: Path):
    # seed 3 draws the 16th write: past the first checkpoint, so the trial resumes (a kill before
    # the first save leaves nothing to resume, and the resume is half of what this checks)
    (t,) = trials(1, seed=3, root=tmp_path, modes=["write"])
    assert t.ok, t.line()
    assert t.state_iteration is not None and 0 < t.state_iteration < ITERS, t.line()
    assert t.resumed_to == ITERS, t.line()
