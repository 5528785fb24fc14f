"""Split and convert: deterministic, every input kind, never overwriting without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxtui.core.data import PrepareError, convert_file, parse_ratios, split_file, validate_dataset


def jsonl(path: Path, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(n))
    )
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_split_is_deterministic_and_complete(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "all.jsonl", 100)
    a = split_file(src, (0.8, 0.1, 0.1), seed=42, out_dir=tmp_path / "a")
    b = split_file(src, "0.8,0.1,0.1", seed=42, out_dir=tmp_path / "b")
    c = split_file(src, (0.8, 0.1, 0.1), seed=7, out_dir=tmp_path / "c")
    assert a.counts == b.counts == c.counts == {"train": 80, "valid": 10, "test": 10}
    for name in ("train", "valid", "test"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{name}.jsonl"
        ).read_bytes()
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (
        tmp_path / "c" / "train.jsonl"
    ).read_bytes()
    rows = [
        r for name in ("train", "valid", "test") for r in read(tmp_path / "a" / f"{name}.jsonl")
    ]
    assert sorted(r["prompt"] for r in rows) == sorted(
        f"q{i}" for i in range(100)
    )  # nothing lost, nothing twice
    assert read(tmp_path / "a" / "train.jsonl") != read(src)[:80]  # shuffled
    assert validate_dataset(tmp_path / "a").ok


def test_split_small_and_blank_lines(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_text('{"text": "a"}\n\n{"text": "b"}\n{"text": "c"}\n{"text": "d"}\n{"text": "e"}')
    r = split_file(src, (0.9, 0.1), out_dir=tmp_path / "o")
    assert r.counts == {"train": 4, "valid": 1} and r.skipped_blank == 1
    assert not (tmp_path / "o" / "test.jsonl").exists()
    lines = (tmp_path / "o" / "train.jsonl").read_text().splitlines()
    assert all(line.startswith('{"text"') for line in lines)


def test_split_refuses_overwrite(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "all.jsonl", 10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "valid.jsonl").write_text("precious\n")
    with pytest.raises(PrepareError, match=r"valid\.jsonl.*allow overwriting") as refused:
        split_file(src, out_dir=out)
    # core names the setting; each front end words it (the CLI's flag here)
    assert "--force" in refused.value.worded({"force": "pass --force to overwrite"})
    assert (out / "valid.jsonl").read_text() == "precious\n"
    assert not (out / "train.jsonl").exists()  # nothing half-written either
    split_file(src, out_dir=out, force=True)
    assert (out / "valid.jsonl").read_text() != "precious\n"
    assert not list(out.glob(".*tmp"))


def test_split_never_overwrites_its_input(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "train.jsonl", 10)
    with pytest.raises(PrepareError, match="input file"):
        split_file(src, out_dir=tmp_path, force=True)
    assert len(read(src)) == 10


@pytest.mark.parametrize("text", ["0.5", "0.5,0.6", "a,b", "0,1", "0.5,0.5,0.5,-0.5"])
def test_bad_ratios(text: str) -> None:
    with pytest.raises(PrepareError):
        parse_ratios(text)


def test_convert_csv_to_chat(tmp_path: Path) -> None:
    src = tmp_path / "faq.csv"
    src.write_text(
        'Question,Answer,id\n"What, exactly?","This, with a comma",1\n"multi\nline","ok",2\n,"no question",3\n'
    )
    r = convert_file(src, to="chat", out_dir=tmp_path / "out", system_prompt="Be brief.")
    assert (r.prompt_column, r.response_column, r.count) == ("Question", "Answer", 2)
    assert r.skipped == ("line 5: empty 'Question'",)
    rows = read(r.path)
    assert r.path == tmp_path / "out" / "faq.jsonl"
    assert rows[0] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What, exactly?"},
            {"role": "assistant", "content": "This, with a comma"},
        ]
    }
    assert rows[1]["messages"][1]["content"] == "multi\nline"


def test_convert_tsv_to_completions(tmp_path: Path) -> None:
    src = tmp_path / "d.tsv"
    src.write_text("instruction\tinput\toutput\nTranslate\tHello\tBonjour\nSay hi\t\tHi\n")
    r = convert_file(src, to="completions", out_dir=tmp_path)
    # Alpaca-style: a non-empty "input" goes after the instruction
    assert read(r.path) == [
        {"prompt": "Translate\n\nHello", "completion": "Bonjour"},
        {"prompt": "Say hi", "completion": "Hi"},
    ]


def test_convert_json_array_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(
        json.dumps([{"query": "q1", "response": "r1"}, {"query": "q2", "response": 42}, "junk"])
    )
    r = convert_file(tmp_path / "a.json", out_dir=tmp_path / "o")
    assert [m["messages"][1]["content"] for m in read(r.path)] == ["r1", "42"]
    assert r.skipped == ("item 3: not an object",)
    (tmp_path / "b.jsonl").write_text(
        '{"ask": "q", "say": "a"}\n\n{bad\n{"ask": "q2", "say": "a2"}\n'
    )
    r = convert_file(
        tmp_path / "b.jsonl",
        to="completions",
        out_dir=tmp_path / "o",
        prompt_column="ask",
        response_column="say",
    )
    assert read(r.path) == [
        {"prompt": "q", "completion": "a"},
        {"prompt": "q2", "completion": "a2"},
    ]
    assert len(r.skipped) == 1 and r.skipped[0].startswith("line 3: invalid JSON")


def test_convert_explains_undecidable_columns(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("foo,bar\n1,2\n")
    with pytest.raises(PrepareError, match=r"columns found: foo, bar.*--prompt-column"):
        convert_file(src, out_dir=tmp_path / "o")
    with pytest.raises(PrepareError, match=r"no column 'nope'"):
        convert_file(src, out_dir=tmp_path / "o", prompt_column="nope")
    with pytest.raises(PrepareError, match="system-prompt needs --to chat"):
        convert_file(src, to="completions", system_prompt="x", out_dir=tmp_path / "o")


def test_convert_refuses_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("prompt,completion\na,b\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "d.jsonl").write_text("keep me\n")
    with pytest.raises(PrepareError, match=r"d\.jsonl.*allow overwriting"):
        convert_file(src, out_dir=tmp_path / "out")
    assert (tmp_path / "out" / "d.jsonl").read_text() == "keep me\n"
    convert_file(src, out_dir=tmp_path / "out", force=True)
    assert read(tmp_path / "out" / "d.jsonl")[0]["messages"][1]["content"] == "b"


def test_convert_with_no_usable_rows_keeps_existing_file(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("prompt,completion\n,\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "d.jsonl").write_text("keep me\n")
    with pytest.raises(PrepareError, match="nothing written"):
        convert_file(src, out_dir=tmp_path / "out", force=True)
    assert (tmp_path / "out" / "d.jsonl").read_text() == "keep me\n"
