"""The loss curves of several runs overlaid in one PNG or SVG, for a report (matplotlib).

matplotlib is imported here only, on the Agg back-end (no display needed over SSH), so
`mlxtui --help` and the dashboard never pay for it.
"""

from __future__ import annotations

from pathlib import Path

from mlxtui.core.fileio import atomic_write
from mlxtui.core.run_compare import Comparison

FORMATS = (".png", ".svg")


class PlotError(ValueError):
    pass


def write_overlay(comparison: Comparison, out: str | Path, x_axis: str = "steps") -> Path:
    """Write the overlay plot to `out` (.png or .svg, chosen by the suffix); returns the path."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"--plot {out}: the file must end in .png or .svg")
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i % 10}" for i in range(len(comparison.names))]
    color_of = dict(zip(comparison.names, colors, strict=True))
    for s in comparison.series(x_axis):
        train = s.kind == "train"
        ax.plot(
            s.x,
            s.y,
            color=color_of[s.run],
            linestyle="-" if train else "--",
            marker=None if train else "o",
            markersize=3,
            linewidth=1.2 if train else 1.6,
            label=f"{s.run} ({'train' if train else 'validation'})",
        )
    ax.set_xlabel("step" if x_axis == "steps" else "tokens trained")
    ax.set_ylabel("loss")
    ax.set_title("training (solid) and validation (dashed) loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    # svg output carries no date so the same runs give the same file
    metadata = {"Date": None} if suffix == ".svg" else None

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format=suffix[1:], metadata=metadata)

    atomic_write(path, write)
    return path
