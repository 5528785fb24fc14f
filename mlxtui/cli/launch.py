"""`mlxtui train --nproc N | --hosts FILE`: the same run on every rank, through mlx.launch.

Two sides of one command:
- the launching side (no MLX_RANK in the environment) builds the mlx.launch command that
  runs this same `mlxtui train` on every rank, shows the ranks' output, passes Ctrl-C on
  as a stop for every rank, and says which rank failed (mlx.launch itself exits 0);
- the rank side (started by mlx.launch) trains as usual, prints heartbeats for the
  launching side, prints the per-rank figures rank 0 gathers, and stops when the launching
  side writes "stop" to its input. Only rank 0 prints progress and writes files.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from typing import Any, TextIO


def rank_argv(args: argparse.Namespace) -> list[str]:
    """This command line for a rank: the settings given as flags, and --config."""
    from mlxtui.cli.train import given_settings
    from mlxtui.core.config import setting

    argv = ["train"]
    if getattr(args, "config", None):
        argv += ["--config", str(args.config)]
    for name, value in given_settings(args).items():
        flag = setting(name).flags[0]
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, str(value)]
    return argv


def launch_ranks(args: argparse.Namespace, config: Any, out: TextIO) -> int:
    """Start every rank through mlx.launch and watch them; 0 only when every rank succeeded."""
    from mlxtui.cli.errors import config_error_text
    from mlxtui.cli.signals import StopSignals
    from mlxtui.core.config import ConfigError
    from mlxtui.core.distributed import Launch, launch_command, validate_launch

    try:
        config.validate()  # once here, rather than once on every rank
        validate_launch(config.nproc, config.hosts, config.backend)
    except ConfigError as e:
        print(f"mlxtui train: {config_error_text(e)}", file=sys.stderr)
        return 2
    cmd = launch_command(rank_argv(args), nproc=config.nproc, hosts=config.hosts, backend=config.backend)
    where = f"the hosts of {config.hosts}" if config.hosts else f"{config.nproc} processes on this machine"
    print(
        f"launching {where} ({config.backend} back-end), batch {config.batch_size} per rank: "
        f"{shlex.join(cmd)}",
        file=out,
        flush=True,
    )

    def show(line: str) -> None:
        print(line, file=out, flush=True)

    launch = Launch(cmd, rank_timeout=config.rank_timeout, on_line=show)

    def stop_every_rank(signum: int) -> None:
        print("\nCtrl-C: every rank stops at the next step; rank 0 saves the adapter (Ctrl-C again to end them now)",
              file=sys.stderr)
        launch.request_stop()

    def end_every_rank(signum: int) -> None:
        print("\nsecond Ctrl-C: ending every rank now (the last checkpoint is kept)", file=sys.stderr)
        threading.Thread(target=launch.kill, daemon=True).start()

    with StopSignals(stop_every_rank, end_every_rank, hangup=False) as presses:
        outcome = launch.wait()
    status, said = exit_status(outcome, presses.count)
    if said:
        print(f"mlxtui train: {said}", file=sys.stderr)
    return status


def exit_status(outcome: Any, stops: int) -> tuple[int, str]:
    """The launching command's exit status for how the ranks ended (a LaunchOutcome), after
    `stops` Ctrl-C/SIGTERM, and what it says about it ("" when nothing).

    The statuses are a single process's (`mlxtui train --help`): a NaN loss or a peak past
    --memory-limit that rank 0 reports keeps its own status (3, 4), so a script tells them
    from a crash; any other rank that failed (the message names it and its code) is 1.
    """
    from mlxtui.cli.train import (
        EXIT_DIVERGED,
        EXIT_FAILED,
        EXIT_INTERRUPTED,
        EXIT_MEMORY_LIMIT,
        EXIT_TRAINED,
    )

    if outcome.ok:
        return (EXIT_INTERRUPTED if stops else EXIT_TRAINED), ""
    # A NaN loss or a peak past --memory-limit is the run's own stop: every rank sees the same
    # all-summed loss, so they end with the same status, or mlx.launch ends the slower ones
    # (SIGTERM, "killed") once the first has. Rank 0 is named when it has that status; the
    # first rank to end may be another (seen in CI: rank 1 exited 3, rank 0 got SIGTERM).
    # A rank that crashed (another status or signal) is the cause, and a 3 would hide it.
    codes = outcome.exit_codes
    own = {code for code in codes.values() if code in (EXIT_DIVERGED, EXIT_MEMORY_LIMIT)}
    if not outcome.timed_out and len(own) == 1 and set(codes.values()) <= own | {-signal.SIGTERM, None}:
        (code,) = own
        rank = 0 if codes.get(0) == code else min(r for r, c in codes.items() if c == code)
        why = "its loss became NaN or infinite" if code == EXIT_DIVERGED else "its peak memory passed --memory-limit"
        return code, (
            f"rank {rank} stopped the run because {why} (exit status {code}; its lines above say "
            f"what to change). {outcome.message}"
        )
    if stops > 1:
        return EXIT_INTERRUPTED, f"every rank was ended by the second Ctrl-C: {outcome.message}"
    return EXIT_FAILED, outcome.message


# ---------------------------------------------------------------- the rank side


def rank_number() -> int:
    from mlxtui.core.distributed import RANK_ENV

    return int(os.environ.get(RANK_ENV, os.environ.get("OMPI_COMM_WORLD_RANK", "0")))


class RankReporter:
    """An event subscriber on each rank: heartbeats for the launching side (at most one a
    second, and at every step report), and rank 0's line of per-rank figures; for a launching
    dashboard, rank 0 prints every event too (memory samples aside: the dashboard samples its
    own machine, and RankReport carries each rank's peak).

    A heartbeat means the rank's work moved (a step, a phase, a save), so memory samples,
    which the sampler thread sends while the engine thread waits in a collective, are none.
    """

    def __init__(self, rank: int, out: TextIO, heartbeat: bool, events: bool | None = None) -> None:
        from mlxtui.core.distributed import EVENTS_ENV

        self.rank = rank
        self.out = out
        self.heartbeat = heartbeat
        # rank 0 also prints every event for a launching dashboard (core/event_wire.py)
        self.events = rank == 0 and (EVENTS_ENV in os.environ if events is None else events)
        self.run_dir = ""
        self.step = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        from mlxtui.core import events as ev
        from mlxtui.core.distributed import heartbeat_line

        with self._lock:
            if isinstance(event, ev.TrainStarted):
                self.run_dir = event.run_dir
            if isinstance(event, ev.TrainStep | ev.TrainReport):
                self.step = event.iteration
            if isinstance(event, ev.RankReport) and self.rank == 0:
                ranks = "; ".join(
                    f"rank {r} {tps:,.0f} tok/s {mem:.2f} GB"
                    for r, (tps, mem) in enumerate(zip(event.tokens_per_second, event.peak_memory, strict=True))
                )
                print(f"step {event.iteration} ranks: {ranks}", file=self.out, flush=True)
            if self.events and not isinstance(event, ev.MemorySampled):
                from mlxtui.core.distributed import EVENT_PREFIX
                from mlxtui.core.event_wire import encode

                print(EVENT_PREFIX + encode(event), file=self.out, flush=True)
            if isinstance(event, ev.MemorySampled | ev.MemoryAlert):
                return  # the sampler thread's: they flow on while the training is stuck
            now = time.monotonic()
            if self.heartbeat and (now - self._last >= 1.0 or isinstance(event, ev.TrainReport)):
                self._last = now
                fields: dict[str, Any] = {"step": self.step, "event": type(event).__name__}
                if self.run_dir:
                    fields["run_dir"] = self.run_dir
                print(heartbeat_line(self.rank, **fields), file=self.out, flush=True)


def listen_for_stop(stop: Any) -> None:
    """Call `stop()` when the launching side writes "stop" to this rank's input."""
    from mlxtui.core.distributed import STOP_LINE

    def read() -> None:
        for line in sys.stdin:
            if line.strip() == STOP_LINE:
                stop()

    threading.Thread(target=read, name="mlxtui-rank-stop", daemon=True).start()
