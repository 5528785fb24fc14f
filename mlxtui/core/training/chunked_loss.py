"""Per-token cross-entropy that never builds the whole logits tensor.

With a 128k-150k vocabulary (Llama 3, Qwen) the logits of one batch are the largest arrays of a
step: 4 x 2048 x 128256 in bf16 is 2.1 GB, and autodiff keeps them, their float32 softmax and
their gradient alive together. Here the model's body gives the hidden states; the output
projection and the cross-entropy run on chunks of tokens, each under `mx.checkpoint`, so the
backward pass recomputes one chunk's logits at a time instead of keeping all of them.

Only models whose forward is "hidden states, then lm_head or the tied embedding" (no logit
scaling or soft-capping) are split this way; the others take their logits whole
(`split_head` returns None for them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# mlx-lm model modules whose Model.__call__ is exactly: out = self.model(...); then
# embed_tokens.as_linear(out) when tied, else lm_head(out). Checked by reading mlx-lm 0.32.2.
_PLAIN_HEAD_MODULES = ("llama", "qwen2", "qwen3")

# Full logits smaller than this (bytes) are cheaper taken whole: chunking adds kernels.
CHUNK_ABOVE_BYTES = 256 << 20
# Logits of one chunk, in elements (16 Mi floats = 64 MB of float32; 131 tokens at 128k).
CHUNK_ELEMENTS = 1 << 24


def split_head(model: Any) -> tuple[Callable[[Any], Any], Any, Callable[[Any, Any], Any]] | None:
    """(body, head module, head function) of a plain-head model, else None.

    body(inputs) -> hidden states; head_fn(head, h) -> logits.
    """
    module = type(model).__module__.rsplit(".", 1)[-1]
    if module not in _PLAIN_HEAD_MODULES or not hasattr(model, "model"):
        return None
    args = getattr(model, "args", None)
    if getattr(args, "tie_word_embeddings", False):
        return (model.model, model.model.embed_tokens, lambda head, h: head.as_linear(h))
    if hasattr(model, "lm_head"):
        return (model.model, model.lm_head, lambda head, h: head(h))
    return None


def _ce(logits: Any, targets: Any) -> Any:
    """Cross-entropy per token in float32 (mlx-lm's is in the logits' dtype, then summed in float32)."""
    import mlx.core as mx

    logits = logits.astype(mx.float32)
    # under mx.checkpoint the targets are inputs of the function: no gradient for indices
    targets = mx.stop_gradient(targets)
    picked = mx.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return mx.logsumexp(logits, axis=-1) - picked


def token_losses(model: Any, inputs: Any, targets: Any, chunk_tokens: int | None = None) -> Any:
    """Cross-entropy of each target token, shape (batch, length), float32.

    Chunked when the model allows it and the whole logits would exceed CHUNK_ABOVE_BYTES
    (or when `chunk_tokens` is given: tests).
    """
    import mlx.core as mx

    parts = split_head(model)
    if parts is None:
        return _ce(model(inputs), targets)
    body, head, head_fn = parts
    h = body(inputs)
    b, t, _ = h.shape
    vocab = _vocab_size(model)
    if chunk_tokens is None:
        if b * t * vocab * h.dtype.size <= CHUNK_ABOVE_BYTES:
            return _ce(head_fn(head, h), targets)
        chunk_tokens = max(128, CHUNK_ELEMENTS // vocab)
    rows = max(1, chunk_tokens // b)  # chunk along the sequence, every row at once

    def chunk_ce(params: Any, h_c: Any, t_c: Any) -> Any:
        head.update(params)
        return _ce(head_fn(head, h_c), t_c)

    checkpointed = mx.checkpoint(chunk_ce)
    params = head.trainable_parameters()
    pieces = [
        checkpointed(params, h[:, s : s + rows], targets[:, s : s + rows])
        for s in range(0, t, rows)
    ]
    return mx.concatenate(pieces, axis=1)


def _vocab_size(model: Any) -> int:
    args = getattr(model, "args", None)
    vocab = getattr(args, "vocab_size", None)
    if isinstance(vocab, int) and vocab > 0:
        return vocab
    return int(model.model.embed_tokens.weight.shape[0])
