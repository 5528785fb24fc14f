"""`mlxtui sweep` headless when a run's loss becomes NaN: nobody is there to continue it, so
that run is skipped (its folder and last good checkpoint kept) and the sweep goes on, instead of
waiting forever on a pause; the lines name Ctrl-C, never the dashboard's keys."""

from __future__ import annotations

import io

from run_folders import small_data

from mlxtui.cli import sweep as sweep_cli
from mlxtui.cli.main import build_parser


def test_a_diverging_run_is_skipped_and_the_sweep_goes_on(tiny_model_dir, tmp_path):
    data = small_data(tmp_path / "data")
    spec = tmp_path / "nan.yaml"
    spec.write_text(
        f"""
base:
  model: {tiny_model_dir}
  data: {data}
  iters: 8
  num_layers: 2
  optimizer: sgd
  save_every: 4
  steps_per_eval: 100
  steps_per_report: 1
  val_batches: 1
  max_seq_length: 256
  sample_prompts: 0
  memory_guard: "off"
runs:
  - lr_phases: "4:1e-3,4:1e12"
  - lr_phases: "4:1e-3,4:1e-3"
""",
        encoding="utf-8",
    )
    args = build_parser().parse_args(["sweep", str(spec), "--no-estimate"])
    out = io.StringIO()
    rc = sweep_cli.run(args, out)
    text = out.getvalue()
    assert "training stopped (a headless run has nobody to continue it)" in text, text[-3000:]
    assert not [k for k in ("press p", "p continues", "Continue rolls back") if k in text]
    from mlxtui.core.sweep import load_sweep, read_state

    state = read_state(load_sweep(str(spec)).sweep_dir)
    assert state is not None
    assert [r.status for r in state.runs] == ["skipped", "done"], [(r.status, r.message) for r in state.runs]
    assert rc == 0
