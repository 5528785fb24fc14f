"""The dashboard's cost while training (issue 12): side by side with headless, alternating runs.

    uv run python benchmarks/bench_dashboard.py                    # tiny model, 3 pairs
    uv run python benchmarks/bench_dashboard.py --model demo --pairs 3 --steps 60

Each run is its own process (so peak RSS is its own), the same model, data and settings:
- headless: the engine alone (what `mlxtui train` runs), events to a no-op sink;
- dashboard: the same engine under the full dashboard (`run_test` at 120x40, headless driver).
Tokens/s is measured the same way in both, from the engine's step events (trained tokens
between step `--skip` and the last step over the time between them). Printed: each pair, the
median ratio dashboard/headless (target >= 0.97), the peak RSS of each (ratio).

The dashboard runs under `run_test` but is waited on with `asyncio.sleep`, never
`pilot.pause`: each `pause` posts a callback to every widget on the screen (~400) and forces a
frame, which cost the UI thread more than the dashboard itself (a real terminal has no pilot).

Then, in one more dashboard process: key press to screen update while training at 80x24
(compact: pressing 1 / 2 swaps the visible pane): the time from the key's press to the screen
showing the other pane, p50 and p99 over `--presses` presses (target p99 < 100 ms); and
`mlxtui --help` wall time (median of 5).

    uv run python benchmarks/bench_dashboard.py --profile steps --steps 60   # where the UI's time goes
    uv run python benchmarks/bench_dashboard.py --profile keys --presses 20

`--profile` runs one dashboard process with cProfile on the UI thread only (the engine's
thread is not profiled), from the first step to the end, and prints per step (or per key
press): full-screen layout passes, restyled nodes (`Stylesheet.apply`), the callers that asked
for each (`refresh(layout=True)`, `update_node_styles`), and the functions with the most
cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
# The dashboards started here remember their session like any other (session_memory): in a
# folder of this run's own, never over the user's remembered settings.
os.environ.setdefault("MLXTUI_CONFIG_DIR", tempfile.mkdtemp(prefix="mlxtui-bench-config-"))

import mlxtui  # noqa: E402, F401  (OpenBLAS before MLX)


def bench_config(model: str, runs: Path, steps: int, dequantize: str = "no") -> Any:
    from mlxtui.core.config import TrainConfig

    return TrainConfig.quick_start(
        model=model,
        iters=steps,
        batch_size=2,
        num_layers=2,
        max_seq_length=128,
        steps_per_report=10,
        steps_per_eval=100_000,
        save_every=100_000,
        sample_prompts=0,
        dequantize=dequantize,
        runs_dir=str(runs),
    )


class StepClock:
    """Engine sink: (arrival time, trained tokens) of every step."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, float, int]] = []

    def __call__(self, event: Any) -> None:
        from mlxtui.core import events as ev

        if isinstance(event, ev.TrainStep):
            self.steps.append((event.iteration, time.perf_counter(), event.trained_tokens))

    def tokens_per_second(self, skip: int) -> float:
        window = [s for s in self.steps if s[0] >= skip]
        (_i0, t0, n0), (_i1, t1, n1) = window[0], window[-1]
        return (n1 - n0) / (t1 - t0)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_headless(config: Any, skip: int) -> dict[str, float]:
    from mlxtui.core.engine import Engine, Train

    clock = StepClock()
    engine = Engine(lambda _e: None)
    engine.subscribe(clock)
    engine.start()
    try:
        engine.run_sync(Train(config))
    finally:
        engine.shutdown()
    return {"tokens_per_second": clock.tokens_per_second(skip), "peak_rss": peak_rss()}


def dashboard_app(config: Any, clock: StepClock) -> Any:
    from mlxtui.core.engine import Engine
    from mlxtui.tui.app import MlxtuiApp

    def factory(on_event: Any) -> Engine:
        engine = Engine(on_event)
        engine.subscribe(clock)
        return engine

    return MlxtuiApp(config, engine_factory=factory)


async def start_training(app: Any, pilot: Any) -> None:
    while app.model_info is None:
        await asyncio.sleep(0.05)
    await pilot.press("t")


def run_dashboard(config: Any, skip: int) -> dict[str, float]:
    clock = StepClock()
    ui_cpu: list[float] = []

    async def drive() -> None:
        app = dashboard_app(config, clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await start_training(app, pilot)
            while not any(i >= skip for i, _t, _n in clock.steps):
                await asyncio.sleep(0.01)
            # this coroutine runs on the UI thread (run_test drives the app in this event loop)
            ui_cpu.append(time.thread_time())
            while app.status.state not in ("done", "failed", "stopped"):
                await asyncio.sleep(0.1)
            ui_cpu.append(time.thread_time())

    asyncio.run(drive())
    window = [t for i, t, _n in clock.steps if i >= skip]
    return {
        "tokens_per_second": clock.tokens_per_second(skip),
        "peak_rss": peak_rss(),
        # CPU the UI thread spent per second of training (it holds the GIL the engine needs)
        "ui_cpu_share": (ui_cpu[1] - ui_cpu[0]) / max(window[-1] - window[0], 1e-9),
    }


def screen_text(app: Any) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def run_keys(config: Any, presses: int) -> dict[str, Any]:
    """Key press to screen update while training, in seconds."""
    import gc

    from mlxtui.tui.app import PANES

    clock = StepClock()
    latencies: list[float] = []
    pauses: list[tuple[int, float]] = []  # (generation, seconds) of each garbage collection
    started: list[float] = [0.0]

    def gc_clock(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    async def drive() -> None:
        app = dashboard_app(config, clock)
        async with app.run_test(size=(80, 24)) as pilot:
            await start_training(app, pilot)
            while len(clock.steps) < 3:
                await asyncio.sleep(0.05)
            gc.callbacks.append(gc_clock)
            for i in range(presses):
                key, title = ("2", "2 Loss") if i % 2 == 0 else ("1", "1 Config")
                start = time.perf_counter()
                # posted as the terminal driver posts a key (pilot.press would also wait for
                # the app to go idle, which it never quite does while steps arrive)
                app.simulate_key(key)
                pane = app.query_one(f"#{PANES[int(key) - 1][0]}")
                # laid out on screen (a cheap check, polled; rendering the screen to poll would
                # add its own cost), then the frame that shows it
                while not pane.region.height or f"═ {title} ═" not in screen_text(app):
                    await asyncio.sleep(0.001)
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)
            gc.callbacks.remove(gc_clock)
            if app.status.state not in ("done", "failed"):
                app.engine.stop()
                while app.status.state not in ("done", "failed", "stopped"):
                    await asyncio.sleep(0.1)
            while app.status.busy_training:
                await asyncio.sleep(0.1)

    asyncio.run(drive())
    return {
        "latencies": latencies,
        "steps_during": len(clock.steps),
        "gc_pauses": [(g, s) for g, s in pauses if g > 0],  # generation 0's are short and many
    }


class UiCounters:
    """Counts full layout passes and restyles, and who asked for them (the first caller outside
    Textual), while `recording` is set."""

    def __init__(self) -> None:
        from collections import Counter

        self.recording = False
        self.counts: Counter[str] = Counter()
        self.layout_callers: Counter[str] = Counter()
        self.style_callers: Counter[str] = Counter()
        self.renders: Counter[str] = Counter()  # widgets drawn into frames, by class
        self.render_cpu: Counter[str] = Counter()  # and the CPU seconds that took (profiled)
        self.render_max: Counter[str] = Counter()  # the dearest single draw (a cache rebuilt)

    @staticmethod
    def caller(depth: int = 2) -> str:
        frame = sys._getframe(depth)
        while frame is not None and (
            "/textual/" in frame.f_code.co_filename or "/asyncio/" in frame.f_code.co_filename
        ):
            frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return "textual itself"
        name = Path(frame.f_code.co_filename).name
        return f"{name}:{frame.f_lineno} {frame.f_code.co_name}"

    def install(self) -> None:
        from textual.css.stylesheet import Stylesheet
        from textual.dom import DOMNode
        from textual.screen import Screen
        from textual.widget import Widget

        counters = self
        apply, refresh_layout = Stylesheet.apply, Screen._refresh_layout
        refresh, update_styles = Widget.refresh, DOMNode.update_node_styles
        render_lines = Widget.render_lines

        def counted_render(self: Any, crop: Any) -> Any:
            if not counters.recording:
                return render_lines(self, crop)
            start = time.thread_time()
            try:
                return render_lines(self, crop)
            finally:
                name = type(self).__name__
                took = time.thread_time() - start
                counters.renders[name] += 1
                counters.render_cpu[name] += took
                counters.render_max[name] = max(counters.render_max[name], took)

        def counted_apply(self: Any, node: Any, **kwargs: Any) -> None:
            if counters.recording:
                counters.counts["restyled nodes (Stylesheet.apply)"] += 1
            apply(self, node, **kwargs)

        def counted_layout(self: Any, *args: Any, **kwargs: Any) -> None:
            if counters.recording:
                counters.counts["full layout passes (Screen._refresh_layout)"] += 1
            refresh_layout(self, *args, **kwargs)

        def counted_refresh(self: Any, *regions: Any, **kwargs: Any) -> Any:
            if counters.recording and kwargs.get("layout"):
                counters.layout_callers[f"{type(self).__name__} <- {counters.caller()}"] += 1
            return refresh(self, *regions, **kwargs)

        def counted_styles(self: Any, animate: bool = True) -> None:
            if counters.recording:
                counters.style_callers[f"{type(self).__name__} <- {counters.caller()}"] += 1
            update_styles(self, animate=animate)

        Stylesheet.apply = counted_apply  # type: ignore[method-assign]
        Screen._refresh_layout = counted_layout  # type: ignore[method-assign]
        Widget.refresh = counted_refresh  # type: ignore[method-assign]
        DOMNode.update_node_styles = counted_styles  # type: ignore[method-assign]
        Widget.render_lines = counted_render  # type: ignore[method-assign]

    def report(self, per: int, unit: str) -> None:
        print(f"per {unit} (over {per} {unit}s):")
        for name, n in self.counts.most_common():
            print(f"  {name}: {n / per:.2f}")
        for title, callers in (
            ("refresh(layout=True) by caller", self.layout_callers),
            ("update_node_styles by caller", self.style_callers),
            ("widgets drawn into frames, by class", self.renders),
        ):
            print(f"{title} (per {unit}):")
            for name, n in callers.most_common(12):
                cpu = self.render_cpu.get(name) if callers is self.renders else None
                took = (
                    f"  ({1000 * cpu / per:.2f} ms CPU, profiled; dearest draw "
                    f"{1000 * self.render_max[name]:.2f} ms)"
                    if cpu is not None
                    else ""
                )
                print(f"  {n / per:6.2f}  {name}{took}")


def run_profile(
    config: Any, what: str, presses: int, size: tuple[int, int], dump: str = ""
) -> None:
    """cProfile of the UI thread while training (`what` = steps) or pressing 1/2 (keys)."""
    import cProfile
    import pstats

    from mlxtui.tui.app import PANES

    counters = UiCounters()
    counters.install()
    # CPU time of this thread: waiting for the GIL (the training thread holds it) is not counted
    profile = cProfile.Profile(time.thread_time)
    clock = StepClock()
    done_presses = 0

    async def drive() -> None:
        nonlocal done_presses
        app = dashboard_app(config, clock)
        async with app.run_test(size=size) as pilot:
            await start_training(app, pilot)
            while len(clock.steps) < 3:
                await asyncio.sleep(0.05)
            counters.recording = True
            profile.enable()  # this thread only: the UI's
            if what == "keys":
                for i in range(presses):
                    key = "2" if i % 2 == 0 else "1"
                    app.simulate_key(key)
                    pane = app.query_one(f"#{PANES[int(key) - 1][0]}")
                    while not pane.region.height:
                        await asyncio.sleep(0.001)
                    await asyncio.sleep(0.05)
                    done_presses += 1
                app.engine.stop()
            while app.status.state not in ("done", "failed", "stopped"):
                await asyncio.sleep(0.1)
            profile.disable()
            counters.recording = False

    first = len(clock.steps)
    asyncio.run(drive())
    steps = max(len(clock.steps) - first, 1)
    print(f"profile of the UI thread at {size[0]}x{size[1]}: {steps} steps", flush=True)
    if what == "keys":
        counters.report(max(done_presses, 1), "key press")
    else:
        counters.report(steps, "step")
    stats = pstats.Stats(profile)
    if dump:
        stats.dump_stats(dump)  # for `python -m pstats`
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(20)


def child(args: argparse.Namespace) -> int:
    # the demo model is 4-bit: trained as a user's CPU run trains it (a dequantized copy)
    dequantize = "auto" if args.dequantize else "no"
    config = bench_config(args.model_path, Path(args.runs), args.steps, dequantize)
    if args.profile:
        width, height = (80, 24) if args.profile == "keys" else map(int, args.size.split("x"))
        steps = 100_000 if args.profile == "keys" else args.steps
        config = bench_config(args.model_path, Path(args.runs), steps, dequantize)
        run_profile(config, args.profile, args.presses, (width, height), args.profile_out)
        return 0
    if args.mode == "headless":
        result: dict[str, Any] = run_headless(config, args.skip)
    elif args.mode == "dashboard":
        result = run_dashboard(config, args.skip)
    else:
        keys_config = bench_config(args.model_path, Path(args.runs), 100_000, dequantize)
        result = run_keys(keys_config, args.presses)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def in_child(mode: str, model: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    runs = tempfile.mkdtemp(dir=root)
    command = [
        sys.executable, __file__, "--child", mode, "--model-path", model, "--runs", runs,
        "--steps", str(args.steps), "--skip", str(args.skip), "--presses", str(args.presses),
        *(["--dequantize"] if args.dequantize else []),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]
    raise RuntimeError(f"{mode} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def help_time(runs: int = 5) -> float:
    script = Path(sys.executable).parent / "mlxtui"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "mlxtui"]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def resolve_model(args: argparse.Namespace, root: Path) -> str:
    """The model's folder: the tiny random model (built here), the demo model (converted once,
    then cached: mlxtui.core.models.demo_model_dir) or a path as given."""
    if args.model == "tiny":
        from tiny_model import make_tiny_model

        return str(make_tiny_model(root / "model"))
    if args.model == "demo":
        from mlxtui.core.models import demo_model_dir

        args.dequantize = True
        return str(demo_model_dir())
    return str(args.model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (built here), demo, or a path")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="steps left out at the start")
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--keys-only", action="store_true", help="only the key-press figures")
    parser.add_argument("--child", choices=("headless", "dashboard", "keys"))
    parser.add_argument("--profile", choices=("steps", "keys"), help="cProfile the UI thread")
    parser.add_argument("--size", default="120x40", help="terminal size of --profile steps")
    parser.add_argument("--profile-out", default="", help="also write the profile to this file")
    parser.add_argument("--model-path", default="")
    parser.add_argument("--dequantize", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", default="")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        return child(args)
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            model = resolve_model(args, Path(tmp))
            args.mode, args.model_path, args.runs = "profile", model, tempfile.mkdtemp(dir=tmp)
            print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
            return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = resolve_model(args, root)
        print(
            f"model {args.model}, {args.steps} steps, tokens/s over steps {args.skip}-{args.steps}"
        )
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        ratios, rss_ratios, ui_shares = [], [], []
        for pair in range(1, 0 if args.keys_only else args.pairs + 1):
            # alternate which goes first, so a drift in the machine's load hits both alike
            order = ("headless", "dashboard") if pair % 2 else ("dashboard", "headless")
            got = {mode: in_child(mode, model, root, args) for mode in order}
            h, d = got["headless"], got["dashboard"]
            ratio = d["tokens_per_second"] / h["tokens_per_second"]
            ui_shares.append(d["ui_cpu_share"])
            rss_ratio = d["peak_rss"] / h["peak_rss"]
            ratios.append(ratio)
            rss_ratios.append(rss_ratio)
            print(
                f"pair {pair} ({order[0]} first): headless {h['tokens_per_second']:.0f} tok/s, "
                f"dashboard {d['tokens_per_second']:.0f} tok/s, ratio {ratio:.3f}; peak RSS "
                f"{h['peak_rss'] / 2**20:.0f} vs {d['peak_rss'] / 2**20:.0f} MiB ({rss_ratio:.2f}x); "
                f"UI thread CPU {100 * d['ui_cpu_share']:.1f}% of the training's wall time",
                flush=True,
            )
        if ratios:
            median = statistics.median(ratios)
            print(f"median tokens/s ratio dashboard/headless: {median:.3f} (target >= 0.97)")
            print(f"median peak RSS ratio dashboard/headless: {statistics.median(rss_ratios):.2f}")
            print(f"median UI thread CPU share while training: {100 * statistics.median(ui_shares):.1f}%")
        keys = in_child("keys", model, root, args)
        lat = [1000 * x for x in keys["latencies"]]
        print(
            f"key press to screen while training ({len(lat)} presses, {keys['steps_during']} steps "
            f"meanwhile): p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms, "
            f"max {max(lat):.1f} ms (target p99 < 100 ms)"
        )
        print("  each press in order (ms): " + " ".join(f"{x:.0f}" for x in lat))
        gcs = keys["gc_pauses"]
        print(
            f"  garbage collections of generations 1-2 meanwhile (any thread): {len(gcs)}, "
            + " ".join(f"gen{g} {1000 * s:.0f} ms" for g, s in gcs if g == 2 or s > 0.01)
        )
        print(f"`mlxtui --help`: median {help_time():.3f} s of 5")
        try:
            print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
