"""Time from starting `mlxtui` in a real terminal to its first dashboard frame on screen.

    uv run python benchmarks/bench_first_frame.py                  # the venv's `mlxtui`, 5 runs
    uv run python benchmarks/bench_first_frame.py --runs 9 --command "uv run mlxtui"

Each run opens a detached tmux session of 120x40 running the command, polls the screen
(`tmux capture-pane -p`) every 10 ms until the Config pane's title is drawn, then kills the
session. The clock starts just before tmux is asked to start the session, so it includes
Python's start, the imports and Textual's first paint: what a person waits for. Prints each
run and the median. Target (issue 9): under 1.5 s.

On Linux it also prints the CPU seconds the dashboard's processes had used by then (user +
system, from /proc): on a busy machine the wall time stretches with the load, the CPU time
much less, and until the first frame the dashboard runs mostly on one thread.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The dashboards started here remember their session like any other (session_memory): in a
# folder of this run's own, never over the user's remembered settings.
os.environ.setdefault("MLXTUI_CONFIG_DIR", tempfile.mkdtemp(prefix="mlxtui-bench-config-"))

MARKER = "Config"  # the first pane's border title: "1 Config"
# tmux on a server of this benchmark's own (`tmux -L`, killed at the end): no other session's
# windows or settings in the way.
TMUX = ["tmux", "-L", f"mlxtui-first-frame-{os.getpid()}"]


def default_command() -> str:
    script = Path(sys.executable).parent / "mlxtui"
    return (
        shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m mlxtui"
    )


def screen(session: str) -> str:
    done = subprocess.run(
        [*TMUX, "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    )
    return done.stdout


def cpu_seconds(root: int) -> float | None:
    """User + system CPU of `root` and its descendants (Linux /proc), None where unreadable."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command name: state ppid ... utime(12) stime(13), counted from state = 0
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    if root not in stats:
        return None
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(child for child, (parent, _cpu) in stats.items() if parent == pid)
    return total


def pane_pid(session: str) -> int | None:
    done = subprocess.run(
        [*TMUX, "list-panes", "-t", session, "-F", "#{pane_pid}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.split()[0]) if done.stdout.strip() else None


def one_run(
    command: str, width: int, height: int, timeout: float, index: int
) -> tuple[float, float | None] | None:
    session = f"mlxtui-first-frame-{os.getpid()}-{index}"
    start = time.perf_counter()
    subprocess.run(
        [*TMUX, "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), command],
        check=True,
    )
    try:
        pid = pane_pid(session)
        while time.perf_counter() - start < timeout:
            if MARKER in screen(session):
                took = time.perf_counter() - start
                return took, cpu_seconds(pid) if pid is not None else None
            time.sleep(0.01)
        print(f"  run {index}: no '{MARKER}' after {timeout:.0f} s; the screen was:")
        print("  " + screen(session).strip().replace("\n", "\n  "))
        return None
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True, check=False)
        time.sleep(0.5)  # let the killed dashboard exit before the next run starts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--command", default=None, help="what to run (default: the venv's mlxtui)")
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is not installed: install it (apt-get install tmux) to run this benchmark")
        return 1
    command = args.command or default_command()
    print(f"first frame of `{command}` at {args.width}x{args.height}, {args.runs} runs")
    times, cpus = [], []
    for i in range(1, args.runs + 1):
        result = one_run(command, args.width, args.height, args.timeout, i)
        if result is not None:
            took, cpu = result
            times.append(took)
            cpu_note = f" ({cpu:.2f} CPU s)" if cpu is not None else ""
            if cpu is not None:
                cpus.append(cpu)
            print(f"  run {i}: {took:.3f} s{cpu_note}")
    subprocess.run([*TMUX, "kill-server"], capture_output=True, check=False)
    if not times:
        print("no run drew the dashboard")
        return 1
    print(f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f})")
    if cpus:
        print(f"median CPU time to the first frame {statistics.median(cpus):.2f} s")
    try:
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
