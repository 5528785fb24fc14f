"""Render a record the way mlx-lm trains on it: the chat-templated text and which part carries loss.

mlx-lm (`tuner/datasets.py`) tokenizes the whole conversation with the model's chat template;
with `mask_prompt` the loss starts at an offset = the token count of the template applied to all
turns but the last (plus the generation prompt when the last turn is the assistant's). Text
records are encoded as they are, with EOS appended, and always train entirely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .formats import DEFAULT_KEYS, FormatKeys, detect_format


class RenderError(ValueError):
    """A record that cannot be rendered (wrong shape, or the chat template refused it)."""


@dataclass(frozen=True)
class Segment:
    text: str
    trains: bool  # True: these tokens are targets of the loss


@dataclass(frozen=True)
class RenderedExample:
    format: str
    text: str  # the full text the model sees
    segments: tuple[Segment, ...]  # concatenated, the segments give `text`
    tokens: int
    prompt_tokens: int  # tokens before the completion / last turn (mlx-lm's mask offset)
    trained_tokens: int  # tokens that carry loss under this mask_prompt setting
    mask_prompt: bool
    approximate: bool  # True: no tokenizer, counts are bytes/4 estimates

    @property
    def completion_tokens(self) -> int:
        return self.tokens - self.prompt_tokens


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: about 4 bytes a token for English BPE vocabularies."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def has_chat_template(tokenizer: Any) -> bool:
    flag = getattr(tokenizer, "has_chat_template", None)
    if isinstance(flag, bool):
        return flag
    return getattr(tokenizer, "chat_template", None) is not None


def to_messages(
    record: dict[str, Any], fmt: str, keys: FormatKeys = DEFAULT_KEYS
) -> list[dict[str, Any]]:
    """The conversation mlx-lm builds from a chat or completions record."""
    if fmt == "chat":
        messages = record.get(keys.chat_feature)
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) for m in messages)
        ):
            raise RenderError(
                f'"{keys.chat_feature}" must be a non-empty list of {{"role", "content"}} objects'
            )
        return messages
    if fmt == "completions":
        return [
            {"role": "user", "content": record.get(keys.prompt_feature)},
            {"role": "assistant", "content": record.get(keys.completion_feature)},
        ]
    raise RenderError(f"not a conversation format: {fmt}")


def _chatml(messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
    """ChatML, the demo model's template: used to show records when no tokenizer is loaded."""
    out = "".join(
        f"<|im_start|>{m.get('role', '')}\n{_content_text(m.get('content'))}<|im_end|>\n"
        for m in messages
    )
    return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal-style parts: keep the text ones
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return str(content)


def _template(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: Any,
    tokenize: bool,
    add_generation_prompt: bool = False,
) -> Any:
    try:
        return tokenizer.apply_chat_template(
            messages,
            tools=tools,
            tokenize=tokenize,
            add_generation_prompt=add_generation_prompt,
            return_dict=False,
        )
    except Exception as e:  # jinja raises its own errors ("roles must alternate", ...)
        raise RenderError(f"the chat template rejected this example: {e}") from e


def prompt_offset(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, fmt: str) -> int:
    """mlx-lm's mask offset: tokens of every turn but the last, with the generation prompt."""
    if fmt == "completions":
        add_gen = True
    else:
        add_gen = messages[-1].get("role") == "assistant"
    if len(messages) < 2 and not add_gen:
        return 0
    return len(_template(tokenizer, messages[:-1], tools, True, add_gen))


def count_tokens(
    record: dict[str, Any], tokenizer: Any, fmt: str, keys: FormatKeys = DEFAULT_KEYS
) -> tuple[int, int]:
    """(total tokens, prompt tokens) as mlx-lm computes them; the fast path for stats and validation."""
    if fmt == "text":
        ids = _encode_text(record, tokenizer, keys)
        return len(ids), 0
    messages = to_messages(record, fmt, keys)
    if not has_chat_template(tokenizer):
        raise RenderError(
            "the tokenizer has no chat template; chat and completions data need one (or use the text format)"
        )
    tools = record.get("tools")
    total = len(_template(tokenizer, messages, tools, True))
    return total, min(prompt_offset(tokenizer, messages, tools, fmt), total)


def _encode_text(record: dict[str, Any], tokenizer: Any, keys: FormatKeys) -> list[int]:
    text = record.get(keys.text_feature)
    if not isinstance(text, str):
        raise RenderError(f'"{keys.text_feature}" must be a string')
    try:
        ids = list(tokenizer.encode(text))
    except Exception as e:  # e.g. lone surrogates the Rust tokenizer cannot take
        raise RenderError(f"the tokenizer cannot encode this text: {e}") from e
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return ids


def render_example(
    record: dict[str, Any],
    tokenizer: Any = None,
    fmt: str | None = None,
    mask_prompt: bool = False,
    keys: FormatKeys = DEFAULT_KEYS,
) -> RenderedExample:
    """The text the model trains on and its (text, trains) segments.

    With a tokenizer, the text comes from its chat template and the counts are exact. Without one
    the text is rendered as ChatML and counts are estimates (`approximate=True`).
    """
    fmt = fmt or detect_format(record, keys)
    if fmt is None:
        raise RenderError(
            f"unknown format: expected {keys.describe()}; found keys {sorted(record)}"
        )
    if fmt == "text":
        return _render_text(record, tokenizer, keys)
    messages = to_messages(record, fmt, keys)
    tools = record.get("tools")
    if tokenizer is None:
        text = _chatml(messages)
        add_gen = fmt == "completions" or messages[-1].get("role") == "assistant"
        prompt = _chatml(messages[:-1], add_gen) if len(messages) > 1 or add_gen else ""
        tokens, prompt_tokens = approx_tokens(text), approx_tokens(prompt)
        approximate = True
    else:
        if not has_chat_template(tokenizer):
            raise RenderError(
                "the tokenizer has no chat template; chat and completions data need one (or use the text format)"
            )
        text = _template(tokenizer, messages, tools, False)
        ids = _template(tokenizer, messages, tools, True)
        tokens = len(ids)
        prompt_tokens = min(prompt_offset(tokenizer, messages, tools, fmt), tokens)
        add_gen = fmt == "completions" or messages[-1].get("role") == "assistant"
        prompt = _template(tokenizer, messages[:-1], tools, False, add_gen) if prompt_tokens else ""
        if not text.startswith(prompt):
            # Templates that rewrite earlier turns (e.g. drop reasoning): split where the tokens split.
            prompt = tokenizer.decode(ids[:prompt_tokens])
            text = prompt + tokenizer.decode(ids[prompt_tokens:])
        approximate = False
    completion = text[len(prompt) :]
    if mask_prompt:
        segments = tuple(s for s in (Segment(prompt, False), Segment(completion, True)) if s.text)
        trained = tokens - prompt_tokens
    else:
        segments = (Segment(text, True),)
        trained = tokens
    return RenderedExample(
        fmt, text, segments, tokens, prompt_tokens, trained, mask_prompt, approximate
    )


def _render_text(record: dict[str, Any], tokenizer: Any, keys: FormatKeys) -> RenderedExample:
    text = record.get(keys.text_feature)
    if not isinstance(text, str):
        raise RenderError(f'"{keys.text_feature}" must be a string')
    if tokenizer is None:
        n = approx_tokens(text) + 1  # + EOS, which mlx-lm appends
        return RenderedExample("text", text, (Segment(text, True),), n, 0, n, False, True)
    ids = _encode_text(record, tokenizer, keys)
    shown = tokenizer.decode(ids)
    # Masking does not apply to text records (mlx-lm refuses mask_prompt for them).
    return RenderedExample(
        "text", shown, (Segment(shown, True),), len(ids), 0, len(ids), False, False
    )
