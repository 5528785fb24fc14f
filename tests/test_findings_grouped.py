"""Many findings stay readable: grouped by kind with a count and the first places, in the CLI
(`--all` for every line, `--json` for machines) and in the dashboard's validation view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_tui_data import Host, wait_for
from textual.widgets import OptionList

from mlxtui.cli.main import main
from mlxtui.core.data import validate_dataset
from mlxtui.tui.screens.data_tools import ValidateScreen

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
N_DUP = 474


def _folder(tmp_path: Path) -> Path:
    """train.jsonl: one example and 474 copies of it, three broken lines, one odd line."""
    lines = [json.dumps(GOOD)] * (N_DUP + 1) + ["{bad"] * 3
    folder = tmp_path / "dup"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "valid.jsonl").write_text(json.dumps(GOOD | {"x": 1}) + "\n")
    return folder


def test_the_report_groups_by_kind_with_counts_and_first_places(tmp_path: Path) -> None:
    report = validate_dataset(_folder(tmp_path))
    groups = {g.code: g for g in report.groups()}
    assert groups["duplicate"].count == N_DUP and groups["invalid-json"].count == 3
    assert [g.severity for g in report.groups()] == sorted(
        (g.severity for g in report.groups()), key=lambda s: s != "error"
    )  # errors first
    assert groups["duplicate"].places(3, report.data_dir) == (
        f"train.jsonl:2, train.jsonl:3, train.jsonl:4 and {N_DUP - 3} more"
    )


def test_the_cap_per_kind_still_counts_every_finding(tmp_path: Path) -> None:
    report = validate_dataset(_folder(tmp_path), max_per_kind=10)
    dup = next(g for g in report.groups() if g.code == "duplicate")
    assert dup.count == N_DUP and len(dup.findings) == 10
    assert f"{N_DUP + 1} warning(s)" in report.summary()  # duplicates + valid's unknown key


def test_cli_prints_a_few_lines_and_all_or_json_on_request(tmp_path: Path, capsys: Any) -> None:
    folder = _folder(tmp_path)
    assert main(["data", "validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 15, out  # was one line per finding: 480
    assert (
        f"warning duplicate x{N_DUP}: train.jsonl:2, train.jsonl:3, train.jsonl:4 and {N_DUP - 3} more"
        in out
    )
    assert "error invalid-json x3: train.jsonl:476, train.jsonl:477, train.jsonl:478" in out
    assert (
        f"{folder / 'valid.jsonl'}:1: warning: unknown key(s)" in out
    )  # a kind seen once: its line
    assert "--all` lists every finding" in out

    assert main(["data", "validate", str(folder), "--all"]) == 1
    out = capsys.readouterr().out
    assert sum(": warning: duplicate of line 1" in line for line in out.splitlines()) == N_DUP

    assert main(["data", "validate", str(folder), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["errors"] == 3 and data["warnings"] == N_DUP + 1
    dup = next(g for g in data["groups"] if g["code"] == "duplicate")
    assert dup["count"] == N_DUP and len(dup["first"]) == 3
    assert len([f for f in data["findings"] if f["code"] == "duplicate"]) == N_DUP
    assert {"severity", "file", "line", "code", "message"} == set(data["findings"][0])


async def test_the_dashboard_view_groups_expands_and_lists_all(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = ValidateScreen(folder, None, 2048, None)
        app.open(screen)
        assert await wait_for(pilot, lambda: screen.report is not None)
        shown = screen.finding_lines()
        assert len(shown) < 15, shown
        head = next(i for i, line in enumerate(shown) if f"duplicate x{N_DUP}" in line)
        assert shown[head].startswith("▸ warning duplicate")
        assert all("duplicate of line 1" in line for line in shown[head + 1 : head + 4])

        options = screen.query_one(OptionList)
        options.highlighted = head
        await pilot.press("enter")  # on the head line: expand the kind
        assert await wait_for(pilot, lambda: len(screen.finding_lines()) > N_DUP)
        assert screen.finding_lines()[head].startswith("▾ ")
        await pilot.press("enter")  # and fold it again
        assert await wait_for(pilot, lambda: len(screen.finding_lines()) < 15)

        await pilot.press("a")  # every finding, one line each
        assert await wait_for(
            pilot, lambda: len(screen.finding_lines()) == len(screen.report.findings)
        )
        await pilot.press("a")
        assert await wait_for(pilot, lambda: len(screen.finding_lines()) < 15)

        # a finding inside a group still jumps to its line
        options.highlighted = head + 2
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: app.results == [("train", 3)])
