"""Training across processes and machines with MLX's own distributed engine.

mlxtui invents no engine of its own: `mlx.launch` starts the same command on every rank
(several processes on this machine, or the hosts of its host file), `mx.distributed` joins
them (ring, MPI, NCCL), and mlx-lm's `train()` averages the gradients. What is ours:

- the world a process is in (`current_world`), read once when training starts;
- the policy that only rank 0 writes (run folder, adapters, metrics, the user's adapter
  folder); the other ranks compute and write nothing;
- collective decisions, so every rank stops at the same step (`any_rank`), and the per-rank
  figures rank 0 reports (`gather_floats`);
- the launch command (`launch_command`) and a watcher around `mlx.launch` (`Launch`):
  mlx.launch exits 0 even when a rank died, and a rank that hangs (a host that vanished,
  a stopped process) holds the others inside a collective forever, so the watcher reads
  each rank's heartbeat lines, names the rank that failed, and ends the rest after
  `rank_timeout` seconds without a heartbeat from any rank.

Nothing here prints: the watcher hands lines to callbacks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKENDS = ("any", "ring", "mpi", "nccl")
# mlx.launch exports MLX_RANK to every process it starts: its presence means "I am a rank".
RANK_ENV = "MLX_RANK"
# The backend the launcher was asked for, passed on so each rank joins it strictly.
BACKEND_ENV = "MLXTUI_DIST_BACKEND"
# Set by the watcher: ranks print heartbeat lines for it.
HEARTBEAT_ENV = "MLXTUI_HEARTBEAT"
HEARTBEAT_PREFIX = "@mlxtui-rank "
# Set by a launching dashboard: rank 0 prints every engine event as a line (core/event_wire.py)
EVENTS_ENV = "MLXTUI_EVENTS"
EVENT_PREFIX = "@mlxtui-event "
# A launching dashboard's settings (JSON of config.yaml's keys), for every rank: mlx.launch
# passes --env values to each host, over SSH too, where a file of this machine is not.
CONFIG_ENV = "MLXTUI_LAUNCH_CONFIG"
# mlx.launch's own words when a rank ends badly (mlx/_distributed_utils/launch.py).
_NODE_FAILED = re.compile(r"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")


class DistributedError(RuntimeError):
    """The distributed world could not be joined or a rank failed: what happened and what to do."""


# ---------------------------------------------------------------- the world of this process


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; a plain run is rank 0 of 1."""

    rank: int = 0
    size: int = 1
    group: Any = None  # the mx.distributed.Group, None when alone

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes: run folder, adapters, metrics, the user's adapter folder."""
        return self.rank == 0


def launched() -> bool:
    """Whether mlx.launch (or mpirun) started this process as one rank of several."""
    return RANK_ENV in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ


def current_world() -> World:
    """Join the distributed group when launched; a single process otherwise.

    Strict when launched: a rank that silently fell back to a world of one would train
    alone and write the run folder as if it were rank 0.
    """
    if not launched():
        return World()
    import mlx.core as mx

    backend = os.environ.get(BACKEND_ENV, "any")
    try:
        group = mx.distributed.init(strict=True, backend=backend)
    except RuntimeError as e:
        raise DistributedError(
            f"this process was launched as rank {os.environ.get(RANK_ENV, '?')} but could not join "
            f"the {backend} back-end: {e}; check the host file and that every host can reach the others"
        ) from None
    return World(group.rank(), group.size(), group)


def gpu_collectives() -> bool:
    """Whether this process's collectives go through NCCL, which runs on a GPU stream.

    MLX's streams belong to the thread that made them (0.32: "There is no Stream(gpu, 1) in
    current thread"). A reduction put on the CPU stream runs on that stream's worker thread,
    where an NCCL group finds no GPU stream of its own; ring and MPI reduce on the CPU.
    """
    if not launched():
        return False
    import mlx.core as mx

    backend = os.environ.get(BACKEND_ENV, "any")
    return backend == "nccl" or (backend == "any" and mx.cuda.is_available())


def collective_stream() -> Any:
    """The stream for a small reduction (a flag, a loss): the CPU, or under NCCL this thread's
    GPU stream."""
    import mlx.core as mx

    return mx.default_stream(mx.gpu) if gpu_collectives() else mx.cpu


@contextmanager
def reductions_on_this_thread() -> Iterator[None]:
    """While training under NCCL, mlx-lm's own `all_sum(..., stream=mx.cpu)` (its loss
    reports) runs on this thread's GPU stream instead (see `gpu_collectives`)."""
    if not gpu_collectives():
        yield
        return
    import mlx.core as mx

    original = mx.distributed.all_sum

    def all_sum(x: Any, *args: Any, **kwargs: Any) -> Any:
        stream = kwargs.get("stream")
        # mlx-lm passes `mx.cpu` (a DeviceType); a Device or Stream on the CPU means the same
        on = getattr(getattr(stream, "device", stream), "type", stream)
        if stream is not None and on == mx.cpu:
            kwargs["stream"] = mx.default_stream(mx.gpu)
        return original(x, *args, **kwargs)

    mx.distributed.all_sum = all_sum
    try:
        yield
    finally:
        mx.distributed.all_sum = original


def any_rank(world: World, flag: bool) -> bool:
    """True on every rank when `flag` is True on any: a decision all ranks take together.

    A collective: every rank must call it at the same point of the loop.
    """
    if not world.distributed:
        return flag
    import mlx.core as mx
    import numpy as np

    total = mx.distributed.all_sum(
        mx.array(1.0 if flag else 0.0), group=world.group, stream=collective_stream()
    )
    return bool(np.array(total) > 0)


def gather_floats(world: World, values: list[float]) -> list[list[float]]:
    """Every rank's `values`, by rank (a collective, like `any_rank`)."""
    if not world.distributed:
        return [list(values)]
    import mlx.core as mx
    import numpy as np

    rows = mx.distributed.all_gather(
        mx.array([values], dtype=mx.float32), group=world.group, stream=collective_stream()
    )
    table = np.array(rows, dtype=np.float64)
    return [[float(x) for x in row] for row in table]


def rank_failure_text(error: BaseException, world: World) -> str | None:
    """A clear sentence when `error` is the back-end saying a peer went away, else None."""
    text = str(error)
    if not world.distributed:
        return None
    if any(word in text for word in ("[ring]", "[mpi]", "[nccl]", "NCCL", "peer")):
        return (
            f"rank {world.rank}: another rank stopped answering ({text.strip()}); "
            "every rank stops, and the last checkpoint rank 0 saved is kept"
        )
    return None


# ---------------------------------------------------------------- launching


def validate_launch(nproc: int, hosts: str | None, backend: str) -> None:
    """Refuse a launch that mlx.launch would refuse or misread, naming the setting."""
    from mlxtui.core.config import ConfigError

    if backend not in BACKENDS:
        raise ConfigError(f"must be one of {', '.join(BACKENDS)}", "backend")
    if nproc < 1:
        raise ConfigError("must be at least 1", "nproc")
    if hosts and nproc > 1:
        raise ConfigError(
            "and a host file both say how many processes run; give one of them (a host file "
            "lists every process: repeat a host to run several on it)",
            "nproc",
        )
    if hosts:
        path = Path(hosts)
        if not path.is_file():
            raise ConfigError(f"{hosts} does not exist; write mlx.launch's JSON host file there", "hosts")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{hosts} is not a JSON host file ({e})", "hosts") from None
        listed = data.get("hosts") if isinstance(data, dict) else data
        if not isinstance(listed, list) or not listed or not all(
            isinstance(h, dict) and "ssh" in h for h in listed
        ):
            raise ConfigError(
                f'{hosts}: expected a list of hosts like [{{"ssh": "mac1", "ips": ["10.0.0.1"]}}, ...] '
                '(or {"hosts": [...]}), as mlx.launch reads it',
                "hosts",
            )


def world_size_of(nproc: int, hosts: str | None) -> int | None:
    """How many ranks a launch would start: nproc, or the hosts listed (None: unreadable file)."""
    if not hosts:
        return nproc
    try:
        data = json.loads(Path(hosts).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    listed = data.get("hosts") if isinstance(data, dict) else data
    return len(listed) if isinstance(listed, list) and listed else None


def wants_launch(nproc: int, hosts: str | None) -> bool:
    """Whether a train command should start ranks through mlx.launch (it is not one itself)."""
    return (nproc > 1 or bool(hosts)) and not launched()


def launch_command(
    argv: list[str],
    *,
    nproc: int,
    hosts: str | None,
    backend: str,
    python: str | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    module: str = "mlxtui",
) -> list[str]:
    """The mlx.launch command that runs `python -m <module> <argv>` on every rank, with `env`
    set there too."""
    python = python or sys.executable
    script = Path(python).parent / "mlx.launch"
    launcher = (
        [str(script)]
        if script.is_file()
        else [python, "-c", "from mlx._distributed_utils.launch import main; main()"]
    )
    cmd = list(launcher)
    if hosts:
        cmd += ["--hostfile", str(hosts)]
    else:
        cmd += ["--hosts", "127.0.0.1", "-n", str(nproc)]
    if backend != "any":
        cmd += ["--backend", backend]
    cmd += ["--cwd", cwd or os.getcwd()]
    cmd += ["--env", f"{BACKEND_ENV}={backend}", "--env", f"{HEARTBEAT_ENV}=1"]
    for key, value in (env or {}).items():
        cmd += ["--env", f"{key}={value}"]
    return [*cmd, "--", python, "-m", module, *argv]


# ---------------------------------------------------------------- heartbeats


def heartbeat_line(rank: int, **fields: Any) -> str:
    """The line a rank prints so the watcher knows it is alive (and what it last did)."""
    return HEARTBEAT_PREFIX + json.dumps({"rank": rank, "time": time.time(), **fields}, default=str)


def parse_heartbeat(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith(HEARTBEAT_PREFIX):
        return None
    try:
        data = json.loads(text[len(HEARTBEAT_PREFIX) :])
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("rank"), int) else None


# ---------------------------------------------------------------- watching a launch


@dataclass
class LaunchOutcome:
    """How a launched run ended: `ok` only when every rank ended with status 0."""

    returncode: int
    failed_ranks: dict[int, str] = field(default_factory=dict)  # rank -> "exit code 1", "killed"
    # rank -> its exit status as mlx.launch reported it (None: mlx.launch killed it), failed ranks only
    exit_codes: dict[int, int | None] = field(default_factory=dict)
    timed_out: bool = False
    # seconds the ranks were given after one failed before the watcher ended them (0: not needed)
    ended_after_failure: float = 0.0
    last_heartbeat: dict[int, dict[str, Any]] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failed_ranks and not self.timed_out


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _describe(code: str | None) -> str:
    if code is None:
        return "was killed"
    n = int(code)
    if n == 255:  # ssh's own code: it could not reach or log in to the host
        return "exited with code 255 (ssh could not reach its host: check the host file and `ssh HOST` by hand)"
    return f"was ended by {_signal_name(n)}" if n < 0 else f"exited with code {n}"


STOP_LINE = "stop"  # written to mlx.launch's stdin, which it copies to every rank's
# Before the first step a rank may be silent for long (loading a large model, tokenizing):
# until a rank has reported a step the allowed silence is at least this.
STARTUP_TIMEOUT_S = 600.0
# After mlx.launch has reported a rank that failed, the others get this long to end (rank 0
# may be writing its last checkpoint); one still waiting inside a collective for the dead
# peer, or acting on mlx.launch's SIGTERM as a stop that needs that peer, is then ended.
AFTER_FAILURE_S = 30.0
_STEP_EVENTS = ("TrainStep", "TrainReport", "RankReport")


class Launch:
    """`cmd` (mlx.launch) running: its output lines passed on, its ranks judged at the end.

    A stop goes to every rank through mlx.launch's stdin (it copies its input to each rank,
    over SSH too; a signal would reach only this machine), and each rank stops at the next
    step boundary after rank 0 has saved. Ranks that send no heartbeat for `rank_timeout`
    seconds (0 = never; at least `startup_timeout` before the first step) are taken to hang:
    the launch's process group gets SIGTERM, then SIGKILL after `grace_s`. So is a launch
    whose ranks are still there `after_failure_s` seconds after mlx.launch reported one failed.
    """

    def __init__(
        self,
        cmd: list[str],
        *,
        rank_timeout: float,
        on_line: Callable[[str], None],
        on_heartbeat: Callable[[dict[str, Any]], None] | None = None,
        on_event: Callable[[Any], None] | None = None,
        env: dict[str, str] | None = None,
        grace_s: float = 10.0,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        after_failure_s: float = AFTER_FAILURE_S,
    ) -> None:
        self.rank_timeout = rank_timeout
        self.startup_timeout = startup_timeout
        self.stepping = False  # a rank has reported a training step
        self.grace_s = grace_s
        self.after_failure_s = after_failure_s
        self._failed_at: float | None = None  # when mlx.launch first reported a failed rank
        self.on_line = on_line
        self.on_heartbeat = on_heartbeat
        self.on_event = on_event  # rank 0's engine events (EVENTS_ENV), rebuilt
        self.outcome = LaunchOutcome(returncode=0)
        self._last_seen = time.monotonic()
        self._lock = threading.Lock()
        # stdin stays an open pipe: at end of file mlx.launch's select() loop would spin
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # one process group (launcher and local ranks), out of the terminal's
        )
        self._reader = threading.Thread(target=self._read, name="mlxtui-launch-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            beat = parse_heartbeat(line)
            if beat is not None:
                with self._lock:  # only a heartbeat says a rank's work moved
                    self._last_seen = time.monotonic()
                    self.stepping = self.stepping or beat.get("event") in _STEP_EVENTS
                    self.outcome.last_heartbeat[beat["rank"]] = beat
            if beat is not None:
                if self.on_heartbeat is not None:
                    self.on_heartbeat(beat)
                continue
            if self.on_event is not None and line.startswith(EVENT_PREFIX):
                from mlxtui.core.event_wire import decode

                event = decode(line[len(EVENT_PREFIX) :])
                if event is not None:
                    self.on_event(event)
                    continue
            failed = _NODE_FAILED.search(line)
            if failed:
                with self._lock:
                    rank, code = int(failed.group(1)), failed.group(2)
                    self.outcome.failed_ranks[rank] = _describe(code)
                    self.outcome.exit_codes[rank] = None if code is None else int(code)
                    if self._failed_at is None:
                        self._failed_at = time.monotonic()
            self.on_line(line)

    def request_stop(self) -> None:
        """Ask every rank to stop at the next step boundary (rank 0 saves first)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((STOP_LINE + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def kill(self) -> None:
        _end_group(self.proc, self.grace_s)

    def wait(self) -> LaunchOutcome:
        while self.proc.poll() is None:
            time.sleep(0.2)
            with self._lock:
                silent = time.monotonic() - self._last_seen
                limit = self.rank_timeout if self.stepping else max(self.rank_timeout, self.startup_timeout)
            if self.rank_timeout > 0 and silent > limit:
                self.outcome.timed_out = True
                self.kill()
                break
            with self._lock:
                lingering = self._failed_at is not None and time.monotonic() - self._failed_at > self.after_failure_s
            if lingering:
                self.outcome.ended_after_failure = self.after_failure_s
                self.kill()
                break
        self.proc.wait()
        self._reader.join(timeout=5.0)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.outcome.returncode = self.proc.returncode or 0
        self.outcome.message = _outcome_message(self.outcome, self.rank_timeout)
        return self.outcome


def _end_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM to the launch's process group, then SIGKILL to whatever is left after `grace_s`.

    mlx.launch itself dies at once on SIGTERM; a rank waiting inside a collective cannot act
    on it (and a stopped one does not run), so the wait is for the whole group, not the
    launcher.
    """
    pgid = proc.pid  # start_new_session: the launcher leads its own group
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap the launcher, or it stays in the group as a zombie
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _outcome_message(outcome: LaunchOutcome, rank_timeout: float) -> str:
    run_dir = outcome.last_heartbeat.get(0, {}).get("run_dir")
    if run_dir:
        kept = (
            f"The last checkpoint rank 0 saved is kept in {run_dir} (resume with the same number "
            f"of ranks: mlxtui train --resume {run_dir} ...)"
        )
    else:
        kept = "It ended before training started (no run folder): the ranks' messages above say why"
    if outcome.timed_out:
        return (
            f"no rank reported for {rank_timeout:g} s (or {STARTUP_TIMEOUT_S:g} s before the first step) "
            f"(a host that cannot be reached, or a rank that hangs): every rank was stopped. {kept}"
        )
    if outcome.failed_ranks:
        # The cause first: a rank ended by a signal (kill -9, a crash), then a failed exit
        # (often a rank that lost its peer), then the ranks mlx.launch terminated after them.
        def weight(rank: int) -> tuple[int, int]:
            how = outcome.failed_ranks[rank]
            return (2 if how.endswith("SIGTERM") else 0 if how.startswith("was") else 1, rank)

        ranks = sorted(outcome.failed_ranks, key=weight)
        said = "; ".join(f"rank {r} {outcome.failed_ranks[r]}" for r in ranks)
        if outcome.ended_after_failure:
            return (
                f"{said}; the other ranks had not ended {outcome.ended_after_failure:g} s later "
                f"(waiting for the lost rank) and were ended. {kept}"
            )
        return f"{said}; mlx.launch stopped the other ranks. {kept}"
    if outcome.returncode != 0:
        return f"mlx.launch exited with code {outcome.returncode}"
    return ""
