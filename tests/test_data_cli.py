"""`mlxtui data …` through argparse, as the lead wires it."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from mlxtui.cli.data import add_parser as add_data_parser
from mlxtui.cli.data import run as cmd_data


def run(*argv: str, load_tokenizer=None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="mlxtui")
    add_data_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    assert args.func is cmd_data
    rc = cmd_data(args, load_tokenizer=load_tokenizer, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


def test_validate_exit_codes_and_lines(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD) + "\n{bad\n")
    rc, out, _ = run("data", "validate", str(tmp_path))
    assert rc == 1
    assert f"{tmp_path / 'train.jsonl'}:2: error: invalid JSON" in out
    assert "NOT READY" in out and "no --model" in out
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    rc, out, _ = run("data", "validate", str(tmp_path))
    assert rc == 0 and "OK" in out


def test_validate_with_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    rc, out, _ = run(
        "data", "validate", str(tmp_path), "--model", str(tiny_model_dir), "--max-seq-length", "5"
    )
    assert rc == 0 and "will be truncated" in out and "no --model" not in out
    rc, _, err = run(
        "data",
        "validate",
        str(tmp_path),
        "--model",
        str(tmp_path / "nope"),
        load_tokenizer=lambda s: 1 / 0,
    )
    assert rc == 2 and "cannot load a tokenizer" in err


def test_stats_prints_histogram(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"text": "x" * (10 * i)}) + "\n" for i in range(1, 9))
    )
    rc, out, _ = run("data", "stats", str(tmp_path), "--batch-size", "2")
    assert rc == 0 and "4 iterations per epoch" in out and "│" in out and "estimated" in out
    rc, _, err = run("data", "stats", str(tmp_path / "missing"))
    assert rc == 1 and "no such folder" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run("data", "stats", str(tmp_path / "empty"))
    assert rc == 1 and "no train.jsonl" in err


def test_split_convert_show(tmp_path: Path) -> None:
    src = tmp_path / "qa.csv"
    src.write_text("question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(20)))
    rc, out, _ = run("data", "convert", str(src), "--to", "chat", "--out", str(tmp_path / "conv"))
    assert rc == 0 and "20 chat examples" in out
    converted = tmp_path / "conv" / "qa.jsonl"
    rc, out, _ = run(
        "data", "split", str(converted), "--ratios", "0.8,0.1,0.1", "--out", str(tmp_path / "ds")
    )
    assert rc == 0 and "train.jsonl: 16 examples" in out
    rc, _, err = run("data", "split", str(converted), "--out", str(tmp_path / "ds"))
    assert rc == 1 and "--force" in err
    rc, out, _ = run("data", "show", str(tmp_path / "ds"), "--line", "2", "--mask-prompt")
    assert rc == 0 and "[train]a" in out and "<|im_start|>user\nq" in out and "estimated" in out
    rc, out, _ = run("data", "show", str(converted), "--line", "-1")
    assert rc == 0 and "q19" in out
    rc, _, err = run("data", "show", str(converted), "--line", "99")
    assert rc == 1 and "has 20 line(s)" in err
    rc, _, err = run(
        "data",
        "convert",
        str(src),
        "--to",
        "completions",
        "--system-prompt",
        "x",
        "--out",
        str(tmp_path),
    )
    assert rc == 1 and "system-prompt" in err


def test_show_bad_line(tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").write_text('{"text": "ok"}\n[1]\n')
    rc, out, _ = run("data", "show", str(tmp_path / "f.jsonl"), "--line", "2")
    assert rc == 1 and "f.jsonl:2: error: expected a JSON object" in out


def test_out_that_is_a_file_or_input_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "all.jsonl"
    src.write_text(json.dumps(GOOD) + "\n")
    csv_file = tmp_path / "qa.csv"
    csv_file.write_text("question,answer\nhi,yo\n")
    for argv in (
        ("split", str(src), "--out", str(src)),
        ("convert", str(csv_file), "--out", str(csv_file)),
        ("convert", str(csv_file), "--out", str(csv_file / "sub")),
    ):
        rc, _, err = run("data", *argv)
        assert rc == 1 and "is a file, not a folder" in err and "Traceback" not in err
        assert "--out " in err  # the setting at fault, named by its flag
    assert src.read_text() == json.dumps(GOOD) + "\n"
    rc, _, err = run("data", "split", str(tmp_path), "--out", str(tmp_path / "o"))
    assert rc == 1 and "is a folder; give one JSONL file" in err
    rc, _, err = run("data", "convert", str(tmp_path), "--out", str(tmp_path / "o"))
    assert rc == 1 and "is a folder" in err


def test_stats_says_whether_the_folder_is_missing_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    rc, _, err = run("data", "stats", str(tmp_path / "train.jsonl"))
    assert rc == 1 and "is a file; give the folder" in err
    rc, _, err = run("data", "stats", str(tmp_path / "nope"))
    assert rc == 1 and "no such folder" in err


def test_sizes_below_one_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD) + "\n")
    for argv in (
        ("stats", str(tmp_path), "--batch-size", "0"),  # was a ZeroDivisionError traceback
        ("validate", str(tmp_path), "--max-seq-length", "-5"),
        ("validate", str(tmp_path), "--batch-size", "four"),
    ):
        with pytest.raises(SystemExit) as e:
            run("data", *argv)
        assert e.value.code == 2
