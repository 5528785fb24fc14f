"""kill -9 during training, in the suite: two of tests/kill_trials.py's trials (one killed inside
a checkpoint write, one after a random step). The full 24-trial run is recorded in
tests/RELIABILITY.md."""

from __future__ import annotations

from pathlib import Path

from kill_trials import ITERS, trials


def test_kill_9_inside_a_write_and_after_a_step_loses_nothing_and_resumes_exactly(tmp_path: Path):
    results = trials(2, seed=3, root=tmp_path, modes=["write", "step"])
    for t in results:
        assert t.ok, t.line()
    assert any(t.resumed_to == ITERS for t in results), [t.line() for t in results]
