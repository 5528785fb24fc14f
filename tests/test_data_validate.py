"""Every validation finding, on the line where it is; and fuzzing: bad data never crashes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxtui.core.data import Finding, dataset_stats, validate_dataset

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


def chat(*turns: tuple[Any, Any]) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


def dump(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, (str, bytes)) else json.dumps(r) for r in rows]
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def make(
    tmp_path: Path, train: list[Any], valid: list[Any] | None = None, test: list[Any] | None = None
) -> Path:
    dump(tmp_path / "train.jsonl", train)
    if valid is not None:
        dump(tmp_path / "valid.jsonl", valid)
    if test is not None:
        dump(tmp_path / "test.jsonl", test)
    return tmp_path


def at(findings: tuple[Finding, ...], line: int, code: str) -> Finding:
    hits = [f for f in findings if f.line == line and f.code == code]
    assert hits, f"no {code} finding on line {line}; got: " + "\n".join(
        f.format() for f in findings
    )
    return hits[0]


def uniq(i: int) -> dict:
    return chat(("user", f"question {i}"), ("assistant", f"answer {i}"))


def test_clean_folder_is_ok(tmp_path: Path) -> None:
    report = validate_dataset(make(tmp_path, [uniq(i) for i in range(5)], [uniq(10)], [uniq(11)]))
    assert report.ok and not report.findings, report.format_findings()
    assert report.examples == {"train": 5, "valid": 1, "test": 1}
    assert report.formats["train"] == "chat"


def test_every_chat_problem_on_its_line(tmp_path: Path) -> None:
    rows = [
        uniq(0),  # 1 fine
        "{not json",  # 2
        "[1, 2, 3]",  # 3
        {"foo": "bar"},  # 4 missing keys
        chat(("user", "q"), ("bot", "a")),  # 5 bad role (and no assistant)
        chat(("user", "q"), ("system", "s"), ("assistant", "a")),  # 6 system not first
        chat(("assistant", "a"), ("user", "q"), ("assistant", "b")),  # 7 assistant first
        chat(("user", "q"), ("assistant", "")),  # 8 empty content
        chat(("system", "s"), ("user", "q")),  # 9 no assistant turn
        {**uniq(9), "id": 3},  # 10 unknown key
        {"messages": "hello"},  # 11 wrong type
        chat(("user", "q"), ("assistant", "a"), ("user", "again?")),  # 12 ends with user
        {"messages": [{"role": "user"}, {"role": "assistant", "content": 5}]},  # 13
        {"messages": []},  # 14
        {"messages": [uniq(1)["messages"][0], "oops", {"role": "assistant", "content": "x"}]},  # 15
        {"prompt": "q"},  # 16 prompt without completion
    ]
    r = validate_dataset(make(tmp_path, rows, [uniq(99)]))
    assert not r.ok
    name = str(tmp_path / "train.jsonl")
    assert all(f.file == name for f in r.findings)
    assert "column 2" in at(r.findings, 2, "invalid-json").message
    assert "got an array" in at(r.findings, 3, "invalid-json").message
    assert '"foo"' in at(r.findings, 4, "missing-key").message
    assert '"bot"' in at(r.findings, 5, "bad-role").message
    assert "first turn" in at(r.findings, 6, "role-order").message
    assert "before any user" in at(r.findings, 7, "role-order").message
    assert at(r.findings, 8, "empty-content").severity == "error"
    assert at(r.findings, 9, "no-assistant").severity == "error"
    unknown = at(r.findings, 10, "unknown-key")
    assert unknown.severity == "warning" and '"id"' in unknown.message
    assert "got a string" in at(r.findings, 11, "bad-type").message
    assert at(r.findings, 12, "last-turn").severity == "warning"
    assert 'no "content"' in at(r.findings, 13, "missing-key").message
    assert "got a number" in at(r.findings, 13, "bad-type").message
    at(r.findings, 14, "empty-content")
    assert "messages[1]" in at(r.findings, 15, "bad-type").message
    assert 'no "completion"' in at(r.findings, 16, "missing-key").message
    assert not [f for f in r.findings if f.line == 1]
    assert not [f for f in r.findings if f.code == "internal"]


def test_completions_and_text_problems(tmp_path: Path) -> None:
    rows = [
        {"prompt": "q", "completion": "a"},
        {"prompt": "", "completion": "a"},
        {"prompt": "q", "completion": ""},
        {"prompt": 1, "completion": "a"},
    ]
    r = validate_dataset(make(tmp_path, rows))
    assert at(r.findings, 2, "empty-content").severity == "warning"
    assert at(r.findings, 3, "empty-content").severity == "error"
    at(r.findings, 4, "bad-type")
    (tmp_path / "train.jsonl").write_text('{"text": "ok"}\n{"text": ""}\n{"text": null}\n')
    r = validate_dataset(tmp_path)
    at(r.findings, 2, "empty-content")
    assert "got null" in at(r.findings, 3, "bad-type").message


def test_file_level_problems(tmp_path: Path) -> None:
    r = validate_dataset(tmp_path)
    (f,) = r.errors
    assert f.code == "missing-file" and str(tmp_path) in f.message
    assert "train.jsonl" in f.message and "valid.jsonl" in f.message
    (tmp_path / "train.jsonl").write_bytes(b"")
    (tmp_path / "validation.jsonl").write_text(json.dumps(GOOD) + "\n")
    r = validate_dataset(tmp_path)
    assert "empty file" in at(r.findings, 0, "empty-file").message
    assert "rename it to valid.jsonl" in at(r.findings, 0, "ignored-file").message
    assert at(r.findings, 0, "missing-file").severity == "warning"  # no valid.jsonl
    assert not validate_dataset(tmp_path / "nope").ok
    assert "data split" in validate_dataset(tmp_path / "validation.jsonl").errors[0].message


def test_blank_lines_utf8_and_mixed(tmp_path: Path) -> None:
    rows = [
        uniq(0),
        "",
        "   ",
        b'{"text": "\xff\xfe"}',
        {"prompt": "q", "completion": "a"},
        {"text": "plain"},
    ]
    r = validate_dataset(make(tmp_path, rows))
    assert at(r.findings, 2, "blank-line").severity == "warning"
    at(r.findings, 3, "blank-line")
    assert "UTF-8" in at(r.findings, 4, "invalid-utf8").message
    assert "file is chat (from line 1)" in at(r.findings, 5, "mixed-format").message
    at(r.findings, 6, "mixed-format")


def test_duplicates_and_leakage(tmp_path: Path) -> None:
    reordered = {
        "messages": [
            {"content": "question 1", "role": "user"},
            {"content": "answer 1", "role": "assistant"},
        ]
    }
    r = validate_dataset(
        make(tmp_path, [uniq(0), uniq(1), uniq(0)], [uniq(5), reordered], [uniq(0)])
    )
    assert "duplicate of line 1" in at(r.findings, 3, "duplicate").message
    leak = at(r.findings, 2, "leakage")
    assert (
        leak.file.endswith("valid.jsonl") and "train.jsonl:2" in leak.message
    )  # key order ignored
    assert "train.jsonl:1" in at(r.findings, 1, "leakage").message
    assert r.ok  # warnings only


def test_empty_valid_is_an_error(tmp_path: Path) -> None:
    r = validate_dataset(make(tmp_path, [uniq(0)], [""]))
    f = at(r.findings, 0, "empty-file")
    assert f.file.endswith("valid.jsonl") and "mlx-lm fails" in f.message


def test_batch_size_check(tmp_path: Path) -> None:
    r = validate_dataset(make(tmp_path, [uniq(0), uniq(1)], [uniq(2)]), batch_size=4)
    assert len([f for f in r.errors if f.code == "too-few"]) == 2


def test_too_long_with_tokenizer(tmp_path: Path, tiny_model_dir: Path) -> None:
    from mlx_lm.tokenizer_utils import load

    tok = load(tiny_model_dir)
    long = chat(("user", "Hi"), ("assistant", "The quick brown fox jumps over the lazy dog. " * 10))
    r = validate_dataset(make(tmp_path, [uniq(0), long]), tokenizer=tok, max_seq_length=40)
    f = at(r.findings, 2, "too-long")
    assert f.severity == "warning" and "will be truncated" in f.message
    assert not [f for f in r.findings if f.line == 1 and f.code == "too-long"]


def test_format_findings_and_no_writes(tmp_path: Path) -> None:
    make(tmp_path, [uniq(0), "{bad"])
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    r = validate_dataset(tmp_path)
    assert f"{tmp_path / 'train.jsonl'}:2: error: invalid JSON" in r.format_findings()
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cap_per_kind(tmp_path: Path) -> None:
    r = validate_dataset(make(tmp_path, [{**uniq(i), "x": 1} for i in range(30)]), max_per_kind=5)
    unknown = [f for f in r.findings if f.code == "unknown-key"]
    assert len(unknown) == 6 and "25 more" in unknown[-1].message


def test_custom_keys(tmp_path: Path) -> None:
    from mlxtui.core.data import FormatKeys

    make(tmp_path, [{"q": "a", "a": "b"}])
    assert validate_dataset(
        tmp_path, keys=FormatKeys(prompt_feature="q", completion_feature="a")
    ).ok
    assert not validate_dataset(tmp_path).ok


# ------------------------------------------------------------------ fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "bot", "", None, 3])
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={"content": st.text(max_size=10) | json_values, "tool_calls": json_values},
    ),
    max_size=5,
)
chatty = st.one_of(
    st.fixed_dictionaries(
        {"messages": messages | json_values}, optional={"tools": json_values, "x": json_values}
    ),
    st.fixed_dictionaries(
        {"prompt": st.text(max_size=5) | json_values}, optional={"completion": json_values}
    ),
    st.fixed_dictionaries({"text": st.text(max_size=5) | json_values}),
)


def encode_line(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value.replace(b"\n", b" ")
    return json.dumps(value).encode()


line = st.one_of(chatty, json_values, st.binary(max_size=30), st.text(max_size=20).map(str.encode))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    train=st.lists(line, min_size=20, max_size=20),
    valid=st.lists(line, max_size=3),
    trailing=st.booleans(),
)
def test_fuzz_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, train: list, valid: list, trailing: bool
) -> None:
    """Hypothesis-built lines (2,000): random JSON values, bytes, random-ish chat records."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "train.jsonl").write_bytes(
        b"\n".join(map(encode_line, train)) + (b"\n" if trailing else b"")
    )
    if valid:
        (d / "valid.jsonl").write_bytes(b"\n".join(map(encode_line, valid)))
    check_no_crash(validate_dataset(d, batch_size=4))


def check_no_crash(report: Any) -> None:
    assert not [f for f in report.findings if f.code == "internal"], report.format_findings()
    assert all(f.severity in ("error", "warning") and f.line >= 0 for f in report.findings)
    report.format_findings()


SEEDS = [
    {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": 1}]},
            {"role": "tool", "content": "r"},
            {"role": "assistant", "content": "a"},
        ],
        "tools": [{"type": "function"}],
    },
    {"prompt": "p", "completion": "c"},
    {"text": "t"},
]
ODD_VALUES = [
    None,
    True,
    0,
    -1.5,
    "",
    " ",
    "x" * 300,
    [],
    {},
    [1, [2, [3]]],
    {"role": "user"},
    "\u0000",
    "\ud800",
    'é\n\t"',
    float("nan"),
]


def mutate(value: Any, rnd: Any, depth: int = 0) -> Any:
    """A random structural change somewhere in a JSON value: drop, replace, duplicate, retype."""
    if depth > 3 or rnd.random() < 0.25:
        return rnd.choice(ODD_VALUES + ["system", "user", "assistant", "tool", "bot"])
    if isinstance(value, dict) and value:
        out = dict(value)
        key = rnd.choice(list(out))
        op = rnd.random()
        if op < 0.3:
            del out[key]
        elif op < 0.5:
            out[
                rnd.choice(
                    [
                        "extra",
                        "messages",
                        "prompt",
                        "completion",
                        "text",
                        "tools",
                        "role",
                        "content",
                    ]
                )
            ] = mutate(out[key], rnd, depth + 1)
        else:
            out[key] = mutate(out[key], rnd, depth + 1)
        return out
    if isinstance(value, list) and value:
        out = list(value)
        i = rnd.randrange(len(out))
        op = rnd.random()
        if op < 0.25:
            del out[i]
        elif op < 0.5:
            out.insert(rnd.randrange(len(out) + 1), out[i])
        elif op < 0.6:
            rnd.shuffle(out)
        else:
            out[i] = mutate(out[i], rnd, depth + 1)
        return out
    return rnd.choice(ODD_VALUES)


def random_line(rnd: Any) -> bytes:
    record = rnd.choice(SEEDS)
    for _ in range(rnd.choice([0, 0, 1, 1, 2, 3])):
        record = mutate(record, rnd)
    raw = json.dumps(record, ensure_ascii=rnd.random() < 0.5).encode("utf-8", "surrogatepass")
    op = rnd.random()
    if op < 0.05:
        raw = raw[: rnd.randrange(len(raw) + 1)]  # truncated line
    elif op < 0.1:
        i = rnd.randrange(len(raw))
        raw = raw[:i] + bytes([rnd.randrange(256)]) + raw[i + 1 :]  # one flipped byte
    elif op < 0.12:
        raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
    elif op < 0.14:
        raw = b"  "
    return raw.replace(b"\n", b" ")


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(rnd=st.randoms(use_true_random=False), split_at=st.integers(30, 50))
def test_fuzz_random_ish_records_never_crash(
    tmp_path_factory: pytest.TempPathFactory, rnd: Any, split_at: int
) -> None:
    """Hypothesis-seeded mutations of valid records (200 x 50 = 10,000 lines), cut among splits."""
    lines = [random_line(rnd) for _ in range(FUZZ_LINES)]
    if rnd.random() < 0.3:  # leakage and duplicates
        lines[-1] = lines[0]
    d = tmp_path_factory.mktemp("fuzz_mut")
    (d / "train.jsonl").write_bytes(b"\n".join(lines[:split_at]) + b"\n")
    if split_at < FUZZ_LINES:
        (d / "valid.jsonl").write_bytes(b"\n".join(lines[split_at:]))
    check_no_crash(validate_dataset(d, batch_size=2, max_per_kind=3))
    stats = dataset_stats(d, batch_size=2)  # stats skip what they cannot read, never raise
    assert stats.split("train") is not None


FUZZ_LINES = 50


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    train=st.lists(st.one_of(chatty, line), min_size=20, max_size=20),
    rnd=st.randoms(use_true_random=False),
)
def test_fuzz_with_tokenizer_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, fuzz_tokenizer: Any, train: list, rnd: Any
) -> None:
    """The chat template and the tokenizer see odd records too: their errors become findings."""
    d = tmp_path_factory.mktemp("fuzz_tok")
    lines = [encode_line(x) for x in train] + [random_line(rnd) for _ in range(20)]
    (d / "train.jsonl").write_bytes(b"\n".join(lines))
    check_no_crash(validate_dataset(d, tokenizer=fuzz_tokenizer, max_seq_length=16))


@pytest.fixture(scope="module")
def fuzz_tokenizer(tiny_model_dir: Path) -> Any:
    from mlx_lm.tokenizer_utils import load

    return load(tiny_model_dir)


def test_demo_data_validates(tiny_model_dir: Path) -> None:
    """The bundled demo dataset must pass with a ChatML tokenizer and the default batch size."""
    from mlx_lm.tokenizer_utils import load

    demo = Path(__file__).resolve().parents[1] / "mlxtui" / "demo_data"
    if not (demo / "train.jsonl").exists():
        pytest.skip("no demo dataset in this checkout")
    report = validate_dataset(demo, tokenizer=load(tiny_model_dir), batch_size=4)
    assert report.ok, report.format_findings()
    assert report.formats["train"] == "chat"


def test_hints_for_data_in_other_formats(tmp_path: Path) -> None:
    """BOM, a JSON array, pretty-printed JSON, ShareGPT and Alpaca rows say what to do."""
    cases = {
        "bom": ('\ufeff{"text": "a"}\n', "byte order mark"),
        "array": ('[{"text": "a"},\n{"text": "b"}]\n', "mlxtui data convert"),
        "pretty": ('{\n "text": "a"\n}\n', "pretty-printed JSON"),
        "sharegpt": (
            json.dumps({"conversations": [{"from": "human", "value": "hi"}]}) + "\n",
            "ShareGPT",
        ),
        "alpaca": (json.dumps({"instruction": "i", "output": "o"}) + "\n", "mlxtui data convert"),
        "roles": (
            json.dumps(
                {"messages": [{"role": "human", "content": "a"}, {"role": "gpt", "content": "b"}]}
            )
            + "\n",
            '(rename it "assistant")',
        ),
    }
    for name, (text, hint) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "train.jsonl").write_text(text, encoding="utf-8")
        report = validate_dataset(folder)
        first = report.errors[0]
        assert first.line == 1 and hint in report.format_findings(), (name, first)
