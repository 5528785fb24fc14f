"""Training across ranks with MLX's distributed engine (mx.distributed, mlx.launch).

The fast tests check the pieces (the batch shards, the launch command, the watcher on real
subprocesses); the two slow ones launch real ranks on this machine with the ring back-end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from demo_slice import demo_slice
from rank_procs import rank_pid

from mlxtui.core.config import ConfigError, TrainConfig
from mlxtui.core.distributed import (
    HEARTBEAT_PREFIX,
    Launch,
    heartbeat_line,
    launch_command,
    parse_heartbeat,
    validate_launch,
    wants_launch,
)
from mlxtui.core.training.batches import BatchPlan, eval_batch_count, eval_batches
from mlxtui.core.training.ranks import batch_tokens


class Lengths:
    """A dataset stand-in for the batch plan: item i is a list of tokens of a given length."""

    def __init__(self, lengths: list[int]) -> None:
        self.items = [[1] * n for n in lengths]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> list[int]:
        return self.items[i]


LENGTHS = [5 + (i * 37) % 50 for i in range(40)]


# ------------------------------------------------------------------ sharding


@pytest.mark.parametrize("world", [2, 3])
def test_rank_shards_together_are_the_single_process_batch(world: int) -> None:
    data = Lengths(LENGTHS)
    one = BatchPlan(data, 2 * world, 64, seed=7)
    shards = [BatchPlan(data, 2, 64, seed=7, rank=r, world_size=world) for r in range(world)]
    for step in range(25):  # over an epoch boundary (40 // (2*world) batches per epoch)
        parts = [plan.batch_indices(step) for plan in shards]
        assert all(len(p) == 2 for p in parts)
        flat = [i for p in parts for i in p]
        assert len(set(flat)) == len(flat), "ranks must not share an example in a step"
        assert sorted(flat) == sorted(one.batch_indices(step))


def test_the_order_is_a_pure_function_of_seed_step_rank_and_world() -> None:
    data = Lengths(LENGTHS)
    a = BatchPlan(data, 2, 64, seed=3, rank=1, world_size=2)
    b = BatchPlan(data, 2, 64, seed=3, rank=1, world_size=2)
    # a resumed run builds a new plan and asks from its step on: the same batches
    assert [a.batch_indices(s) for s in range(30)] == [b.batch_indices(s) for s in reversed(range(30))][::-1]
    other_rank = BatchPlan(data, 2, 64, seed=3, rank=0, world_size=2)
    other_seed = BatchPlan(data, 2, 64, seed=4, rank=1, world_size=2)
    assert [a.batch_indices(s) for s in range(5)] != [other_rank.batch_indices(s) for s in range(5)]
    assert [a.batch_indices(s) for s in range(5)] != [other_seed.batch_indices(s) for s in range(5)]


def test_a_world_that_needs_more_examples_than_the_set_has_is_refused() -> None:
    from mlxtui.core.training.errors import TrainingError

    with pytest.raises(TrainingError, match=r"batch_size 4 x 3 ranks = 12"):
        BatchPlan(Lengths([5] * 10), 4, 64, seed=0, rank=0, world_size=3)
    with pytest.raises(TrainingError, match="rank 2 is outside a world of 2"):
        BatchPlan(Lengths([5] * 10), 1, 64, seed=0, rank=2, world_size=2)


def test_eval_shards_score_exactly_the_single_process_batches() -> None:
    data = Lengths(LENGTHS)
    one = [b[0].shape[0] for b in eval_batches(data, 4, 64, num_batches=3)]
    shards = [list(eval_batches(data, 2, 64, rank=r, world_size=2, num_batches=3)) for r in range(2)]
    assert one == [4, 4, 4]
    assert [len(s) for s in shards] == [3, 3]
    for k in range(3):
        single = sorted(int(x) for x in list(eval_batches(data, 4, 64, num_batches=3))[k][1][:, 1].tolist())
        split = sorted(int(x) for s in shards for x in s[k][1][:, 1].tolist())
        assert split == single
    assert eval_batch_count(data, 2, -1, world_size=2) == len(data) // 4


def test_batch_tokens_counts_what_mlx_lms_loss_counts() -> None:
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss

    class Zero:
        def __call__(self, x: Any) -> Any:
            return mx.zeros((*x.shape, 7))

    batch = mx.zeros((3, 33), dtype=mx.int32)
    lengths = mx.array([[0, 10], [4, 33], [2, 40]])
    _, ntoks = default_loss(Zero(), batch, lengths)
    assert batch_tokens(lengths, 33) == int(ntoks.item())


# ------------------------------------------------------------------ launching


def test_launch_command_runs_this_train_on_every_rank(tmp_path: Path) -> None:
    cmd = launch_command(["train", "--iters", "5"], nproc=2, hosts=None, backend="ring", cwd=str(tmp_path))
    assert cmd[cmd.index("-n") + 1] == "2" and cmd[cmd.index("--hosts") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--backend") + 1] == "ring"
    assert cmd[cmd.index("--cwd") + 1] == str(tmp_path)
    assert cmd[cmd.index("--") + 1 :] == [sys.executable, "-m", "mlxtui", "train", "--iters", "5"]
    hosts = tmp_path / "hosts.json"
    any_cmd = launch_command(["train"], nproc=1, hosts=str(hosts), backend="any")
    assert "--backend" not in any_cmd  # mlx.launch picks: NCCL with CUDA, else ring
    assert any_cmd[any_cmd.index("--hostfile") + 1] == str(hosts)
    assert "MLXTUI_DIST_BACKEND=any" in any_cmd


def test_bad_launch_settings_are_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        TrainConfig(backend="gloo").validate()
    assert e.value.field == "backend"
    with pytest.raises(ConfigError, match="give one of them") as e:
        hosts = tmp_path / "h.json"
        hosts.write_text(json.dumps([{"ssh": "a", "ips": ["10.0.0.1"]}]))
        validate_launch(2, str(hosts), "ring")
    with pytest.raises(ConfigError, match="does not exist") as e:
        validate_launch(1, str(tmp_path / "missing.json"), "ring")
    assert e.value.field == "hosts"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hosts": [{"ip": "10.0.0.1"}]}))
    with pytest.raises(ConfigError, match="expected a list of hosts"):
        validate_launch(1, str(bad), "ring")
    validate_launch(2, None, "ring")


def test_a_rank_never_launches_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLX_RANK", raising=False)
    assert wants_launch(2, None) and not wants_launch(1, None)
    monkeypatch.setenv("MLX_RANK", "1")
    assert not wants_launch(2, None)


def test_heartbeat_lines_round_trip() -> None:
    line = heartbeat_line(1, step=5, run_dir="runs/x")
    assert line.startswith(HEARTBEAT_PREFIX)
    beat = parse_heartbeat(line)
    assert beat is not None and beat["rank"] == 1 and beat["step"] == 5
    assert parse_heartbeat("step 5/8: train loss 1.0") is None
    assert parse_heartbeat(HEARTBEAT_PREFIX + "{not json") is None


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for its reaper."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake_launch.py"
    path.write_text(body)
    return [sys.executable, str(path)]


def test_the_watcher_ends_a_launch_whose_ranks_went_silent(tmp_path: Path) -> None:
    """A rank that hangs holds the others in a collective: no heartbeat comes, every rank ends."""
    # the "launcher" starts a "rank" stuck so that SIGTERM does nothing (as in a collective)
    stuck = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    body = (
        "import subprocess, sys, time\n"
        f"rank = subprocess.Popen([sys.executable, '-c', {stuck!r}])\n"
        "print('rank pid', rank.pid, flush=True)\n"
        f"print({heartbeat_line(0, step=3, run_dir='runs/r', event='TrainStep')!r}, flush=True)\n"
        "print('step 3/9: train loss 2.0', flush=True)\n"
        "time.sleep(120)\n"
    )
    lines: list[str] = []
    started = time.monotonic()
    outcome = Launch(_script(tmp_path, body), rank_timeout=1.5, on_line=lines.append, grace_s=2).wait()
    assert time.monotonic() - started < 30  # after a step: rank_timeout, not the start allowance
    assert outcome.timed_out and not outcome.ok
    assert lines[1:] == ["step 3/9: train loss 2.0"]  # heartbeats are not shown
    rank_pid = int(lines[0].split()[-1])
    assert _gone(rank_pid), "the stuck rank outlived the launch"
    assert "no rank reported for 1.5 s" in outcome.message and "runs/r" in outcome.message


def test_before_the_first_step_a_rank_may_be_silent_longer(tmp_path: Path) -> None:
    """Loading a large model sends no heartbeat for a while: that is not a hang."""
    body = (
        "import time\n"
        f"print({heartbeat_line(0, event='PhaseStarted')!r}, flush=True)\n"
        "time.sleep(3)\n"
        f"print({heartbeat_line(0, event='TrainStep', step=1)!r}, flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    launch = Launch(_script(tmp_path, body), rank_timeout=1.0, on_line=lambda _: None, grace_s=2, startup_timeout=5.0)
    outcome = launch.wait()
    assert outcome.timed_out and launch.stepping
    assert 3.5 < time.monotonic() - started < 30  # not ended during the 3 s before the step


def test_the_watcher_names_the_rank_that_failed_although_mlx_launch_exits_0(tmp_path: Path) -> None:
    body = (
        "import sys\n"
        "print('\\x1b[33m[WARN] Node with rank 1 exited with code -9 \\x1b[0m', flush=True)\n"
        "print('\\x1b[33m[WARN] Node with rank 0 exited with code -15 \\x1b[0m', flush=True)\n"
    )
    outcome = Launch(_script(tmp_path, body), rank_timeout=0, on_line=lambda _: None).wait()
    assert outcome.returncode == 0 and not outcome.ok
    assert outcome.failed_ranks == {1: "was ended by SIGKILL", 0: "was ended by SIGTERM"}
    assert outcome.message.startswith("rank 1 was ended by SIGKILL; rank 0 was ended by SIGTERM")
    assert "before training started" in outcome.message  # no rank had named a run folder


def test_ranks_still_there_after_one_failed_are_ended(tmp_path: Path) -> None:
    """mlx.launch reports rank 1 dead and waits on rank 0, which took its SIGTERM as a stop
    that needs the lost peer (or waits inside a collective): the watcher ends the launch
    `after_failure_s` later although heartbeats came (rank_timeout alone would wait on)."""
    stuck = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    body = (
        "import subprocess, sys, time\n"
        f"rank = subprocess.Popen([sys.executable, '-c', {stuck!r}])\n"
        "print('rank pid', rank.pid, flush=True)\n"
        f"print({heartbeat_line(0, step=6, run_dir='runs/r', event='TrainStep')!r}, flush=True)\n"
        f"print({_node(1, -9)!r}, flush=True)\n"
        "time.sleep(120)\n"
    )
    lines: list[str] = []
    started = time.monotonic()
    launch = Launch(_script(tmp_path, body), rank_timeout=300, on_line=lines.append, grace_s=2, after_failure_s=1.5)
    outcome = launch.wait()
    assert time.monotonic() - started < 30
    assert not outcome.timed_out and outcome.ended_after_failure == 1.5
    assert _gone(int(lines[0].split()[-1])), "the waiting rank outlived the launch"
    assert outcome.message.startswith("rank 1 was ended by SIGKILL; the other ranks had not ended 1.5 s later")
    assert "mlxtui train --resume runs/r" in outcome.message

    # a rank that failed and the others ending at once, as they do: nothing is ended early
    body = f"import time\nprint({_node(1, -9)!r}, flush=True)\ntime.sleep(1)\nprint({_node(0, -15)!r}, flush=True)\n"
    outcome = Launch(_script(tmp_path, body), rank_timeout=0, on_line=lambda _: None, after_failure_s=5).wait()
    assert outcome.ended_after_failure == 0 and "mlx.launch stopped the other ranks" in outcome.message


# mlx.launch's own words as it prints them (a warning in colour), then the status it ends with
def _node(rank: int, code: int | None) -> str:
    how = "was killed" if code is None else f"exited with code {code}"
    return f"\x1b[33m[WARN] Node with rank {rank} {how} \x1b[0m"


@pytest.mark.parametrize(
    ("ends", "stops", "status", "said"),
    [
        ({}, 0, 0, ""),
        ({}, 1, 130, ""),  # stopped by Ctrl-C, saved: as one process
        ({1: 1, 0: -15}, 0, 1, "rank 1 exited with code 1; rank 0 was ended by SIGTERM"),
        ({0: 3, 1: -15}, 0, 3, "rank 0 stopped the run because its loss became NaN or infinite (exit status 3"),
        ({0: 4, 1: None}, 0, 4, "rank 0 stopped the run because its peak memory passed --memory-limit (exit status 4"),
        ({0: 3, 1: 3}, 0, 3, "rank 0 stopped the run because its loss became NaN"),
        # rank 0's 3 after a rank that crashed is not the run's own stop: the crash is said
        ({1: -9, 0: 3}, 0, 1, "rank 1 was ended by SIGKILL"),
        # both ranks saw the NaN; rank 1 ended first and mlx.launch ended rank 0 (seen in CI)
        ({1: 3, 0: -15}, 0, 3, "rank 1 stopped the run because its loss became NaN or infinite (exit status 3"),
        ({0: 1}, 0, 1, "rank 0 exited with code 1"),
        ({0: -15, 1: -15}, 2, 130, "every rank was ended by the second Ctrl-C: rank 0 was ended by SIGTERM"),
    ],
    ids=["trained", "stopped", "a-rank-failed", "nan", "memory-limit", "nan-on-both", "crash-then-nan", "nan-rank-1-first",
         "rank-0-failed", "second-ctrl-c"],
)
def test_the_launching_command_exits_with_how_the_ranks_ended(
    tmp_path: Path, ends: dict[int, int | None], stops: int, status: int, said: str
) -> None:
    from mlxtui.cli.launch import exit_status

    body = "".join(f"print({_node(rank, code)!r}, flush=True)\n" for rank, code in ends.items())
    outcome = Launch(_script(tmp_path, body or "pass\n"), rank_timeout=0, on_line=lambda _: None).wait()
    assert outcome.exit_codes == ends
    got, words = exit_status(outcome, stops)
    assert got == status and words.startswith(said), words
    if status == 3:
        rank = said.split()[1]  # the rank the message names
        assert f"rank {rank} exited with code 3" in words  # which rank, with its code


def test_mlxtui_train_across_ranks_exits_3_when_rank_0_s_loss_is_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command itself, with a stand-in for mlx.launch: what it prints and its status."""
    from mlxtui.cli.main import main
    from mlxtui.core import distributed

    beat = heartbeat_line(0, event="TrainStep", step=6, run_dir="runs/r")
    body = (
        f"print({beat!r}, flush=True)\n"
        "print('mlxtui train: the loss became nan at step 6, so the run stopped (exit status 3)', flush=True)\n"
        f"print({_node(0, 3)!r}, flush=True)\nprint({_node(1, -15)!r}, flush=True)\n"
    )
    monkeypatch.setattr(distributed, "launch_command", lambda *a, **k: _script(tmp_path, body))
    assert main(["train", "--nproc", "2", "--backend", "ring"]) == 3
    out, err = capsys.readouterr()
    assert "the loss became nan at step 6" in out  # rank 0's own words, shown as they came
    last = err.strip().splitlines()[-1]
    assert last.startswith("mlxtui train: rank 0 stopped the run because its loss became NaN or infinite")
    assert "rank 0 exited with code 3; rank 1 was ended by SIGTERM" in last
    assert "mlxtui train --resume runs/r" in last

    body = f"print({_node(1, 2)!r}, flush=True)\n"
    monkeypatch.setattr(distributed, "launch_command", lambda *a, **k: _script(tmp_path, body))
    assert main(["train", "--nproc", "2", "--backend", "ring"]) == 1
    assert "mlxtui train: rank 1 exited with code 2" in capsys.readouterr().err


def test_ctrl_c_on_the_launching_side_stops_every_rank_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stand-in's "ranks" end cleanly when the stop line reaches them, as rank 0 does after
    saving; the command then exits 130, as one interrupted process does."""
    import threading

    from mlxtui.cli.main import main
    from mlxtui.core import distributed

    body = (
        "import sys\n"
        "print('ranks started', flush=True)\n"
        "print('got', sys.stdin.readline().strip(), flush=True)\n"
    )
    monkeypatch.setattr(distributed, "launch_command", lambda *a, **k: _script(tmp_path, body))
    before = signal.getsignal(signal.SIGINT)
    done = threading.Event()

    def press_ctrl_c() -> None:  # once the command has taken the signal, while it watches
        while not done.is_set() and signal.getsignal(signal.SIGINT) == before:
            time.sleep(0.05)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        assert main(["train", "--nproc", "2", "--backend", "ring"]) == 130
    finally:
        done.set()
        presser.join(5)
    out, err = capsys.readouterr()
    assert "got stop" in out
    assert "Ctrl-C: every rank stops at the next step" in err
    assert signal.getsignal(signal.SIGINT) == before


def test_stop_reaches_the_ranks_through_the_launchers_input(tmp_path: Path) -> None:
    body = "import sys\nline = sys.stdin.readline()\nprint('got', line.strip(), flush=True)\n"
    lines: list[str] = []
    launch = Launch(_script(tmp_path, body), rank_timeout=0, on_line=lines.append)
    launch.request_stop()
    assert launch.wait().ok
    assert lines == ["got stop"]


def test_a_rank_beats_on_its_work_not_on_memory_samples() -> None:
    """The sampler thread sends memory samples while the engine waits in a collective: a rank
    stuck there must fall silent, or the watcher would never see the hang."""
    import io

    from mlxtui.cli.launch import RankReporter
    from mlxtui.core import events as ev

    out = io.StringIO()
    rep = RankReporter(0, out, heartbeat=True)
    rep(ev.MemorySampled(sample=None))
    assert out.getvalue() == ""
    rep(ev.TrainStarted(run_dir="runs/r", total_iters=9, start_iter=0, trainable_parameters=1,
                        total_parameters=2, fine_tune_type="lora"))
    rep(ev.TrainReport(iteration=3, total_iters=9, train_loss=1.0, learning_rate=1e-3, tokens_per_second=1.0,
                       iterations_per_second=1.0, trained_tokens=3, peak_memory=0.1))
    rep(ev.RankReport(iteration=3, tokens_per_second=(10.0, 12.0), peak_memory=(0.5, 0.25)))
    lines = out.getvalue().splitlines()
    beats = [parse_heartbeat(line) for line in lines if line.startswith(HEARTBEAT_PREFIX)]
    assert beats[0] is not None and beats[0]["event"] == "TrainStarted"
    assert beats[-1] is not None and beats[-1]["step"] == 3 and beats[-1]["run_dir"] == "runs/r"
    assert "step 3 ranks: rank 0 10 tok/s 0.50 GB; rank 1 12 tok/s 0.25 GB" in lines


def test_rank_argv_repeats_the_given_flags() -> None:
    from mlxtui.cli.launch import rank_argv
    from mlxtui.cli.main import build_parser

    args = build_parser().parse_args(
        ["train", "--model", "m", "--batch-size", "2", "--grad-checkpoint", "--nproc", "2", "--backend", "ring"]
    )
    argv = rank_argv(args)
    assert argv[0] == "train"
    pairs = " ".join(argv)
    for part in ("--model m", "--batch-size 2", "--grad-checkpoint", "--nproc 2", "--backend ring"):
        assert part in pairs


def test_nproc_without_a_launch_is_refused_not_ignored(tiny_model_dir: Path, tmp_path: Path) -> None:
    from mlxtui.core.engine import Engine, EngineError, Train
    from mlxtui.demo_data import demo_data_dir

    cfg = TrainConfig().with_values(
        model=str(tiny_model_dir), data=str(demo_data_dir()), runs_dir=str(tmp_path), nproc=2,
        num_layers=1, iters=2, batch_size=2, memory_guard="off",
    )
    engine = Engine(lambda e: None)
    engine.start()
    try:
        with pytest.raises(EngineError, match=r"mlxtui train --nproc N"):
            engine.run_sync(Train(cfg), timeout=300)
    finally:
        engine.shutdown()
    assert not any(tmp_path.iterdir()), "a refused run leaves no run folder"


# ------------------------------------------------------------------ real ranks (ring, CPU)


def _train_cmd(model: Path, data: Path, runs: Path, *extra: str) -> list[str]:
    # max_seq_length 32 truncates every example to 32 tokens: each rank's rows then hold as
    # many tokens as the others', and mlx-lm's mean of the ranks' mean losses (and the average
    # of their gradients) is the single process's mean over the whole batch.
    return [
        sys.executable, "-m", "mlxtui", "train", "--model", str(model), "--data", str(data),
        "--runs-dir", str(runs), "--num-layers", "2", "--learning-rate", "1e-3",
        "--steps-per-report", "1", "--val-batches", "2", "--max-seq-length", "32",
        "--memory-guard", "off", *extra,
    ]  # fmt: skip


def _records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == kind]


@pytest.fixture(scope="module")
def epoch_runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One epoch of 48 examples trained twice: on 2 ranks of batch 2 (a real ring launch) and in
    one process of batch 4; 12 steps each, validated and saved every 3. The two slow tests below
    read these runs (one launch for both: a launch starts three interpreters)."""
    root = tmp_path_factory.mktemp("epoch_runs")
    data = demo_slice(root / "data", train=48, valid=8, test=8)  # 48 training examples
    steps = ["--epochs", "1", "--steps-per-eval", "3", "--save-every", "3"]
    two = subprocess.run(
        _train_cmd(tiny_model_dir, data, root / "two", *steps, "--batch-size", "2", "--nproc", "2", "--backend", "ring"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    one = subprocess.run(
        _train_cmd(tiny_model_dir, data, root / "one", *steps, "--batch-size", "4"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return {"data": data, "root": root, "two": two, "one": one}


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_effective_batch(epoch_runs: dict[str, Any]) -> None:
    two, one, root = epoch_runs["two"], epoch_runs["one"], epoch_runs["root"]
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert one.returncode == 0, one.stderr[-3000:]
    # both ranks reported: rank 0 gathers each rank's tokens/s and memory
    assert "step 12 ranks: rank 0 " in two.stdout and "; rank 1 " in two.stdout
    # only rank 0 wrote: one run folder, one line per step in its metrics
    (run_dir,) = (root / "two").iterdir()
    (one_dir,) = (root / "one").iterdir()
    train2, train1 = _records(run_dir, "train"), _records(one_dir, "train")
    assert [r["iteration"] for r in train2] == list(range(1, 13))
    assert sorted(p.name for p in (run_dir / "adapters").iterdir()) == sorted(
        p.name for p in (one_dir / "adapters").iterdir()
    )
    # The same batches and the same mathematics; what differs is the order of float32 sums
    # (each rank sums its half, then the ring adds the halves): a relative error of about
    # 1e-7 per sum, measured here at most ~5e-6 on losses near 6 after 12 steps. 1e-4 allows
    # for that drift, and is 100x smaller than a one-example change of the batch (~1e-2).
    for a, b in zip(train2, train1, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert a["trained_tokens"] == b["trained_tokens"]
    val2, val1 = _records(run_dir, "val"), _records(one_dir, "val")
    assert [r["iteration"] for r in val2] == [r["iteration"] for r in val1] == [0, 3, 6, 9, 12]
    for a, b in zip(val2, val1, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
    ranks = _records(run_dir, "ranks")
    assert [r["iteration"] for r in ranks] == list(range(1, 13))
    assert all(len(r["tokens_per_second"]) == 2 and min(r["peak_memory"]) > 0 for r in ranks)
    state = json.loads((run_dir / "state" / "state.json").read_text())
    assert state["world_size"] == 2 and state["iteration"] == 12


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_stops_the_others_and_the_last_checkpoint_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = demo_slice(tmp_path / "data", train=48, valid=8, test=8)
    runs = tmp_path / "runs"
    cmd = _train_cmd(
        tiny_model_dir, data, runs, "--iters", "400", "--steps-per-eval", "1000", "--save-every", "2",
        "--batch-size", "2", "--nproc", "2", "--backend", "ring",
    )  # fmt: skip
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        checkpoint = None
        while time.monotonic() < deadline and checkpoint is None:
            time.sleep(0.5)
            found = sorted(runs.glob("*/adapters/0000004_adapters.safetensors"))
            checkpoint = found[0] if found else None
        assert checkpoint is not None, "no checkpoint at step 4 within 300 s"
        pid = rank_pid(runs, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1, out[-2000:] + err[-2000:]
    assert "mlxtui train: rank 1 was ended by SIGKILL" in err, err[-3000:]
    assert "The last checkpoint rank 0 saved is kept" in err
    assert rank_pid(runs, 0) is None, "rank 0 was left running"
    run_dir = checkpoint.parent.parent
    state = json.loads((run_dir / "state" / "state.json").read_text())
    assert state["iteration"] >= 4 and state["iteration"] % 2 == 0 and state["world_size"] == 2
    from mlx_lm import load

    model, _ = load(str(tiny_model_dir), adapter_path=str(run_dir / "adapters"))
    assert model is not None


@pytest.mark.slow
def test_a_nan_loss_across_ranks_exits_3_as_one_process_does(tiny_model_dir: Path, tmp_path: Path) -> None:
    """4 sane SGD steps, then a rate of 1e12 (as tests/test_cli_train_exit.py does in one process)."""
    data = demo_slice(tmp_path / "data", train=48, valid=8, test=8)
    runs = tmp_path / "runs"
    cmd = _train_cmd(
        tiny_model_dir, data, runs, "--iters", "12", "--save-every", "4", "--optimizer", "sgd",
        "--lr-phases", "4:1e-3,8:1e12", "--steps-per-eval", "1000", "--batch-size", "2",
        "--nproc", "2", "--backend", "ring", "--rank-timeout", "120",
    )  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    said = proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.returncode == 3, said
    last = proc.stderr.strip().splitlines()[-1]
    # every rank sees the NaN: the one named is rank 0, or the rank that ended first (then
    # mlx.launch ended rank 0), by timing
    assert re.match(r"mlxtui train: rank [01] stopped the run because its loss became NaN or infinite", last), said
    assert re.search(r"rank [01] exited with code 3", last)
    (run_dir,) = runs.iterdir()
    assert f"mlxtui train --resume {run_dir}" in last
    state = json.loads((run_dir / "state" / "state.json").read_text())
    assert state["iteration"] == 4 and state["world_size"] == 2  # the last good checkpoint


# ------------------------------------------------------------------ the Config pane


async def test_the_config_pane_shows_the_effective_batch_and_a_per_rank_estimate(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_tui_memory import make_app, wait_for

    from mlxtui.tui.widgets.config_form import ConfigForm
    from mlxtui.tui.widgets.dataset_browser import DatasetBrowser
    from mlxtui.tui.widgets.memory_estimate import EstimateView

    app, _ = make_app(TrainConfig.quick_start(batch_size=2, nproc=4, grad_accumulation_steps=2))
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(EstimateView)
        assert await wait_for(pilot, lambda: "effective batch 16" in view.plain())
        assert "2 per rank × 4 ranks × 2 accumulation; the estimate is per rank" in view.plain()
        app.query_one(ConfigForm).set_value("batch_size", "3")
        assert await wait_for(pilot, lambda: "effective batch 24" in view.plain())
        # leave after the dataset is indexed: its message would find the screen gone
        assert await wait_for(pilot, lambda: app.query_one(DatasetBrowser).index is not None)
        await pilot.pause(0.1)

    single, _ = make_app(TrainConfig.quick_start())
    async with single.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: single.query_one(DatasetBrowser).index is not None)
        await pilot.pause(0.1)
        assert "effective batch" not in single.query_one(EstimateView).plain()


# ------------------------------------------------------------------ epochs across ranks


class _Group:
    """What mlx-lm's iterate_batches asks of a communication group: its rank and size."""

    def __init__(self, rank: int, size: int) -> None:
        self._rank, self._size = rank, size

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size


@pytest.mark.slow
def test_an_epoch_across_ranks_is_mlx_lms_pass_with_each_rank_its_share(
    tiny_model_dir: Path, epoch_runs: dict[str, Any]
) -> None:
    """--epochs 1 on 2 ranks of batch 2: the steps of one pass of mlx-lm's iterate_batches with
    the global batch 4 (mlx-lm's batch_size is the global one; each rank takes every 2nd example
    of a batch), and the ranks together train on every example once."""
    from mlx_lm import load
    from mlx_lm.tuner.trainer import iterate_batches

    from mlxtui.core.training import load_datasets

    run, data = epoch_runs["two"], epoch_runs["data"]  # 48 training examples
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (run_dir,) = (epoch_runs["root"] / "two").iterdir()

    _, tokenizer = load(str(tiny_model_dir))
    train_set, _, _ = load_datasets(TrainConfig(data=str(data), max_seq_length=32), data, tokenizer)
    passes = [list(iterate_batches(train_set, 4, 32, loop=False, comm_group=_Group(r, 2))) for r in (0, 1)]
    assert [len(p) for p in passes] == [12, 12]
    assert {int(b[0].shape[0]) for p in passes for b in p} == {2}  # each rank: 2 rows a step

    train = _records(run_dir, "train")
    assert [r["iteration"] for r in train] == list(range(1, 13))
    state = json.loads((run_dir / "state" / "state.json").read_text())
    assert state["iteration"] == 12 and state["world_size"] == 2
    # each rank's share: 2 examples a step, none shared, every example once over the epoch
    plans = [BatchPlan(train_set, 2, 32, seed=0, rank=r, world_size=2) for r in (0, 1)]
    seen = [[i for step in range(12) for i in plan.batch_indices(step)] for plan in plans]
    assert len(seen[0]) == len(seen[1]) == 24
    assert sorted(seen[0] + seen[1]) == list(range(48))
    # and the run trained on exactly those: the tokens mlx-lm summed over both ranks
    tokens = 0
    for plan in plans:
        for step in range(12):
            batch = plan.make_batch(plan.batch_indices(step))
            tokens += batch_tokens(batch[1], int(batch[0].shape[1]))
    assert train[-1]["trained_tokens"] == tokens
