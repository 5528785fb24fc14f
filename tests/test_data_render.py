"""Rendering through the tiny model's ChatML template, with the loss mask mlx-lm uses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlx_lm.tokenizer_utils import load as load_tokenizer
from mlx_lm.tuner.datasets import create_dataset

from mlxtui.core.data import RenderError, count_tokens, render_example

CHAT = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ]
}
MULTI = {
    "messages": [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi, how can I help?"},
        {"role": "user", "content": "Two plus two?"},
        {"role": "assistant", "content": "Two plus two is four."},
    ]
}
COMPLETION = {"prompt": "Two plus two is", "completion": " four."}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(tiny_model_dir)


def mlx_lm_offset(record: dict, tokenizer: Any, mask_prompt: bool) -> tuple[int, int]:
    """(tokens, offset) straight from mlx-lm's dataset classes."""
    ds = create_dataset([record], tokenizer, SimpleNamespace(mask_prompt=mask_prompt))
    tokens, offset = ds.process(ds[0])
    return len(tokens), offset


@pytest.mark.parametrize(
    "record", [CHAT, MULTI, COMPLETION], ids=["chat", "multi-turn", "completions"]
)
def test_mask_matches_mlx_lm(record: dict, tokenizer: Any) -> None:
    ex = render_example(record, tokenizer, mask_prompt=True)
    tokens, offset = mlx_lm_offset(record, tokenizer, True)
    assert ex.tokens == tokens
    assert ex.prompt_tokens == offset
    assert ex.trained_tokens == tokens - offset
    assert not ex.approximate
    assert [s.trains for s in ex.segments] == [False, True]
    assert "".join(s.text for s in ex.segments) == ex.text
    # the untrained part, tokenized, is exactly the offset: the boundary is where mlx-lm puts it
    assert len(tokenizer.encode(ex.segments[0].text, add_special_tokens=False)) == offset


def test_chat_text_is_chatml(tokenizer: Any) -> None:
    ex = render_example(CHAT, tokenizer, mask_prompt=True)
    assert ex.text == (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>\n"
    )
    assert ex.segments[1].text == "The capital of France is Paris.<|im_end|>\n"
    multi = render_example(MULTI, tokenizer, mask_prompt=True)
    # only the LAST assistant turn trains, like mlx-lm: the first answer is part of the prompt
    assert "Hi, how can I help?" in multi.segments[0].text
    assert multi.segments[1].text == "Two plus two is four.<|im_end|>\n"


def test_no_mask_trains_everything(tokenizer: Any) -> None:
    ex = render_example(CHAT, tokenizer, mask_prompt=False)
    tokens, offset = mlx_lm_offset(CHAT, tokenizer, False)
    assert offset == 0
    assert ex.trained_tokens == ex.tokens == tokens
    assert len(ex.segments) == 1 and ex.segments[0].trains and ex.segments[0].text == ex.text
    assert ex.prompt_tokens > 0  # still reported, for stats


def test_text_format_appends_eos(tokenizer: Any) -> None:
    rec = {"text": "The quick brown fox."}
    ex = render_example(rec, tokenizer, mask_prompt=True)
    tokens, _ = mlx_lm_offset(rec, tokenizer, False)
    assert ex.tokens == tokens
    assert ex.text.endswith("<|im_end|>")
    assert ex.trained_tokens == ex.tokens and ex.segments[0].trains
    assert count_tokens(rec, tokenizer, "text") == (tokens, 0)


def test_count_tokens_fast_path(tokenizer: Any) -> None:
    for rec in (CHAT, MULTI, COMPLETION):
        ex = render_example(rec, tokenizer, mask_prompt=True)
        assert count_tokens(rec, tokenizer, ex.format) == (ex.tokens, ex.prompt_tokens)


def test_without_tokenizer_is_labelled_estimate() -> None:
    ex = render_example(CHAT, None, mask_prompt=True)
    assert ex.approximate
    assert ex.text.startswith("<|im_start|>system\n")
    assert ex.segments[1].text == "The capital of France is Paris.<|im_end|>\n"
    assert ex.tokens == -(-len(ex.text.encode()) // 4)


def test_custom_keys_and_errors(tokenizer: Any) -> None:
    from mlxtui.core.data import FormatKeys

    keys = FormatKeys(prompt_feature="q", completion_feature="a")
    ex = render_example(
        {"q": "Two plus two?", "a": "Four."}, tokenizer, mask_prompt=True, keys=keys
    )
    assert ex.format == "completions" and ex.segments[1].text.startswith("Four.")
    with pytest.raises(RenderError, match="unknown format"):
        render_example({"foo": 1}, tokenizer)
    with pytest.raises(RenderError):
        render_example({"messages": "not a list"}, tokenizer)
