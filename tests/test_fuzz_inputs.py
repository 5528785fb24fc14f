"""Fuzzing the three readers of user files: the dataset validator, the JSONL index, the YAML loader.

None may crash on any input, and every rejection must name its place: a finding its file (and
line, when it is about one line), a config error its file (and key or line).

The suite runs a few hundred cases each. By hand, for the ten thousand of the reliability table:

    MLXTUI_FUZZ_EXAMPLES=10000 uv run pytest -q -p no:cacheprovider tests/test_fuzz_inputs.py
"""

from __future__ import annotations

import json
import os
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxtui.core.config import SETTINGS, ConfigError, TrainConfig, load_config
from mlxtui.core.data import JsonlIndex, RecordError, parse_line, validate_dataset
from mlxtui.core.data.validate import check_record

EXAMPLES = int(os.environ.get("MLXTUI_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 200,  # the suite sees the same cases every run; a hand run explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------- strategies

KEYS = [
    "messages",
    "prompt",
    "completion",
    "text",
    "tools",
    "role",
    "content",
    "conversations",
    "x",
]
ROLES = ["system", "user", "assistant", "tool", "human", "gpt", "", "USER"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", " ", "\u2028", "\ud800"[:0], "é", "\x00"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
turns = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(ROLES) | json_values,
        "content": st.text(max_size=20) | json_values,
        "tool_calls": st.lists(json_values, max_size=2) | json_values,
    },
)
# records near the formats mlx-lm reads, where the checks branch
records = st.one_of(
    st.fixed_dictionaries(
        {"messages": st.lists(turns | json_values, max_size=5)}, optional={"tools": json_values}
    ),
    st.fixed_dictionaries(
        {
            "prompt": st.text(max_size=10) | json_values,
            "completion": st.text(max_size=10) | json_values,
        }
    ),
    st.fixed_dictionaries({"text": st.text(max_size=10) | json_values}),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=5),
)


def _dump(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")


# a line of a user's file: a record, JSON that is not an object, broken JSON, raw bytes
lines = st.one_of(
    records.map(_dump),
    records.map(_dump),
    json_values.map(_dump),
    records.map(_dump).flatmap(lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda n: b[:n])),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.sampled_from(
        [b"", b"   ", b"\xef\xbb\xbf{}", b"[", b"{", b"[" * 3000, b'{"a":' * 3000, b"\r"]
    ),
)
files = st.lists(lines, max_size=8).map(lambda ls: b"\n".join(ls) + b"\n")

LINE_CODES = {
    "invalid-json", "invalid-utf8", "missing-key", "bad-type", "bad-role", "empty-content",
    "role-order", "no-assistant", "last-turn", "content-parts", "unknown-key", "duplicate",
    "leakage", "blank-line",
}  # fmt: skip


# ---------------------------------------------------------------- the dataset validator


@FUZZ
@given(
    train=files,
    valid=st.none() | files,
    names=st.sets(st.sampled_from(["test", "val", "extra"]), max_size=2),
)
def test_the_validator_never_crashes_and_names_every_place(
    train: bytes, valid: bytes | None, names: set[str]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "train.jsonl").write_bytes(train)
        if valid is not None:
            (folder / "valid.jsonl").write_bytes(valid)
        for name in names:
            (folder / f"{name}.jsonl").write_bytes(train[::-1])
        report = validate_dataset(folder, batch_size=2)
        n_lines = {p.name: len(_reference_lines(p.read_bytes())) for p in folder.iterdir()}
    assert not [f for f in report.findings if f.code == "internal"], report.format_findings()
    for f in report.findings:
        assert f.severity in ("error", "warning") and f.code and f.message
        place = Path(f.file)
        assert place == folder or place.parent == folder, f
        if f.code in LINE_CODES:
            assert 1 <= f.line <= n_lines[place.name], f.format()
        assert f.format().startswith(f"{f.file}:{f.line}: " if f.line else f"{f.file}: ")
    # every line that is not a JSON object is an error on that line
    for number, raw in enumerate(train.split(b"\n")[:-1], start=1):
        if raw.strip() and isinstance(parse_line(raw, number), RecordError):
            assert any(
                f.line == number and f.file.endswith("train.jsonl") and f.severity == "error"
                for f in report.findings
            )


@FUZZ
@given(record=records, keys=st.sampled_from(["chat", "completions", "text"]))
def test_check_record_takes_any_object(record: Any, keys: str) -> None:
    for severity, code, message in check_record(record, keys):
        assert severity in ("error", "warning") and code and message


@FUZZ
@given(raw=st.binary(max_size=200) | lines)
def test_parse_line_never_raises(raw: bytes) -> None:
    out = parse_line(raw, 7)
    assert isinstance(out, dict) or (isinstance(out, RecordError) and out.line == 7 and out.message)


# ---------------------------------------------------------------- the JSONL index


def _reference_lines(data: bytes) -> list[bytes]:
    """What the index promises: lines split on \\n, no extra line after a final newline, \\r\\n trimmed."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p[:-1] if p.endswith(b"\r") else p for p in parts]


@FUZZ
@given(
    data=st.lists(lines | st.binary(max_size=30), max_size=12).map(lambda ls: b"\n".join(ls))
    | st.binary(max_size=300),
    trailing=st.booleans(),
    chunk=st.integers(1, 64),
    needle=st.text(alphabet=string.ascii_letters + '"é{}: ', min_size=1, max_size=4),
)
def test_the_index_agrees_with_a_plain_split(
    data: bytes, trailing: bool, chunk: int, needle: str
) -> None:
    if trailing:
        data += b"\n"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.jsonl"
        path.write_bytes(data)
        expected = _reference_lines(data)
        with JsonlIndex(path, chunk_size=chunk) as index:
            assert index.wait(timeout=30)
            assert index.error is None
            assert len(index) == len(expected)
            for i, line in enumerate(expected):
                assert index.line_bytes(i) == line
                rec = index.record(i)
                assert isinstance(rec, dict) or (isinstance(rec, RecordError) and rec.line == i + 1)
                assert isinstance(index.line(i), str)
            if expected:
                assert index.line_bytes(-1) == expected[-1]
            with pytest.raises(IndexError):
                index.line_bytes(len(expected))
            search = index.search(needle)
            assert search.wait(timeout=30) and search.error is None
            spellings = {
                needle,
                json.dumps(needle, ensure_ascii=False)[1:-1],
                json.dumps(needle)[1:-1],
            }
            wanted = [
                i
                for i, line in enumerate(expected)
                if any(s.lower().encode() in line.lower() for s in spellings)
            ]
            assert list(search.matches) == wanted


# ---------------------------------------------------------------- the YAML loader

FLAT_KEYS = [s.config_field for s in SETTINGS] + [
    "config",
    "lora_parameters",
    "optimizer_config",
    "lr_schedule",
    "bogus_key",
]
yaml_values = st.one_of(
    json_values,
    st.sampled_from(["1e-5", "2e-4", "-1", "0", "8GB", "lots", "cosine_decay", "400:2e-5,100:1e-5", ".inf", ".nan"]),
    st.fixed_dictionaries({}, optional={
        "rank": json_values, "scale": json_values, "alpha": json_values, "dropout": json_values,
        "keys": json_values, "name": st.sampled_from(["cosine_decay", "linear_schedule", "x"]) | json_values,
        "arguments": json_values, "warmup": json_values, "adam": json_values, "path": json_values,
    }),
)  # fmt: skip
documents = st.one_of(
    st.dictionaries(st.sampled_from(FLAT_KEYS), yaml_values, max_size=5).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True)
    ),
    json_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.text(alphabet=string.printable + "é\u2028\x00\t", max_size=120),
    st.sampled_from(
        [
            "a: [1\n",
            "model: m\n  bad: indent\n",
            "- 1\n- 2\n",
            "&a [*a]\n",
            "!!python/object:os.system x\n",
            "a: *b\n",
        ]
    ),
)


@FUZZ
@given(text=documents, raw=st.binary(max_size=40))
def test_the_yaml_loader_never_crashes_and_names_the_file_and_key(text: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.yaml"
        for payload in (text.encode("utf-8", "surrogatepass"), raw):
            path.write_bytes(payload)
            try:
                cfg = load_config(path)
            except ConfigError as e:
                said = str(e)
                assert str(path) in said, said
                # a key or a line, unless the file as a whole is wrong (not UTF-8, not a mapping)
                assert e.field or re.search(
                    rf"{re.escape(str(path))}:\d+|key|top level|UTF-8", said
                ), said
                assert "Traceback" not in said
            else:
                assert isinstance(cfg, TrainConfig)
                cfg.validate()
