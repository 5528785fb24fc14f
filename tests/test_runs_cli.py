"""`mlxtui runs list|show|compare|rm|rename|tag|note` on real run folders."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from run_folders import small_data, train_run

from mlxtui.cli.main import main
from mlxtui.core.run_history import summarize


@pytest.fixture(scope="module")
def runs_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs_cli")
    data = small_data(root / "data")
    train_run(tiny_model_dir, data, root / "runs", run_name="base")
    train_run(tiny_model_dir, data, root / "runs", run_name="hot", learning_rate=4e-3, stop_at=4)
    return root / "runs"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_as_markdown_csv_and_json(runs_dir, capsys):
    code, out, _ = cli(capsys, "runs", "--runs-dir", str(runs_dir))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| name") and "best val" in lines[0] and "peak GB" in lines[0]
    assert lines[1].startswith("|---")
    assert (
        "hot" in lines[2]
        and "stopped" in lines[2]
        and "base" in lines[3]
        and "finished" in lines[3]
    )

    code, out, _ = cli(capsys, "runs", "list", "--runs-dir", str(runs_dir), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["name"] for r in rows] == ["hot", "base"]
    base = summarize(next(p for p in runs_dir.iterdir() if p.name.endswith("-base")))
    assert float(rows[1]["best val"]) == base.best_val_loss
    assert float(rows[1]["tok/s"]) == base.tokens_per_second
    assert rows[0]["steps"] == "4/6"

    code, out, _ = cli(capsys, "runs", "--format", "json", "list", "--runs-dir", str(runs_dir))
    data = json.loads(out)
    assert [d["status"] for d in data] == ["stopped", "finished"]
    assert data[0]["lr"] == 4e-3 and data[1]["peak_mem_gb"] > 0 and data[1]["est_mem_gb"] > 0


def test_list_of_an_empty_folder(tmp_path, capsys):
    code, out, _ = cli(capsys, "runs", "--runs-dir", str(tmp_path))
    assert code == 0 and out == f"no runs in {tmp_path}\n"


def test_show_names_the_checkpoints_and_how_to_resume(runs_dir, capsys):
    code, out, _ = cli(capsys, "runs", "show", "base", "--runs-dir", str(runs_dir))
    assert code == 0
    assert "## base" in out and "| status " in out and "finished" in out
    assert "best_adapters.safetensors" in out and "0000003_adapters.safetensors" in out
    assert "mlxtui train --resume" in out
    code, out, _ = cli(
        capsys, "runs", "show", "hot", "--runs-dir", str(runs_dir), "--format", "json"
    )
    data = json.loads(out)
    assert data["status"] == "stopped" and data["config"]["learning_rate"] == 4e-3
    assert set(data["checkpoints"]) >= {"final", "best", "step 3"}
    assert [p["iteration"] for p in data["val_curve"]] == [0, 3]
    code, _, err = cli(capsys, "runs", "show", "nope", "--runs-dir", str(runs_dir))
    assert code == 1 and "nope: no such run" in err


def test_compare_prints_the_diff_and_writes_the_plot(runs_dir, capsys, tmp_path):
    plot = tmp_path / "cmp.svg"
    code, out, err = cli(
        capsys, "runs", "compare", "base", "hot", "--runs-dir", str(runs_dir), "--plot", str(plot)
    )
    assert code == 0
    assert "## settings that differ" in out
    diff_line = next(line for line in out.splitlines() if line.startswith("| learning_rate"))
    assert "1.0e-03" in diff_line and "4.0e-03" in diff_line
    assert "val-train gap" in out and "| base " in out and "| hot " in out
    assert plot.is_file() and "<svg" in plot.read_text() and f"plot written to {plot}" in err

    code, out, _ = cli(
        capsys, "runs", "compare", "base", "hot", "--runs-dir", str(runs_dir), "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["run"] for r in rows] == ["base", "hot"] and rows[1]["learning_rate"] == "0.004"
    code, out, _ = cli(
        capsys, "runs", "compare", "base", "hot", "--runs-dir", str(runs_dir), "--format", "json"
    )
    assert json.loads(out)["diff"]["learning_rate"] == [1e-3, 4e-3]

    code, _, err = cli(capsys, "runs", "compare", "base", "base", "--runs-dir", str(runs_dir))
    assert code == 1 and "two different runs" in err
    code, _, err = cli(
        capsys, "runs", "compare", "base", "hot", "--runs-dir", str(runs_dir), "--plot", "x.pdf"
    )
    assert code == 1 and ".png or .svg" in err


def test_rename_tag_note_then_list_shows_them(runs_dir, capsys, tmp_path):
    import shutil

    local = tmp_path / "runs"
    shutil.copytree(runs_dir, local)
    assert cli(capsys, "runs", "rename", "hot", "lr 4e-3", "--runs-dir", str(local))[0] == 0
    assert cli(capsys, "runs", "tag", "lr 4e-3", "keep", "sweep1", "--runs-dir", str(local))[0] == 0
    code, out, _ = cli(
        capsys, "runs", "tag", "lr 4e-3", "--remove", "sweep1", "--runs-dir", str(local)
    )
    assert code == 0 and out.endswith("tags: keep\n")
    assert (
        cli(capsys, "runs", "note", "lr 4e-3", "diverges after step 3", "--runs-dir", str(local))[0]
        == 0
    )
    data = json.loads(cli(capsys, "runs", "list", "--runs-dir", str(local), "--format", "json")[1])
    assert (data[0]["name"], data[0]["tags"], data[0]["note"]) == (
        "lr 4e-3",
        "keep",
        "diverges after step 3",
    )
    code, _, err = cli(capsys, "runs", "tag", "lr 4e-3", "--runs-dir", str(local))
    assert code == 1 and "--remove" in err


def test_rename_tag_and_note_each_say_what_they_did_and_name_a_missing_run(runs_dir, capsys, tmp_path):
    import shutil

    local = tmp_path / "runs"
    shutil.copytree(runs_dir, local)
    (folder,) = [p.name for p in local.iterdir() if p.name.endswith("-base")]
    said = {
        ("rename", "base", " first try "): f"{folder} is now named 'first try'\n",
        ("tag", "first try", "a", "b"): f"{folder} tags: a, b\n",
        ("tag", "first try", "--remove", "a", "--remove", "b"): f"{folder} tags: none\n",
        ("note", "first try", "kept"): f"{folder} note set\n",
        ("note", "first try", ""): f"{folder} note cleared\n",
    }
    for argv, line in said.items():
        assert cli(capsys, "runs", *argv, "--runs-dir", str(local)) == (0, line, ""), argv
    for argv in (("rename", "nope", "x"), ("tag", "nope", "x"), ("note", "nope", "x")):
        code, out, err = cli(capsys, "runs", *argv, "--runs-dir", str(local))
        assert (code, out) == (1, "") and err.startswith(f"mlxtui runs {argv[0]}: error: nope: no such run"), err
    # a bad value changes nothing and says which
    code, _, err = cli(capsys, "runs", "tag", "first try", "no spaces?", "--runs-dir", str(local))
    assert code == 1 and "tag 'no spaces?'" in err
    assert summarize(local / folder).tags == ()


def test_rm_asks_first_and_never_touches_what_is_not_a_run(runs_dir, capsys, tmp_path, monkeypatch):
    import shutil

    local = tmp_path / "runs"
    shutil.copytree(runs_dir, local)
    hot = next(p for p in local.iterdir() if p.name.endswith("-hot"))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = cli(capsys, "runs", "rm", "hot", "--runs-dir", str(local))
    assert code == 1 and "nothing deleted" in out and hot.is_dir()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no answer (a pipe that closed): no
    assert cli(capsys, "runs", "rm", "hot", "--runs-dir", str(local))[0] == 1 and hot.is_dir()

    mine = local / "my-data"
    mine.mkdir()
    (mine / "config.yaml").write_text("not a run\n")
    code, _, err = cli(capsys, "runs", "rm", str(mine), "--yes", "--runs-dir", str(local))
    assert code == 1 and "not an mlxtui run folder" in err and (mine / "config.yaml").is_file()

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, _ = cli(capsys, "runs", "rm", "hot", "--runs-dir", str(local))
    assert code == 0 and f"deleted {hot}" in out and not hot.exists()
    code, out, _ = cli(capsys, "runs", "rm", "base", "--yes", "--runs-dir", str(local))
    assert code == 0 and not [p for p in local.iterdir() if p.name != "my-data"]
