"""`mlxtui sweep FILE.yaml`: train every run of a sweep file, one after another, headless.

Two progress bars: the sweep's (runs done of all) in front of the current run's (steps,
loss, tokens/s, ETA) on one updating line of a TTY; plain lines elsewhere. The queue lives in
the sweep folder (sweep.json): Ctrl-C stops the running run after its step (saved), and the
same command continues the sweep later, as it does after a crash or kill -9 (the interrupted
run resumes from its last checkpoint). At the end, and with --summary at any time, the
results table (Markdown, best validation loss first) and best.yaml (the best run's config,
for `mlxtui train --config`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from mlxtui.cli.progress import ProgressPrinter


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="train the runs of a sweep file (a grid or list of overrides) one after another",
        description="Train every run of a sweep file, one at a time, with a progress bar for the sweep "
        "and one for the run. Run the same command again to continue a stopped or killed sweep "
        "(the interrupted run resumes exactly from its last checkpoint). The file format is in the README.",
    )
    p.add_argument("file", metavar="FILE.yaml", help="the sweep file: base, grid and/or runs")
    p.add_argument("--summary", action="store_true", help="print the results table of the sweep so far and write best.yaml; train nothing")
    p.add_argument("--sweep-dir", default=None, help="the sweep's folder (default: the file's sweep_dir, else sweeps/<name>)")
    p.add_argument("--skip-unfit", action="store_true", help="skip the runs the memory estimate says will not fit (they are flagged either way)")
    p.add_argument("--no-estimate", action="store_true", help="do not estimate each run's memory before the sweep starts")
    p.set_defaults(func=run)
    return p


class SweepPrinter(ProgressPrinter):
    """The train printer, with the sweep's bar in front of the run's and a line per run."""

    def __init__(self, out: TextIO, total: int, tty: bool | None = None) -> None:
        super().__init__(out, tty)
        self.runs_total = total
        self.runs_done = 0
        self.position = 0
        self.label = ""

    def sweep_changed(self, state: Any) -> None:
        from mlxtui.core.sweep import DONE, FAILED, RUNNING, SKIPPED

        with self._lock:
            ended = sum(r.status in (DONE, FAILED, SKIPPED) for r in state.runs)
            running = next((r for r in state.runs if r.label == state.current), None)
            if running is not None and running.label != self.label:
                self.label = running.label
                self.position = ended + 1
                resumed = f", resuming from step {running.resumed_from[-1]}" if running.resumed_from and running.attempts > 1 else ""
                self._line(f"{self._sweep_bar(ended)} run {self.position}/{self.runs_total}: {running.label}{resumed}")
            elif running is None and self.label:
                done = next((r for r in state.runs if r.label == self.label), None)
                if done is not None and done.status != RUNNING:
                    note = f" ({done.message})" if done.message else ""
                    self._line(f"{self._sweep_bar(ended)} {done.label}: {done.status}{note}")
                    self.label = ""
            self.runs_done = ended

    def _sweep_bar(self, done: int, width: int = 12) -> str:
        filled = int(width * done / max(1, self.runs_total))
        return f"sweep [{'#' * filled}{'.' * (width - filled)}] {done}/{self.runs_total}"

    def _draw(self, text: str) -> None:
        prefix = f"sweep {self.runs_done}/{self.runs_total} · run {self.position} " if self.label else ""
        super()._draw(prefix + text)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from mlxtui.cli.errors import config_error_text
    from mlxtui.core.config import ConfigError
    from mlxtui.core.sweep import DONE, FAILED, SKIPPED, SweepError, load_sweep, read_state

    try:
        sweep = load_sweep(args.file, args.sweep_dir)
        if args.summary:
            state = read_state(sweep.sweep_dir)
            if state is None:
                print(f"mlxtui sweep: {sweep.sweep_dir} has no sweep.json: nothing has run yet "
                      f"(start it with `mlxtui sweep {args.file}`)", file=sys.stderr)
                return 2
            _summary(sweep.sweep_dir, state, out)
            return 0
        from mlxtui.core.engine import Engine
        from mlxtui.core.pause_words import HEADLESS_STOPS
        from mlxtui.core.sweep_runner import SweepRunner

        printer = SweepPrinter(out, len(sweep.runs))
        box: dict[str, Any] = {}

        def on_event(event: Any) -> None:
            printer(event)
            # Nobody is here to continue a NaN or a peak past memory_limit (the printer says the
            # run stops): that run is skipped, keeping its folder, and the sweep goes on.
            if getattr(event, "reason", None) in HEADLESS_STOPS and "runner" in box:
                current = box["runner"].current
                if current is not None:
                    box["runner"].skip(current.label)

        engine = Engine(on_event)
        runner = box["runner"] = SweepRunner(sweep, engine, on_change=printer.sweep_changed)
    except (SweepError, ConfigError) as e:
        print(f"mlxtui sweep: {config_error_text(e) if not isinstance(e, SweepError) else e}", file=sys.stderr)
        return 2
    counts = runner.state.counts()
    left = counts["pending"] + counts["running"] + counts["stopped"]
    print(f"sweep {sweep.name}: {len(sweep.runs)} runs, {left} to train; folder {sweep.sweep_dir}", file=out)
    if not left:
        runner.close()
        _summary(sweep.sweep_dir, runner.state, out)
        return 0
    from mlxtui.cli.signals import StopSignals

    def stop_the_sweep(signum: int) -> None:
        print(f"\nstopping the sweep: the run saves after its step; continue with: mlxtui sweep {args.file}",
              file=sys.stderr)
        runner.stop()

    def end_now(signum: int) -> None:
        print("\nsecond Ctrl-C: exiting now (the run resumes from its last checkpoint)", file=sys.stderr)
        os._exit(130)

    with StopSignals(stop_the_sweep, end_now):
        engine.start()
        try:
            if not args.no_estimate:
                flagged = runner.preflight()
                _say_flagged(flagged, args.skip_unfit, out)
                if args.skip_unfit:
                    runner.skip_flagged()
            state = runner.run()
        finally:
            engine.shutdown()
            runner.close()
            printer.close()
    _summary(sweep.sweep_dir, state, out)
    if runner.stopping:
        print(f"stopped; continue with: mlxtui sweep {args.file}", file=out)
        return 130
    if any(r.status == FAILED for r in state.runs):
        return 1
    return 0 if all(r.status in (DONE, SKIPPED) for r in state.runs) else 1


def _say_flagged(flagged: list[Any], skip: bool, out: TextIO) -> None:
    from mlxtui.core.memory import format_bytes

    for r in flagged:
        what = "skipped (--skip-unfit)" if skip else "it runs anyway; --skip-unfit skips such runs"
        print(f"warning: {r.label}: the memory estimate ({format_bytes(r.estimate_bytes or 0)} peak) will not fit; {what}",
              file=out)


def _summary(sweep_dir: Any, state: Any, out: TextIO) -> None:
    from mlxtui.core.sweep_summary import write_outputs

    table, best_path, best = write_outputs(sweep_dir, state)
    print(file=out)
    print(table, end="", file=out)
    if best is not None and best_path is not None:
        print(f"\nbest: {best.label} (best val loss {best.best_val_loss:.4f}); its config: {best_path}", file=out)
        print(f"train it again: mlxtui train --config {best_path}", file=out)
