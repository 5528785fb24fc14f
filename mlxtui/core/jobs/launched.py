"""A training across ranks, launched through mlx.launch and watched from this process.

The dashboard's `t` with nproc > 1 (or a host file) starts the same `mlxtui train` on every rank
(cli/rank.py, which takes the dashboard's settings), around the `Launch` watcher of
core/distributed.py. Rank 0 prints its engine events as lines (core/event_wire.py); they are
rebuilt here and passed to `emit` as if an in-process Train job had emitted them, under this
job's id: the panes, the status line and the metrics need nothing new. What the ranks cannot
say (that one died, that a host was unreachable, that they all hung) comes from the watcher
and ends the job as a JobFailed with its words.

Why rank 0's lines and not its metrics.jsonl: rank 0 may run on another host (a host file's
first entry), where that file is not; the file holds no phases, no failure and no outcome; and
the run folder is unknown until rank 0 has made it. The lines reach this process through
mlx.launch from every host, in order, as they happen.

Not an engine job: it does no MLX work, so it does not hold the engine's one MLX thread for the
hours a run takes (chat and estimates stay served). It runs on two threads of its own: the
watcher's reader and a waiter that reports the end. Nothing here blocks its caller.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.config import ConfigError, TrainConfig, from_dict
from mlxtui.core.datadir import is_demo, resolve_data_dir
from mlxtui.core.distributed import (
    CONFIG_ENV,
    EVENTS_ENV,
    Launch,
    LaunchOutcome,
    launch_command,
    validate_launch,
    world_size_of,
)
from mlxtui.core.pause_words import RANKS_STOP

# Negative: never one of the engine's job ids (they count up from 1), so the app can route
# both kinds of job's events by id.
_IDS = itertools.count(-1, -1)
# Events of rank 0 that are its own process's business: its job's start and end (this job
# has its own), its memory samples (the dashboard samples this machine; RankReport carries
# each rank's peak) and the model it loaded (the dashboard's engine holds another).
_NOT_FORWARDED = (ev.JobStarted, ev.JobFinished, ev.MemorySampled, ev.ModelLoaded)
PAUSE_REFUSED = (
    "A run across ranks cannot pause: a paused rank holds the others inside a collective, and "
    f"the rank timeout would end them all. {RANKS_STOP}; continue the run later from the Runs "
    "screen (r), with the same number of ranks"
)
RANK_LINES_KEPT = 12  # the ranks' last output lines, shown when the launch fails


def wants_launch(config: TrainConfig) -> bool:
    """Whether `config` trains across ranks (the dashboard then launches it)."""
    from mlxtui.core.distributed import wants_launch as wants

    return wants(config.nproc, config.hosts)


def rank_settings(config: TrainConfig, cwd: Path) -> str:
    """`config` as the ranks receive it (CONFIG_ENV): config.yaml's keys, as JSON.

    Each rank reads it with `mlxtui train --config`, so it must come back as `config` exactly;
    a setting that would not is refused here, named, rather than trained differently there.
    """
    values = config.to_mlx_lm_dict()
    expected = config
    if config.epochs is not None:
        values.pop("iters", None)  # `mlxtui train` refuses both; epochs decides the length
        expected = expected.with_values(iters=TrainConfig().iters)
    if (
        is_demo(config.data)
        and not (config.train_data or config.test_data or config.hf_dataset)
        and (cwd / "data" / "train.jsonl").is_file()
    ):
        # an empty data setting means the demo set here, but ./data (mlx_lm.lora's default)
        # to `mlxtui train`: name the demo folder
        values["data"] = str(resolve_data_dir(None))
        expected = expected.with_values(data=values["data"])
    try:
        text = json.dumps(values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot be sent to the ranks ({e})", "config") from None
    back = from_dict(json.loads(text), base=TrainConfig(), where="the settings sent to the ranks")
    changed = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if getattr(back, f.name) != getattr(expected, f.name)
    ]
    if changed:
        raise ConfigError(
            f"would reach the ranks as {getattr(back, changed[0])!r}, not "
            f"{getattr(expected, changed[0])!r}; set it in a YAML file and use `mlxtui train --config`",
            changed[0],
        )
    return text


class LaunchedTrain:
    """One launched run: `start()` it, then `stop()`, `kill()`, `wait()`; events go to `emit`."""

    kind = "train"

    def __init__(
        self,
        config: TrainConfig,
        emit: Callable[[ev.Event], None],
        *,
        cwd: str | None = None,
        python: str | None = None,
        grace_s: float = 10.0,
        command: list[str] | None = None,
    ) -> None:
        self.config = config
        self.command = command  # instead of mlx.launch's (tests stand a script in for it)
        self.emit = emit
        self.cwd = cwd or os.getcwd()
        self.python = python
        self.grace_s = grace_s
        self.job_id = next(_IDS)
        self.world_size = world_size_of(config.nproc, config.hosts)
        self.launch: Launch | None = None
        self.outcome: LaunchOutcome | None = None
        self.run_dir: str | None = None
        self.finished: ev.TrainFinished | None = None
        self.rank0_failure: ev.JobFailed | None = None
        self.lines: deque[str] = deque(maxlen=RANK_LINES_KEPT)
        self.stop_requested = False
        self.killed = False
        self._beats: dict[int, tuple[float, int]] = {}  # rank -> (monotonic time, step)
        self._launch_phase_open = False
        self._launch_started = 0.0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ any thread

    def start(self) -> int:
        self._thread = threading.Thread(target=self._run, name="mlxtui-launched-train", daemon=True)
        self._thread.start()
        return self.job_id

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def stop(self) -> None:
        """Every rank stops at its next step boundary; rank 0 saves first (as Ctrl-C in the CLI)."""
        with self._lock:
            self.stop_requested = True
            launch = self.launch
        if launch is not None:
            launch.request_stop()

    def kill(self) -> None:
        """End every rank now (the last checkpoint rank 0 saved is kept); returns at once."""
        with self._lock:
            self.killed = True
            launch = self.launch
        if launch is not None:
            threading.Thread(target=launch.kill, name="mlxtui-launch-kill", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the run (and its report) ended within `timeout`."""
        return self._done.wait(timeout)

    def shutdown(self, timeout: float) -> bool:
        """Quitting: stop (rank 0 saves), wait up to `timeout`, then end every rank."""
        if not self.running:
            return True
        self.stop()
        if self.wait(timeout):
            return True
        self.kill()
        return self.wait(self.grace_s + 6.0)

    def ranks(self) -> dict[int, tuple[float, int]]:
        """rank -> (seconds since its last heartbeat, its step then)."""
        now = time.monotonic()
        with self._lock:
            return {rank: (now - at, step) for rank, (at, step) in self._beats.items()}

    # ------------------------------------------------------------ the waiter thread

    def _run(self) -> None:
        try:
            self._launch_and_watch()
        except Exception as e:  # noqa: BLE001 - reported as the job's failure, never lost
            self.emit(
                ev.JobFailed(self.job_id, self.kind, f"{type(e).__name__}: {e}", "see the log")
            )
        finally:
            self._done.set()

    def _launch_and_watch(self) -> None:
        config = self.config
        n = self.world_size
        where = f"the hosts of {config.hosts}" if config.hosts else f"{n} processes on this machine"
        self.emit(ev.JobStarted(self.job_id, self.kind, f"launching {where}"))
        try:
            config.validate()
            validate_launch(config.nproc, config.hosts, config.backend)
            if not config.train:
                raise ConfigError(
                    "is off: a test-only run needs no ranks; set nproc to 1 (and no host file)",
                    "train",
                )
            settings = rank_settings(config, Path(self.cwd))
        except ConfigError as e:
            self.emit(
                ev.JobFailed(
                    self.job_id,
                    self.kind,
                    str(e),
                    "fix that setting (flag or YAML key of that name)",
                    error=e,
                )
            )
            return
        cmd = self.command or launch_command(
            [],
            nproc=config.nproc,
            hosts=config.hosts,
            backend=config.backend,
            python=self.python,
            cwd=self.cwd,
            env={CONFIG_ENV: settings, EVENTS_ENV: "1"},
            module="mlxtui.cli.rank",
        )
        self._launch_phase_open = True
        self._launch_started = time.time()
        self.emit(
            ev.PhaseStarted(
                self.job_id, self.kind, "launch", f"starting {where} ({config.backend})"
            )
        )
        with self._lock:
            try:
                self.launch = Launch(
                    cmd,
                    rank_timeout=config.rank_timeout,
                    on_line=self._line,
                    on_heartbeat=self._heartbeat,
                    on_event=self._forward,
                    grace_s=self.grace_s,
                )
            except OSError as e:
                self._close_launch_phase("failed")
                self.emit(
                    ev.JobFailed(
                        self.job_id,
                        self.kind,
                        f"mlx.launch could not start: {e}",
                        "run `mlxtui doctor`",
                    )
                )
                return
            launch, stop_first, kill_first = self.launch, self.stop_requested, self.killed
        if stop_first:
            launch.request_stop()
        if kill_first:
            launch.kill()
        self.outcome = launch.wait()
        self._close_launch_phase("done" if self.outcome.ok else "failed")
        self._report_end(self.outcome)

    def _report_end(self, outcome: LaunchOutcome) -> None:
        if outcome.ok:
            self.emit(ev.JobFinished(self.job_id, self.kind, self.finished))
            return
        said = outcome.message
        if self.killed:
            kept = (
                f"the last checkpoint rank 0 saved is kept in {self.run_dir}"
                if self.run_dir
                else "no run folder had been made"
            )
            said = (
                f"every rank was ended at your request (stop pressed again while stopping); {kept}"
            )
        first = self.rank0_failure
        todo = (
            "continue it from the Runs screen (r, then c): the same ranks are launched again"
            if self.run_dir
            else ""
        )
        if first is not None and first.hint:
            todo = first.hint
        tail = [line for line in self.lines if line.strip()][-6:]
        lines = ("the ranks' last lines:\n" + "\n".join(tail)) if tail else ""
        hint = "\n".join(part for part in (todo, lines) if part)
        if first is None:
            message = said
        else:
            words = first.message.removeprefix("rank 0: ")
            # a rank ended by a signal (kill -9, a crash) or a hang is the cause; rank 0's own
            # error (the data, the memory) is when nothing else went wrong first
            if outcome.timed_out or any(
                how.startswith("was") and not how.endswith("SIGTERM")
                for how in outcome.failed_ranks.values()
            ):
                message = f"{said}\n\nrank 0 reported: {words}"
            else:
                message = f"rank 0: {words}\n\n{said}"
        self.emit(ev.JobFailed(self.job_id, self.kind, message, hint))

    # ------------------------------------------------------------ the watcher's reader thread

    def _line(self, line: str) -> None:
        self.lines.append(line)

    def _heartbeat(self, beat: dict[str, Any]) -> None:
        with self._lock:
            self._beats[int(beat["rank"])] = (time.monotonic(), int(beat.get("step") or 0))

    def _close_launch_phase(self, outcome: str) -> None:
        if self._launch_phase_open:
            self._launch_phase_open = False
            took = time.time() - self._launch_started
            self.emit(
                ev.PhaseFinished(
                    self.job_id, self.kind, "launch", "starting the ranks", took, outcome
                )
            )

    def _forward(self, event: ev.Event) -> None:
        """Rank 0's event, as this job's."""
        if isinstance(event, ev.JobFailed):
            self.rank0_failure = event  # the cause, said when the launch ends
            return
        if isinstance(event, _NOT_FORWARDED):
            return
        self._close_launch_phase("done")  # rank 0 speaks: the ranks have started
        if isinstance(event, ev.TrainStarted):
            self.run_dir = event.run_dir
        elif isinstance(event, ev.TrainFinished):
            self.finished = event
        if any(f.name == "job_id" for f in dataclasses.fields(event)):
            event = dataclasses.replace(event, job_id=self.job_id)  # type: ignore[call-arg]
        self.emit(event)
