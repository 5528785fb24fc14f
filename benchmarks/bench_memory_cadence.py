"""Memory sample cadence while the real engine loads, trains, validates, answers and fuses.

    uv run python benchmarks/bench_memory_cadence.py
    uv run python benchmarks/bench_memory_cadence.py --iters 4 --interval 1.0 --keep-cache

Runs `mlxtui.core.engine.Engine` on the demo model (converted from its GGUF into a fresh
cache first, unless --keep-cache): a LoadModel job, a Train job (validation at step 0 and at
the end, sample answers after each, the final save) and a Fuse job. Beside it runs a
`Telemetry` attached on its own (not the engine's sampler). Every engine event and every
MemorySampled event is stamped on arrival; the engine's events cut the run into phases
(PhaseStarted/PhaseFinished when the engine emits them, otherwise the markers it has today:
job starts, progress messages, ValReport, SamplePredictions, TrainStep, CheckpointSaved).

Printed per phase: its time, and the largest gap between two consecutive MemorySampled
events that touches it, for the separate Telemetry and for the MemorySampled events the engine
emits itself (today from its own thread, between steps and jobs; once the engine runs
Telemetry, both columns come from the sampler thread). Target: no gap over 1.5 s. Also
printed: the cost of one sample (the probe alone, and Telemetry.sample_now() with a full
history: probe, swap trend, guard, emission).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TARGET_GAP_S = 1.5


@dataclass
class Stream:
    """Events of one source, each with the monotonic time it arrived."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[tuple[float, object]] = field(default_factory=list)

    def __call__(self, event: object) -> None:
        t = time.monotonic()
        with self.lock:
            self.items.append((t, event))

    def snapshot(self) -> list[tuple[float, object]]:
        with self.lock:
            return list(self.items)


@dataclass
class Segment:
    label: str
    start: float
    end: float


def _short(message: str) -> str:
    """A progress message without its paths, so repeated phases group under one label."""
    words = []
    for word in message.split():
        if "/" in word or len(words) >= 5:
            break
        words.append(word)
    return " ".join(words) or message[:30]


def segments_from(engine_events: list[tuple[float, object]]) -> list[Segment]:
    """Cut the run into labelled phases from the engine's own events."""
    from mlxtui.core import events as ev

    phases = [e for _, e in engine_events if isinstance(e, ev.PhaseStarted)]
    if phases:
        out: list[Segment] = []
        open_: dict[tuple[int, str], tuple[float, str]] = {}
        for t, e in engine_events:
            if isinstance(e, ev.PhaseStarted):
                open_[(e.job_id, e.phase)] = (t, e.label)
            elif isinstance(e, ev.PhaseFinished) and (e.job_id, e.phase) in open_:
                start, label = open_.pop((e.job_id, e.phase))
                out.append(Segment(label, start, t))
            elif isinstance(e, ev.JobStarted | ev.JobFinished | ev.JobFailed):
                out.append(Segment(f"{e.kind} job", t, t))
        return _jobs_span(engine_events, out)

    # Markers of today's engine: a segment runs from one marker to the next; the marker that
    # closes it names it when it reports finished work, else the one that opened it does.
    closers: dict[type, str] = {
        ev.ValReport: "validation",
        ev.SamplePredictions: "sample answers",
        ev.TrainStep: "training steps",
        ev.CheckpointSaved: "saving the adapter",
    }
    markers = (
        ev.JobStarted,
        ev.JobProgress,
        ev.JobFinished,
        ev.JobFailed,
        ev.ModelLoaded,
        ev.TrainStarted,
        ev.TrainFinished,
        *closers,
    )
    points = [(t, e) for t, e in engine_events if isinstance(e, markers)]
    out = []
    kind = "?"
    label = "?"
    for (t0, e0), (t1, e1) in zip(points, points[1:], strict=False):
        if isinstance(e0, ev.JobStarted):
            kind = e0.kind
            label = f"{kind}: starting"
        elif isinstance(e0, ev.JobProgress):
            label = f"{kind}: {_short(e0.message)}"
        elif isinstance(e0, ev.ModelLoaded):
            label = f"{kind}: after the model loaded"
        elif isinstance(e0, ev.TrainStarted):
            label = "train: first step"
        elif isinstance(e0, ev.TrainFinished):
            label = "train: finishing"
        elif isinstance(e0, ev.JobFinished | ev.JobFailed):
            label = "between jobs"
        seg_label = closers.get(type(e1), label)
        if isinstance(e0, ev.TrainStep | ev.ValReport | ev.SamplePredictions | ev.CheckpointSaved):
            seg_label = closers.get(type(e1), "train: after the steps")
        out.append(Segment(seg_label, t0, t1))
    return _jobs_span(engine_events, out)


def _jobs_span(engine_events: list[tuple[float, object]], out: list[Segment]) -> list[Segment]:
    """Whole jobs too, so nothing between the phases goes unmeasured."""
    from mlxtui.core import events as ev

    started: dict[int, tuple[float, str]] = {}
    for t, e in engine_events:
        if isinstance(e, ev.JobStarted):
            started[e.job_id] = (t, e.kind)
        elif isinstance(e, ev.JobFinished | ev.JobFailed) and e.job_id in started:
            start, kind = started.pop(e.job_id)
            out.append(Segment(f"= whole {kind} job", start, t))
    return [s for s in out if s.end > s.start]


def largest_gap(times: list[float], seg: Segment) -> float:
    """The longest stretch without a sample that overlaps `seg` (from its start if no sample
    came before it, to its end if none came after)."""
    before = [t for t in times if t <= seg.start]
    inside = [t for t in times if seg.start < t < seg.end]
    after = [t for t in times if t >= seg.end]
    edges = [before[-1] if before else seg.start, *inside, after[0] if after else seg.end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def sample_cost(n: int = 500) -> tuple[float, float]:
    from mlxtui.core.guard import MemoryGuard
    from mlxtui.core.memory import SystemMemoryProbe
    from mlxtui.core.telemetry import Telemetry

    probe = SystemMemoryProbe()
    probe.sample()
    t = time.perf_counter()
    for _ in range(n):
        probe.sample()
    per_probe = (time.perf_counter() - t) / n
    telemetry = Telemetry(lambda e: None, probe=probe)
    telemetry.arm(MemoryGuard("pause"))
    for _ in range(350):  # a full history (300 samples), as after five minutes of running
        telemetry.sample_now()
    t = time.perf_counter()
    for _ in range(n):
        telemetry.sample_now()
    per_sample = (time.perf_counter() - t) / n
    return per_probe, per_sample


def main() -> None:
    from mlxtui.core.blas import maybe_reexec_with_openblas

    maybe_reexec_with_openblas(sys.argv)  # Linux CPU: measure with OpenBLAS, as mlxtui runs
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--val-batches", type=int, default=2)
    ap.add_argument("--sample-prompts", type=int, default=1)
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--interval", type=float, default=1.0, help="Telemetry interval in seconds")
    ap.add_argument(
        "--keep-cache", action="store_true", help="use the user's model cache (no conversion)"
    )
    ap.add_argument("--events", action="store_true", help="also print the engine's events")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if not args.keep_cache:
            os.environ["MLXTUI_CACHE_DIR"] = str(Path(tmp) / "cache")
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    import mlx.core as mx

    from mlxtui import TrainConfig
    from mlxtui.core import events as ev
    from mlxtui.core.blas import blas_status
    from mlxtui.core.engine import Engine, Fuse, LoadModel, Train
    from mlxtui.core.telemetry import Telemetry

    print(
        f"device {mx.default_device()}  blas {blas_status().kind}  cores {os.cpu_count()}",
        flush=True,
    )
    per_probe, per_sample = sample_cost()
    print(
        f"one sample: probe {per_probe * 1e6:.0f} µs; Telemetry.sample_now() with a full "
        f"history, guard armed {per_sample * 1e6:.0f} µs",
        flush=True,
    )

    engine_stream, telemetry_stream = Stream(), Stream()
    engine = Engine(engine_stream)
    telemetry = Telemetry(telemetry_stream, interval=args.interval)
    config = TrainConfig.quick_start(
        iters=args.iters,
        batch_size=args.batch_size,
        num_layers=args.layers,
        val_batches=args.val_batches,
        sample_prompts=args.sample_prompts,
        max_seq_length=args.max_seq_length,
        steps_per_eval=args.iters,
        save_every=10**6,
        runs_dir=str(tmp / "runs"),
        adapter_path=str(tmp / "adapters"),
    )
    t0 = time.monotonic()
    telemetry.start()
    engine.start()
    try:
        for job in (
            LoadModel(spec=None),
            Train(config=config),
            Fuse(save_path=str(tmp / "fused"), force=True),
        ):
            tic = time.monotonic()
            engine.run_sync(job, timeout=3600)
            print(f"{job.kind} job: {time.monotonic() - tic:.1f} s", flush=True)
    finally:
        end = time.monotonic()
        telemetry.stop()
        engine.shutdown()

    engine_events = engine_stream.snapshot()
    if args.events:
        for t, e in engine_events:
            if not isinstance(e, ev.MemorySampled | ev.GenerationToken):
                print(f"  {t - t0:7.2f}  {type(e).__name__} {str(e)[:110]}")
    ours = [t for t, e in telemetry_stream.snapshot() if isinstance(e, ev.MemorySampled)]
    theirs = [t for t, e in engine_events if isinstance(e, ev.MemorySampled)]
    segments = segments_from(engine_events)

    by_label: dict[str, list[Segment]] = {}
    for seg in segments:
        by_label.setdefault(seg.label, []).append(seg)
    print(
        f"\n{len(ours)} samples from the separate Telemetry ({args.interval:g} s interval), "
        f"{len(theirs)} MemorySampled from the engine, over {end - t0:.1f} s"
    )
    print(f"{'phase':44} {'n':>3} {'time s':>8} {'gap: telemetry':>15} {'engine':>8}")
    worst = 0.0
    for label, segs in by_label.items():
        total = sum(s.end - s.start for s in segs)
        gap_ours = max(largest_gap(ours, s) for s in segs)
        gap_engine = max(largest_gap(theirs, s) for s in segs)
        worst = max(worst, gap_ours)
        flag = "" if gap_ours <= TARGET_GAP_S else "  over target"
        print(
            f"{label[:44]:44} {len(segs):3d} {total:8.2f} {gap_ours:15.2f} {gap_engine:8.2f}{flag}"
        )
    whole = Segment("whole run", t0, end)
    print(
        f"{'whole run':44} {'':3} {end - t0:8.2f} {largest_gap(ours, whole):15.2f} "
        f"{largest_gap(theirs, whole):8.2f}"
    )
    verdict = "met" if worst <= TARGET_GAP_S else "MISSED"
    print(f"target: no gap over {TARGET_GAP_S} s in any phase (separate Telemetry): {verdict}")


if __name__ == "__main__":
    main()
