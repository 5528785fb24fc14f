"""Advice given before a run was stopped is shown again when it resumes: kept in the resume
state with its words, emitted (marked `earlier`) right after the start, and shown in the
dashboard under the loss plot. tests/test_diagnosis_run.py checks the same on a real run that
overfits; here the dashboard resumes a real tiny-model run from the runs screen."""

from __future__ import annotations

import json
from typing import Any

from run_folders import small_data, train_run
from test_tui_app import wait_for

from mlxtui.core import events as ev
from mlxtui.core.diagnosis import Diagnoser


def _spiked() -> tuple[Diagnoser, ev.Diagnosis]:
    d = Diagnoser(learning_rate=1e-3)
    said = [x for r in (4.3, 4.2, 20.0) for x in d.feed(ev.TrainReport(len(d.reports) + 1, 50, r, 1e-3, 100.0, 1.0, 400, 0.1))]
    assert [x.kind for x in said] == ["spike"]
    return d, said[0]


def test_the_advice_goes_through_the_state_with_its_words():
    d, spike = _spiked()
    back = Diagnoser.restore(json.loads(json.dumps(d.state())), learning_rate=1e-3)
    assert back.earlier() == [ev.Diagnosis(spike.kind, spike.iteration, spike.message, spike.numbers, earlier=True)]
    assert not spike.earlier and back.given == {"spike"}
    assert Diagnoser.restore({"given": ["spike"]}).earlier() == [], "a run saved before: nothing to show"
    assert Diagnoser.restore({"advice": [{"kind": "x"}, 3]}).earlier() == [], "a damaged entry is left out"


async def test_the_dashboard_shows_the_earlier_advice_on_resume(tiny_model_dir, tmp_path):
    from mlxtui.core.config import TrainConfig
    from mlxtui.core.engine import Engine
    from mlxtui.tui.app import MlxtuiApp
    from mlxtui.tui.screens.runs import RunsScreen
    from mlxtui.tui.widgets.lr_preview import LossPane

    data = small_data(tmp_path / "data")
    runs = tmp_path / "runs"
    run = train_run(tiny_model_dir, data, runs, stop_at=3, iters=50, steps_per_eval=100, save_every=100)
    state_file = run / "state" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["status"] == "stopped" and state["iteration"] == 3
    d, spike = _spiked()  # what that run's diagnosis would have said at step 3
    state["diagnosis"] = d.state()
    state_file.write_text(json.dumps(state))

    config = TrainConfig.quick_start(model=str(tiny_model_dir), runs_dir=str(runs), dequantize="no")
    app = MlxtuiApp(config, engine_factory=Engine)
    titles: list[str] = []
    notify = app.notify

    def recording(message: str, *args: Any, **kw: Any) -> None:
        titles.append(str(kw.get("title", "")))
        notify(message, *args, **kw)

    app.notify = recording  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, lambda: app.status.model != "", tries=1500)
        await pilot.press("r")
        assert await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and not app.screen.reading)
        await pilot.press("c")
        pane = app.query_one(LossPane)
        assert await wait_for(pilot, lambda: app.status.iteration > 3, tries=3000), app.status
        assert f"◆ step 3: {spike.message}" in pane.advice_text()
        assert "Advice before the resume: spike" in titles
        await pilot.press("s")
        assert await wait_for(pilot, lambda: app.status.state == "done", tries=3000)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert not [x for x in lines if x["event"] == "diagnosis"], "shown again, never written again"


def test_headless_says_the_earlier_advice_as_given_before_the_resume():
    import io

    from mlxtui.cli.progress import ProgressPrinter

    _d, spike = _spiked()
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer(ev.Diagnosis(spike.kind, spike.iteration, spike.message, spike.numbers, earlier=True))
    printer(spike)
    assert out.getvalue().splitlines() == [
        f"advice given at step 3, before the resume (spike): {spike.message}",
        f"advice (spike): {spike.message}",
    ]
