"""The evaluate, export and runs screens, driven by Pilot with the fake engine."""

from __future__ import annotations

from pathlib import Path

from test_tui_chat import make_app, make_run, wait_for
from textual.widgets import Button, DataTable, Input, Switch

from mlxtui.core.engine import Benchmark, Evaluate, ExportGGUF, Fuse, Train
from mlxtui.tui.screens.evaluate import EvaluateScreen
from mlxtui.tui.screens.export import ExportScreen
from mlxtui.tui.screens.modals import ErrorModal, HelpScreen
from mlxtui.tui.screens.runs import RunsScreen
from mlxtui.tui.widgets.chat import ChatPane
from mlxtui.tui.widgets.status_line import StatusLine


def text_of(screen: object, selector: str) -> str:
    return str(screen.query_one(selector).render())  # type: ignore[attr-defined]


async def test_evaluate_screen_runs_jobs_and_shows_results(tmp_path: Path) -> None:
    app, box = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        await pilot.press("question_mark")
        help_text = text_of(app.screen, "#help-keys")
        for key in ("evaluate", "export", "runs", "sample answers", "ctrl+l", "ctrl+y"):
            assert key in help_text
        await pilot.press("escape")

        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        screen.query_one("#eval-n", Input).value = "7"
        engine.eval_gate.clear()  # hold it after the first batch of the test loss
        await pilot.press("v")
        # The job's phase reaches the screen that asked for it, and the status line.
        assert await wait_for(pilot, lambda: "test loss 1/2" in text_of(screen, "#eval-progress"))
        assert "test loss 1/2" in str(app.query_one(StatusLine).render())
        engine.eval_gate.set()
        assert await wait_for(pilot, lambda: screen.result is not None)
        job = engine.jobs[-1]
        assert isinstance(job, Evaluate)
        assert (job.n, job.max_tokens, job.data) == (7, 128, app.form_config().data)
        losses = text_of(screen, "#eval-losses")
        assert "base: loss 2.500  ppl 12.18" in losses and "adapter: loss 1.250  ppl 3.49" in losses
        means = text_of(screen, "#eval-means")
        assert "base 0.125" in means and "adapter 0.900" in means and "+0.775" in means
        table = screen.query_one(DataTable)
        assert table.row_count == 2
        assert table.get_row_at(1)[1:] == [
            "What is Lumo?",
            "A small fern.",
            "A plant.",
            "A fern.",
            "0.250",
            "0.800",
        ]
        assert "Every three days." in text_of(screen, "#eval-detail")
        assert "done" in text_of(screen, "#eval-progress")

        await pilot.press("b")
        assert await wait_for(pilot, lambda: screen.bench is not None)
        job = engine.jobs[-1]
        assert isinstance(job, Benchmark) and job.runs == 5
        bench = text_of(screen, "#bench-result")
        assert "55.5 ± 1.5" in bench and "0.75 GB" in bench and "over 5 runs" in bench

        # A bad value is refused in place.
        n_jobs = len(engine.jobs)
        screen.query_one("#eval-n", Input).value = "0"
        screen.query_one("#eval-run", Button).focus()
        await pilot.press("v")
        await pilot.pause()
        assert len(engine.jobs) == n_jobs

        # A failure shows in the screen and in the error modal; the screen is kept (results too).
        screen.query_one("#eval-n", Input).value = "3"
        engine.fail_kinds = ("evaluate",)
        await pilot.press("v")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        await pilot.press("escape")
        assert app.screen is screen
        assert "evaluate failed: fake evaluate failure" in text_of(screen, "#eval-progress")
        assert screen.query_one(DataTable).row_count == 2

        # Closed and opened again, it is the same screen with its results.
        await pilot.press("escape")
        assert not isinstance(app.screen, EvaluateScreen)
        await pilot.press("e")
        assert app.screen is screen

        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert screen.query_one(DataTable).region.height >= 3


async def test_export_and_runs_screens(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = make_run(runs, "20250101-000000-done")
    stopped = make_run(
        runs,
        "20250102-000000-stopped",
        status="stopped",
        iteration=7,
        total=40,
        optimizer=True,
        iters=40,
    )
    app, box = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        assert await wait_for(pilot, lambda: app.status.model == "fake-model")

        # ---- export
        await pilot.press("x")
        screen = app.screen
        assert isinstance(screen, ExportScreen)
        existing = tmp_path / "fused"
        existing.mkdir()
        (existing / "config.json").write_text("{}")
        screen.query_one("#ex-save", Input).value = str(existing)
        screen.query_one("#ex-dequantize", Switch).value = True
        screen.query_one("#ex-fuse-gguf", Input).value = str(tmp_path / "fused.gguf")
        screen.query_one("#ex-fuse", Button).press()
        await pilot.pause()
        assert not any(isinstance(j, Fuse) for j in engine.jobs)  # refused: it exists
        assert "already exists" in text_of(screen, "#export-result")
        assert (existing / "config.json").read_text() == "{}"

        screen.query_one("#ex-force", Switch).value = True
        screen.query_one("#ex-fuse", Button).press()
        assert await wait_for(pilot, lambda: screen.last_path is not None)
        job = engine.jobs[-1]
        assert isinstance(job, Fuse)
        assert (job.save_path, job.dequantize, job.force) == (str(existing), True, True)
        assert job.gguf_path == str(tmp_path / "fused.gguf") and job.adapter_path is None
        assert f"written: {existing.resolve()}" in text_of(screen, "#export-result")
        assert screen.query_one("#ex-up-folder", Input).value == str(existing)

        screen.query_one("#ex-force", Switch).value = False
        gguf = tmp_path / "out.gguf"
        screen.query_one("#ex-gguf", Input).value = str(gguf)
        screen.query_one("#ex-adapter", Input).value = str(done / "adapters")
        screen.query_one("#ex-gguf", Input).focus()
        await pilot.press("enter")  # Enter in a field runs its row's button
        assert await wait_for(pilot, lambda: isinstance(engine.jobs[-1], ExportGGUF))
        job = engine.jobs[-1]
        assert (job.out_file, job.adapter_path, job.force) == (
            str(gguf),
            str(done / "adapters"),
            False,
        )
        gguf.write_bytes(b"GGUF")
        n_jobs = len(engine.jobs)
        screen.query_one("#ex-export", Button).press()
        await pilot.pause()
        assert len(engine.jobs) == n_jobs  # now it exists: refused without force

        # Upload runs in a thread and shows the clear failure (a folder that is not a model).
        screen.query_one("#ex-up-folder", Input).value = str(tmp_path)
        screen.query_one("#ex-repo", Input).value = "someone/model"
        screen.query_one("#ex-upload", Button).press()
        assert await wait_for(pilot, lambda: "upload failed" in text_of(screen, "#export-result"))
        assert "not a model folder" in text_of(screen, "#export-result")

        # ---- runs
        screen.query_one("#ex-repo", Input).focus()
        await pilot.press("escape")  # leaves the field
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 2
        row = table.get_row_at(0)
        assert (row[0], row[2], row[8], row[10]) == ("20250102-000000-stopped", "stopped", "7/40", "1.2340")
        row = table.get_row_at(1)
        assert (row[0], row[2], row[8]) == ("20250101-000000-done", "finished", "20/20")

        await pilot.press("b")  # chat with the stopped run's best adapter
        assert not isinstance(app.screen, RunsScreen)
        chat = app.query_one(ChatPane)
        assert chat.weights == str(stopped / "adapters" / "best_adapters.safetensors")
        assert app.active_pane == 4

        await pilot.press("escape")  # leave the chat input so r acts
        await pilot.press("r")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("down", "c")  # the completed run: nothing to resume
        await pilot.pause()
        assert not any(isinstance(j, Train) for j in engine.jobs)
        await pilot.press("up", "c")
        assert await wait_for(pilot, lambda: any(isinstance(j, Train) for j in engine.jobs))
        train = next(j for j in engine.jobs if isinstance(j, Train))
        assert train.config.resume_run == str(stopped)
        assert train.config.iters == 40  # the run's own config, not the form's
        assert not isinstance(app.screen, RunsScreen)
        assert await wait_for(pilot, lambda: app.status.state == "done")


async def test_help_lists_screen_keys_at_80x24(tmp_path: Path) -> None:
    app, _box = make_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        for key, kind in (("e", EvaluateScreen), ("x", ExportScreen), ("r", RunsScreen)):
            await pilot.press(key)
            assert isinstance(app.screen, kind)
            if kind is ExportScreen:  # it opens in the save path field: Esc leaves the field first
                await pilot.press("escape")
                assert isinstance(app.screen, kind) and not isinstance(app.focused, Input)
            await pilot.press("escape")
            assert not isinstance(app.screen, kind | HelpScreen)
        # Switching from one tool to another does not stack them.
        await pilot.press("e")
        await pilot.press("escape")
        await pilot.press("r")
        await pilot.press("e")
        assert isinstance(app.screen, EvaluateScreen)
        assert sum(isinstance(s, EvaluateScreen | RunsScreen) for s in app.screen_stack) == 1


async def test_s_stops_a_running_evaluation(tmp_path: Path) -> None:
    app, box = make_app(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        engine = box["engine"]
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        await pilot.press("s")  # nothing running: nothing to stop
        assert "cancel_generation" not in engine.calls
        screen.running["evaluate"] = 99
        await pilot.press("s")
        assert "cancel_generation" in engine.calls
