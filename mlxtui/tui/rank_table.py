"""The ranks of a launched run, one row each: its step, tokens/s, peak memory, last report.

Shown under the loss plot while a run across ranks trains (and after, until the next run).
Tokens/s and peak memory are RankReport's (rank 0 gathers them every report); the step and
"heard" come from each rank's heartbeats, so a rank that falls silent shows it before the
rank timeout ends the run. It renders what it is given; it computes nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from mlxtui.core import events as ev

SILENT_S = 10.0  # a rank reports at least once a second while it works


class RankTable(Static):
    DEFAULT_CSS = """
    RankTable { height: auto; color: $text; }
    """

    def __init__(self, world_size: int | None, backend: str, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.world_size = world_size
        self.backend = backend
        self.report: ev.RankReport | None = None
        self.beats: dict[int, tuple[float, int]] = {}  # rank -> (seconds since heard, step)
        self._rows = -1

    def reset(self, world_size: int | None, backend: str) -> None:
        """A new run: its ranks, no figures yet."""
        self.world_size, self.backend = world_size, backend
        self.report, self.beats = None, {}
        self._show()

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        # the heard column changes every second: a layout pass only when the rows do
        text = self.render_table()
        rows = text.plain.count("\n")
        self.update(text, layout=rows != self._rows)
        self._rows = rows

    def show_report(self, report: ev.RankReport) -> None:
        self.report = report
        if self.world_size is None:
            self.world_size = len(report.tokens_per_second)
        self._show()

    def show_beats(self, beats: dict[int, tuple[float, int]]) -> None:
        self.beats = beats
        self._show()

    def render_table(self) -> Text:
        n = self.world_size
        ranks = range(n) if n else sorted(self.beats)
        figures = f"step {self.report.iteration}" if self.report else "no report yet"
        out = Text(f"{'rank':>4}  {'step':>5}  {'tok/s':>8}  {'peak':>8}  {'heard':>6}", style="bold")
        out.append(f"  {n if n else '?'} ranks, {self.backend} · {figures}", style="dim")
        for rank in ranks:
            tps = mem = None
            if self.report is not None and rank < len(self.report.tokens_per_second):
                tps, mem = self.report.tokens_per_second[rank], self.report.peak_memory[rank]
            heard, step = self.beats.get(rank, (None, None))
            row = (
                f"\n{rank:>4}  {step if step is not None else '-':>5}  "
                f"{f'{tps:,.0f}' if tps is not None else '-':>8}  "
                f"{_gigabytes(mem):>8}  {_ago(heard):>6}"
            )
            late = heard is not None and heard >= SILENT_S
            out.append(row + (" silent" if late else ""), style="bold" if late else "")
        return out

    def plain(self) -> str:
        return self.render_table().plain


def _gigabytes(gb: float | None) -> str:
    """mlx-lm's peak memory (GB) in a unit that shows it: a small model peaks at a few MB."""
    if gb is None:
        return "-"
    return f"{gb:.2f} GB" if gb >= 1 else f"{gb * 1000:.1f} MB"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
