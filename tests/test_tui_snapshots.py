"""Snapshots of the dashboard at 120x40 and 80x24 (fake engine emitting inline: deterministic).

Regenerate after an intended change with
`uv run pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

from typing import Any

from test_tui_fakes import FakeEngine

from mlxtui.core.config import FORM_FIELDS, TrainConfig
from mlxtui.tui.app import MlxtuiApp

# Spelled out (not quick_start()) so a change of the profile's defaults does not move the pixels.
SNAPSHOT_CONFIG = TrainConfig(
    batch_size=4,
    iters=100,
    learning_rate=2e-4,
    num_layers=8,
    grad_checkpoint=True,
    steps_per_report=5,
    steps_per_eval=25,
    save_every=25,
    val_batches=8,
    max_seq_length=512,
)


# A fixed set of long-standing fields, so adding a field to FORM_FIELDS does not move the pixels
# (the tests in test_tui_app.py build the full form).
SNAPSHOT_FIELDS = (
    "model",
    "data",
    "fine_tune_type",
    "optimizer",
    "batch_size",
    "iters",
    "epochs",
    "learning_rate",
    "num_layers",
    "lora_rank",
    "lora_scale",
    "lora_dropout",
    "grad_checkpoint",
    "mask_prompt",
    "steps_per_report",
    "steps_per_eval",
    "save_every",
    "val_batches",
    "max_seq_length",
    "adapter_path",
    "seed",
    "memory_guard",
)


def make_app() -> MlxtuiApp:
    fields = tuple(spec for spec in FORM_FIELDS if spec.name in SNAPSHOT_FIELDS)
    return MlxtuiApp(
        SNAPSHOT_CONFIG,
        engine_factory=lambda on_event: FakeEngine(on_event, threaded=False),
        form_fields=fields,
    )


async def settled(pilot: Any) -> None:
    """The start-up work that follows the first frame, done: the engine's start (its first
    memory sample) and the training set's index (the iteration hints). Either used to land
    before or after the snapshot, or after a quick `t`, by the machine's load (seen in CI)."""
    from mlxtui.tui.widgets.dataset_browser import DatasetBrowser

    for _ in range(400):
        index = pilot.app.query_one(DatasetBrowser).index
        if "start" in pilot.app.engine.calls and index is not None and index.is_complete:
            break
        await pilot.pause(0.05)
    await pilot.pause(0.2)


async def train(pilot: Any) -> None:
    from mlxtui.tui.widgets.loss_plot import LossPlot

    await settled(pilot)  # then train, in the order of a user's run
    await pilot.press("t")
    await pilot.pause(0.6)  # the plot redraws at most 4 times a second
    for _ in range(100):  # later on a loaded machine: until it has drawn the last points
        if not pilot.app.query_one(LossPlot)._dirty:
            break
        await pilot.pause(0.05)


def test_main_screen_120x40(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=settled)


def test_after_training_120x40(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=train)


def test_main_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=settled)


def test_loss_pane_after_training_80x24(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await train(pilot)
        await pilot.press("2")
        await pilot.pause(0.3)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
