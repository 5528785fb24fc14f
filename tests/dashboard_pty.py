"""The real `mlxtui` dashboard in a pseudo-terminal: start it, press keys, signal it, read its run.

Used by tests/test_tui_signals.py (one trial each) and benchmarks/soak.py-style scripts run by
hand for many trials (`python tests/dashboard_pty.py --trials 10`). Linux/macOS only (pty).
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Dashboard:
    """A running dashboard: its pid, the pty's master end and everything it drew so far."""

    pid: int
    master: int
    output: bytearray = field(default_factory=bytearray)
    closed: bool = False

    def read_forever(self) -> None:
        # The terminal must be read, or the app blocks writing its frames.
        while not self.closed:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def state(self) -> str:
        """The process state letter from /proc (R, S, T = stopped, Z …); "" once it is gone."""
        try:
            text = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return ""
        return text.rsplit(")", 1)[1].split()[0]

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status (a negative signal number if killed), None if still running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        return None

    def close_terminal(self) -> None:
        """What closing the SSH session does: the terminal goes away (the kernel sends SIGHUP)."""
        self.closed = True
        os.close(self.master)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def start(
    args: list[str], cwd: Path, env: dict[str, str], size: tuple[int, int] = (120, 40)
) -> Dashboard:
    """`python -m mlxtui ARGS` in a new pty (the child leads its own session, as a login shell's
    job would), in `cwd`."""
    import fcntl
    import struct
    import termios

    pid, master = pty.fork()
    if pid == 0:  # the child
        try:
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "mlxtui", *args], env)
        finally:
            os._exit(127)
    cols, rows = size
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    dashboard = Dashboard(pid, master)
    threading.Thread(target=dashboard.read_forever, daemon=True).start()
    return dashboard


def wait_until(condition, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def run_dirs(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "runs").glob("*") if p.is_dir())


def last_step(run: Path) -> int:
    """The highest iteration metrics.jsonl recorded (0 if none yet)."""
    best = 0
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written
        if isinstance(record.get("iteration"), int):
            best = max(best, record["iteration"])
    return best


def dashboard_args(model: Path, iters: int = 100_000) -> list[str]:
    return [
        "dashboard",
        "--model", str(model),
        "--iters", str(iters),
        "--batch-size", "2",
        "--num-layers", "2",
        "--max-seq-length", "128",
        "--steps-per-report", "1",
        "--steps-per-eval", "100000",
        "--save-every", "100000",
    ]  # fmt: skip


@dataclass
class Trial:
    exit_code: int | None
    stepped_to: int  # the last step seen on disk before the signal
    adapter: Path | None
    suspended: bool | None = None  # Ctrl+Z stopped the process (None: not tried)
    continued: bool | None = None  # ... and SIGCONT woke it up again
    notes: list[str] = field(default_factory=list)


def hangup_trial(
    model: Path, cwd: Path, env: dict[str, str], how: str = "sighup", try_suspend: bool = False
) -> Trial:
    """Start the dashboard on `model`, press t, wait for steps, (Ctrl+Z, SIGCONT,) then hang up:
    `how` = "sighup" (os.kill) or "close" (close the terminal, as SSH does)."""
    dashboard = start(dashboard_args(model), cwd, env)
    try:
        if not wait_until(lambda: b"Config" in dashboard.output, 60):
            return Trial(None, 0, None, notes=["no first frame in 60 s"])
        # the model loads after the first frame; t waits on nothing but is refused before it
        time.sleep(1.0)
        dashboard.press(b"t")
        if not wait_until(lambda: run_dirs(cwd) and last_step(run_dirs(cwd)[-1]) >= 3, 120):
            dashboard.press(b"y")  # a dataset-warnings question, if one was asked
            if not wait_until(lambda: run_dirs(cwd) and last_step(run_dirs(cwd)[-1]) >= 3, 60):
                return Trial(None, 0, None, notes=["no training steps in 180 s"])
        run = run_dirs(cwd)[-1]
        trial = Trial(None, 0, None)
        if try_suspend:
            dashboard.press(b"\x1a")  # Ctrl+Z
            trial.suspended = wait_until(lambda: dashboard.state() == "T", 10, 0.02)
            before = last_step(run)
            time.sleep(1.0)
            frozen = last_step(run) == before  # no step while stopped
            os.kill(dashboard.pid, signal.SIGCONT)  # what `fg` sends
            trial.continued = frozen and wait_until(lambda: last_step(run) > before, 60)
        trial.stepped_to = last_step(run)
        if how == "close":
            dashboard.close_terminal()
        else:
            os.kill(dashboard.pid, signal.SIGHUP)
        trial.exit_code = dashboard.wait_exit(120)
        adapter = run / "adapters" / "adapters.safetensors"
        trial.adapter = adapter if adapter.is_file() else None
        return trial
    finally:
        dashboard.closed = True
        dashboard.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--how", choices=("sighup", "close"), default="sighup")
    parser.add_argument("--suspend", action="store_true", help="Ctrl+Z and SIGCONT first")
    args = parser.parse_args()
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_model import make_tiny_model

    import mlxtui  # noqa: F401  (OpenBLAS before MLX)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_tiny_model(root / "model")
        env = dict(os.environ, MLXTUI_CACHE_DIR=str(root / "cache"), TERM="xterm-256color")
        saved = 0
        for i in range(1, args.trials + 1):
            cwd = root / f"trial{i}"
            cwd.mkdir()
            trial = hangup_trial(model, cwd, env, args.how, args.suspend)
            ok = trial.exit_code == 0 and trial.adapter is not None
            saved += ok
            print(
                f"trial {i}: exit {trial.exit_code}, step {trial.stepped_to} at the signal, "
                f"adapter {'saved' if trial.adapter else 'MISSING'}"
                + (
                    f", suspended {trial.suspended}, continued {trial.continued}"
                    if args.suspend
                    else ""
                )
                + (f" ({'; '.join(trial.notes)})" if trial.notes else ""),
                flush=True,
            )
        print(f"{saved}/{args.trials} trials saved the adapter and exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
