"""Greedy answers to held-out prompts at each validation, with a safe point between tokens."""

from __future__ import annotations

from typing import Any

from mlxtui.core import events as ev
from mlxtui.core.progress import Reporter
from mlxtui.core.training.datasets import SamplePrompt

SAMPLE_MAX_TOKENS = 64


def answer_samples(
    model: Any, tokenizer: Any, prompts: list[SamplePrompt], reporter: Reporter
) -> list[ev.SamplePrediction]:
    """One greedy answer per prompt (what `mlx_lm.generate` with temperature 0 writes).

    A stop between two tokens raises `Interrupted` out of the phase: answers already written
    are dropped with it, since a partial set would not compare with the other validations.
    """
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    items = []
    with reporter.phase("samples", "sample answers", total=len(prompts)) as phase:
        for messages, prompt_text, reference in prompts:
            prompt = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            text = ""
            for chunk in stream_generate(
                model, tokenizer, prompt, max_tokens=SAMPLE_MAX_TOKENS, sampler=make_sampler(0.0)
            ):
                text += chunk.text
                phase.check()
            items.append(ev.SamplePrediction(prompt_text, reference, text.strip()))
            phase.advance()
    return items
