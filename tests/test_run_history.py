"""Run summaries read back from real run folders (the tiny model trained a few steps)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from run_folders import small_data, start_paused_elsewhere, train_run

from mlxtui.core import run_history as rh
from mlxtui.core.runs import read_metrics


@pytest.fixture(scope="module")
def runs_root(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("history")
    data = small_data(root / "data")
    runs = root / "runs"
    finished = train_run(tiny_model_dir, data, runs, run_name="done")
    stopped = train_run(
        tiny_model_dir, data, runs, stop_at=3, iters=20, learning_rate=2e-3, run_name="halt"
    )
    return {"data": data, "runs": runs, "finished": finished, "stopped": stopped, "root": root}


def test_summary_of_a_finished_run_matches_its_metrics(runs_root):
    s = rh.summarize(runs_root["finished"])
    assert s.status == "finished" and s.message == ""
    assert s.name == "done" and s.method == "lora" and s.iteration == 6 and s.total_iters == 6
    assert s.settings["lr"] == 1e-3 and s.settings["layers"] == 2 and s.settings["rank"] == 8
    metrics = read_metrics(runs_root["finished"])
    vals = [(m["iteration"], m["val_loss"]) for m in metrics if m["event"] == "val"]
    assert [p.iteration for p in s.val_curve] == [0, 3, 6]
    assert s.final_val_loss == vals[-1][1]
    best_step, best = min(vals, key=lambda v: v[1])
    assert (s.best_step, s.best_val_loss) == (best_step, best)
    trains = [m for m in metrics if m["event"] == "train"]
    assert s.final_train_loss == trains[-1]["train_loss"]
    assert s.tokens_per_second == pytest.approx(
        sum(m["tokens_per_second"] for m in trains) / len(trains)
    )
    assert [p.tokens for p in s.train_curve] == [m["trained_tokens"] for m in trains]
    assert s.trained_tokens == trains[-1]["trained_tokens"]
    assert s.peak_memory_gb and s.peak_memory_gb > 0
    assert s.estimated_peak_gb and s.estimated_peak_gb > 0
    assert 0 < s.duration_s < 120
    assert [label for label, _ in s.checkpoint_files()][:2] == ["final", "best"]
    assert "step 3" in [label for label, _ in s.checkpoint_files()]


def test_a_stopped_run_says_stopped_and_the_history_is_newest_first(runs_root):
    s = rh.summarize(runs_root["stopped"])
    assert s.status == "stopped" and s.iteration == 3 and s.total_iters == 20
    assert s.settings["lr"] == 2e-3
    listed = rh.list_summaries(runs_root["runs"])
    assert [x.path for x in listed[:2]] == [runs_root["stopped"], runs_root["finished"]]


def test_a_resumed_run_sums_its_sessions_and_ends_finished(runs_root, tiny_model_dir, tmp_path):
    run = train_run(tiny_model_dir, runs_root["data"], tmp_path, stop_at=2, iters=4)
    first = rh.summarize(run)
    assert first.status == "stopped"
    train_run(tiny_model_dir, runs_root["data"], tmp_path, iters=4, resume_run=str(run))
    again = rh.summarize(run)
    assert again.status == "finished" and again.iteration == 4
    starts = [m for m in read_metrics(run) if m["event"] == "start"]
    assert len(starts) == 2
    assert again.duration_s > first.duration_s
    # one point per step, even where a session reported a step again
    assert len({p.iteration for p in again.train_curve}) == len(again.train_curve)


def test_a_run_paused_in_another_process_then_killed(runs_root, tiny_model_dir, tmp_path):
    proc = start_paused_elsewhere(tiny_model_dir, runs_root["data"], tmp_path)
    try:
        (run,) = rh.run_folders(tmp_path)
        s = rh.summarize(run)
        assert s.status == "paused" and s.pid == proc.pid
        why = rh.why_not_delete(run)
        assert why and str(proc.pid) in why
        with pytest.raises(rh.RunError):
            rh.delete_run(run)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    s = rh.summarize(run)
    assert s.status == "interrupted" and "resumed" in s.message and s.pid is None
    assert run.is_dir()


def test_rename_tag_and_note_are_kept_in_the_run_folder(runs_root, tmp_path):
    run = tmp_path / runs_root["finished"].name
    shutil.copytree(runs_root["finished"], run)
    rh.rename_run(run, "baseline lr 1e-3")
    assert rh.set_tags(run, add=["baseline", "lr"]) == ("baseline", "lr")
    assert rh.set_tags(run, add=["keep"], remove=["lr"]) == ("baseline", "keep")
    rh.set_note(run, "first try; loss still falling")
    s = rh.summarize(run)
    assert (s.name, s.tags, s.note) == (
        "baseline lr 1e-3",
        ("baseline", "keep"),
        "first try; loss still falling",
    )
    assert (
        s.folder == runs_root["finished"].name
    )  # the folder keeps its name: paths inside stay valid
    assert json.loads((run / rh.META_FILE).read_text())["name"] == "baseline lr 1e-3"
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary left behind
    assert rh.resolve_run("baseline lr 1e-3", tmp_path) == run
    with pytest.raises(rh.RunError, match="1 to 80"):
        rh.rename_run(run, "  ")
    with pytest.raises(rh.RunError, match="tag 'a b'"):
        rh.set_tags(run, add=["a b"])


def test_resolve_run_by_folder_part_and_clear_errors(runs_root):
    runs = runs_root["runs"]
    assert rh.resolve_run(runs_root["stopped"].name, runs) == runs_root["stopped"]
    assert rh.resolve_run("halt", runs) == runs_root["stopped"]
    assert rh.resolve_run(str(runs_root["finished"]), runs) == runs_root["finished"]
    with pytest.raises(rh.RunError, match="no such run"):
        rh.resolve_run("nothing-like-it", runs)
    with pytest.raises(rh.RunError, match="not an mlxtui run folder"):
        rh.resolve_run(str(runs_root["data"]), runs)


def test_delete_removes_a_run_and_refuses_anything_else(runs_root, tmp_path):
    run = tmp_path / runs_root["stopped"].name
    shutil.copytree(runs_root["stopped"], run)
    # a folder with the look of a run but a file the user put there is not deleted
    (run / "my-notes.txt").write_text("mine")
    why = rh.why_not_delete(run)
    assert why and "my-notes.txt" in why
    with pytest.raises(rh.RunError, match="move them out"):
        rh.delete_run(run)
    (run / "my-notes.txt").unlink()
    # a data folder, a link to a run, a folder with only a config.yaml: refused, untouched
    with pytest.raises(rh.RunError, match="not an mlxtui run folder"):
        rh.delete_run(runs_root["data"])
    link = tmp_path / "20990101-000000-link"
    link.symlink_to(run)
    with pytest.raises(rh.RunError, match="link"):
        rh.delete_run(link)
    fake = tmp_path / "20990101-000000-fake"
    fake.mkdir()
    (fake / "config.yaml").write_text("model: x\n")
    with pytest.raises(rh.RunError, match="not an mlxtui run folder"):
        rh.delete_run(fake)
    assert (fake / "config.yaml").is_file() and runs_root["data"].is_dir()
    rh.delete_run(run)
    assert not run.exists() and link.is_symlink()
    assert not [p for p in tmp_path.iterdir() if ".deleting-" in p.name]


def test_a_folder_that_never_trained_is_new(tmp_path):
    from mlxtui.core.runs import new_run_dir

    run = new_run_dir(tmp_path, "empty")
    (run / "config.yaml").write_text("model: m\nfine_tune_type: dora\nlearning_rate: 0.0002\n")
    s = rh.summarize(run)
    assert s.status == "new" and s.method == "dora" and s.settings["lr"] == 2e-4
    assert s.final_val_loss is None and s.tokens_per_second is None and s.duration_s == 0
