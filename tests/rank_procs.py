"""Finding a launched rank's training process (Linux /proc), for the kill trials of the
distributed tests and benchmarks/dist_trials.py. Not a test module."""

from __future__ import annotations

from pathlib import Path


def rank_pid(runs: Path, rank: int) -> int | None:
    """The pid of the training process of `rank` whose command names `runs`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(runs).encode() in cmdline and f"MLX_RANK={rank}".encode() in environ and b"mlxtui" in cmdline:
            return int(proc.name)
    return None
