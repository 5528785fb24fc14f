"""The shipped demo dataset: format, sizes, style and split hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxtui.demo_data import _generate, demo_data_dir

SPLITS = {"train": (280, 320), "valid": (25, 35), "test": (25, 35)}
GREETING = "Hi, Lumo Care here!"
SIGN_OFF = "— Lumo Care 🌱"


def _load(name: str) -> list[dict]:
    path = demo_data_dir() / f"{name}.jsonl"
    examples = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            examples.append(json.loads(line))
        except json.JSONDecodeError as e:
            pytest.fail(f"{path}:{n}: not valid JSON: {e}")
    return examples


def _user_questions(examples: list[dict]) -> set[str]:
    return {
        " ".join(m["content"].lower().split())
        for ex in examples
        for m in ex["messages"]
        if m["role"] == "user"
    }


def test_demo_data_dir_has_the_three_splits() -> None:
    folder = demo_data_dir()
    assert isinstance(folder, Path)
    assert folder.is_dir()
    for name in SPLITS:
        assert (folder / f"{name}.jsonl").is_file()


@pytest.mark.parametrize("name", list(SPLITS))
def test_split_size(name: str) -> None:
    low, high = SPLITS[name]
    assert low <= len(_load(name)) <= high


@pytest.mark.parametrize("name", list(SPLITS))
def test_chat_format_and_style(name: str) -> None:
    for i, ex in enumerate(_load(name)):
        where = f"{name}.jsonl example {i + 1}"
        assert set(ex) == {"messages"}, where
        messages = ex["messages"]
        roles = [m["role"] for m in messages]
        if roles[0] == "system":
            roles = roles[1:]
        # Strictly alternating user/assistant after an optional system prompt, ending on the assistant.
        assert roles and roles == ["user", "assistant"] * (len(roles) // 2), where
        for m in messages:
            assert set(m) == {"role", "content"}, where
            assert isinstance(m["content"], str) and m["content"].strip(), where
            if m["role"] == "assistant":
                assert m["content"].startswith(GREETING + " "), where
                assert m["content"].endswith(" " + SIGN_OFF), where
                body = m["content"][len(GREETING) : -len(SIGN_OFF)]
                assert len(body.split()) <= 60, where


def test_no_question_shared_between_splits() -> None:
    questions = {name: _user_questions(_load(name)) for name in SPLITS}
    assert not questions["train"] & questions["valid"]
    assert not questions["train"] & questions["test"]
    assert not questions["valid"] & questions["test"]


def test_no_duplicate_examples() -> None:
    lines = []
    for name in SPLITS:
        lines += (demo_data_dir() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(lines))


def test_committed_files_match_the_generator() -> None:
    for name, examples in _generate.build().items():
        path = demo_data_dir() / f"{name}.jsonl"
        assert path.read_text(encoding="utf-8") == _generate.render(examples), (
            f"{path} differs from the generator: run `python -m mlxtui.demo_data._generate`"
        )
