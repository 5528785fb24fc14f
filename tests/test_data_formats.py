"""The three JSONL formats mlx-lm reads, with its key precedence and custom key names."""

from __future__ import annotations

from mlxtui.core.data import DEFAULT_KEYS, FormatKeys, detect_format, keys_from, split_paths


def test_detect_each_format() -> None:
    assert detect_format({"messages": [{"role": "user", "content": "hi"}]}) == "chat"
    assert detect_format({"messages": [], "tools": []}) == "chat"
    assert detect_format({"prompt": "a", "completion": "b"}) == "completions"
    assert detect_format({"text": "hello"}) == "text"


def test_detect_none_for_unknown_or_not_object() -> None:
    assert detect_format({"prompt": "only a prompt"}) is None
    assert detect_format({"foo": 1}) is None
    assert detect_format([1, 2]) is None
    assert detect_format("text") is None
    assert detect_format(None) is None


def test_precedence_matches_mlx_lm() -> None:
    # mlx-lm's create_dataset checks completions first, then chat, then text.
    assert detect_format({"prompt": "a", "completion": "b", "messages": []}) == "completions"
    assert detect_format({"messages": [], "text": "t"}) == "chat"


def test_custom_keys() -> None:
    keys = FormatKeys(
        prompt_feature="question",
        completion_feature="answer",
        text_feature="body",
        chat_feature="conv",
    )
    assert detect_format({"question": "q", "answer": "a"}, keys) == "completions"
    assert detect_format({"prompt": "q", "completion": "a"}, keys) is None
    assert detect_format({"body": "x"}, keys) == "text"
    assert detect_format({"conv": []}, keys) == "chat"
    assert keys.known_keys("completions") == {"question", "answer", "tools"}


def test_keys_from_config_like_objects() -> None:
    class Args:
        prompt_feature = "input"
        completion_feature = None

    k = keys_from(Args())
    assert k.prompt_feature == "input" and k.completion_feature == "completion"
    assert keys_from({"text_feature": "body"}).text_feature == "body"
    assert keys_from({}) == DEFAULT_KEYS


def test_split_paths(tmp_path) -> None:
    p = split_paths(tmp_path)
    assert [q.name for q in p.values()] == ["train.jsonl", "valid.jsonl", "test.jsonl"]
