"""Every flag given a wrong type or a value out of its range: one line naming the flag and what it
takes, exit status 2, before anything loads.

The train flags are walked from config.SETTINGS (the table the flags are made from); the other
commands' flags from the parser itself, so a flag added later is walked too.
"""

from __future__ import annotations

import argparse

import pytest

from mlxtui.cli.errors import FLAG_RANGES, _subparsers, range_text
from mlxtui.cli.main import build_parser, main
from mlxtui.core.config import SETTINGS

TRAIN_FLAGS = [s for s in SETTINGS if s.flags]
# settings whose text a rule checks (sizes, phases, reporters, KEY=VALUE)
CHECKED_TEXT = {
    "memory_limit", "cache_limit", "clear_cache_threshold", "lr_phases", "report_to", "optimizer_options",
}  # fmt: skip


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run mlxtui; it must refuse with status 2 and one line on stderr (returned)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert code == 2, (argv, code, captured.err)
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, (argv, captured.err)
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    "spec",
    [s for s in TRAIN_FLAGS if s.kind in ("int", "optional_int", "float", "optional_float")],
    ids=lambda s: s.name,
)
def test_a_train_number_flag_refuses_a_wrong_type_and_says_its_range(spec, capsys) -> None:
    for flag in spec.flags:
        for bad in ("abc", "1.5x", ""):
            line = _refusal(["train", "--model", "m", flag, bad], capsys)
            assert line.startswith("mlxtui train: --") and flag in line
            assert range_text(spec.minimum, spec.maximum) in line
    if spec.kind in ("int", "optional_int"):
        line = _refusal(["train", "--model", "m", spec.flags[0], "2.5"], capsys)
        assert "is not a whole number" in line


@pytest.mark.parametrize(
    "spec",
    [s for s in TRAIN_FLAGS if s.minimum is not None or s.maximum is not None],
    ids=lambda s: s.name,
)
def test_a_train_flag_out_of_range_names_the_flag_and_the_range(spec, capsys) -> None:
    whole = spec.kind in ("int", "optional_int")
    outside = []
    if spec.minimum is not None:
        outside.append(spec.minimum - (1 if whole else 0.5))
    if spec.maximum is not None:
        outside.append(spec.maximum + (1 if whole else 0.5))
    for value in outside:
        text = str(int(value)) if whole else repr(value)
        line = _refusal(["train", "--model", "m", spec.flags[0], text], capsys)
        assert line.startswith(f"mlxtui train: {spec.flags[0]}: "), line
        if spec.name == "max_grad_norm":
            assert "must be above 0" in line  # its own rule: 0 would clip everything
        else:
            assert range_text(spec.minimum, spec.maximum) in line, line


@pytest.mark.parametrize(
    "spec",
    [s for s in TRAIN_FLAGS if s.kind == "choice" or s.name in CHECKED_TEXT],
    ids=lambda s: s.name,
)
def test_a_train_choice_or_checked_text_refuses_nonsense(spec, capsys) -> None:
    line = _refusal(["train", "--model", "m", spec.flags[0], "no-such-thing!"], capsys)
    assert line.startswith(f"mlxtui train: {spec.flags[0]}: "), line
    for choice in spec.choices:
        assert choice in line


def test_the_yaml_key_gets_the_same_range(tmp_path, capsys) -> None:
    y = tmp_path / "run.yaml"
    y.write_text("model: m\nbatch_size: 5000\n")
    line = _refusal(["train", "--config", str(y)], capsys)
    assert line == f"mlxtui train: {y}: batch_size: must be from 1 to 4096"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for every command and sub-command but train (walked above)."""
    for name, sub in _subparsers(parser):
        if name in ("train", "lora"):
            continue
        yield (*path, name), sub
        yield from _commands(sub, (*path, name))


OTHER_FLAGS = [
    (words, action)
    for words, sub in _commands(build_parser())
    for action in sub._actions
    if action.option_strings and (action.choices or getattr(action.type, "__name__", "") in ("whole number", "number"))
]  # fmt: skip


def test_every_command_that_takes_numbers_is_walked() -> None:
    walked = {words[0] for words, _ in OTHER_FLAGS}
    assert {"eval", "bench", "generate", "convert", "fuse", "export", "data"} <= walked


@pytest.mark.parametrize(
    "words,action",
    OTHER_FLAGS,
    ids=lambda x: " ".join(x) if isinstance(x, tuple) else max(x.option_strings, key=len),
)
def test_every_other_flag_refuses_a_wrong_type_or_range(words, action, capsys) -> None:
    flag = max(action.option_strings, key=len)
    prog = "mlxtui " + " ".join(words)
    # the command's positional words go after the flag: the flag's refusal comes first
    if action.choices:
        line = _refusal([*words, flag, "no-such-thing"], capsys)
        assert line.startswith(f"{prog}: ") and flag in line and "invalid choice" in line
        assert all(str(c) in line for c in action.choices)
        return
    line = _refusal([*words, flag, "abc"], capsys)
    assert line.startswith(f"{prog}: ") and flag in line and "is not a" in line
    lo, hi = FLAG_RANGES.get((words[0], action.dest), (None, None))
    if getattr(action, "_positive", False) or (lo is None and "at least 1" in (action.help or "")):
        lo = 1
    for bad, bound in ((lo, "low"), (hi, "high")):
        if bad is None:
            continue
        value = bad - 1 if bound == "low" else bad + 1
        line = _refusal([*words, flag, str(value)], capsys)
        assert flag in line and range_text(lo, hi) in line, line


@pytest.mark.parametrize(
    "argv,flag,allowed",
    [
        (["data", "stats", ".", "--batch-size", "0"], "--batch-size", "at least 1"),
        (
            ["eval", "--adapter-path", "a", "--max-seq-length", "-3"],
            "--max-seq-length",
            "at least 1",
        ),
        (["generate", "--max-tokens", "0"], "--max-tokens", "at least 1"),
        (["generate", "--top-p", "1.5"], "--top-p", "from 0 to 1"),
        (["generate", "--temp", "-0.1"], "--temp", "at least 0"),
        (["bench", "--runs", "0"], "--runs", "at least 1"),
    ],
)
def test_out_of_range_values_of_other_commands(argv, flag, allowed, capsys) -> None:
    line = _refusal(argv, capsys)
    assert flag in line and allowed in line, line
