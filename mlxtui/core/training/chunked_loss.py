"""Per-token cross-entropy that never builds the whole logits tensor.

With a 128k-150k vocabulary (Llama 3, Qwen) the logits of one batch are the largest arrays of a
step: 4 x 2048 x 128256 in bf16 is 2.1 GB, and autodiff keeps them, their float32 softmax and
their gradient alive together. Here the model's body gives the hidden states; the output
projection and the cross-entropy run on chunks of tokens with their own gradient
(`chunked_ce`), chained so that only one chunk's logits exist at a time, forward and backward.

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
    return chunked_ce(head, head_fn, h, targets, rows)


def chunked_ce(head: Any, head_fn: Callable[[Any, Any], Any], h: Any, targets: Any, rows: int) -> Any:
    """Per-token cross-entropy of head_fn(head, h) against targets, `rows` positions at a time.

    A custom VJP: the forward keeps only the per-token logsumexp (float32, batch x length);
    the backward recomputes one chunk's logits, turns them into their gradient
    (softmax - one-hot, times the cotangent) and folds that into the hidden-state gradient
    (and the head's, when it is trained) before the next chunk starts. MLX evaluates a graph
    breadth-first (up to MLX_BFS_MAX_WIDTH=20 independent branches side by side), so
    independent chunks would all be alive together; each chunk's input is therefore made to
    depend (`mx.depends`) on the previous chunk's results, which forces one chunk at a time
    whether the step is compiled or not (no mx.eval is possible inside a compiled step).
    What stays above one chunk: the arrays of the ops MLX's scheduler runs ahead of the
    device (on the CPU ~8 chunk-sized arrays; a `memory_limit` makes MLX wait instead, ~3),
    and, with a trained head, its float32 gradient sum (kept and replaced once per chunk).
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten

    t = h.shape[1]
    starts = list(range(0, t, rows))
    params = head.trainable_parameters()  # empty unless the head is trained

    def logits_of(p: Any, h_c: Any) -> Any:
        head.update(p)
        return head_fn(head, h_c)

    def after(x: Any, prev: list[Any]) -> Any:
        return x if not prev else mx.depends(x, prev)

    @mx.custom_function
    def ce(h: Any, targets: Any, p: Any) -> tuple[Any, Any]:
        lses: list[Any] = []
        ces: list[Any] = []
        prev: list[Any] = []
        for s in starts:
            logits = logits_of(p, after(h[:, s : s + rows], prev)).astype(mx.float32)
            t_c = targets[:, s : s + rows]
            lse = mx.logsumexp(logits, axis=-1)
            loss = lse - mx.take_along_axis(logits, t_c[..., None], axis=-1)[..., 0]
            lses.append(lse)
            ces.append(loss)
            prev = [loss]
        head.update(params)
        return mx.concatenate(ces, axis=1), mx.concatenate(lses, axis=1)

    @ce.vjp
    def ce_vjp(primals: Any, cotangents: Any, outputs: Any) -> tuple[Any, Any, Any]:
        h, targets, p = primals
        g = cotangents[0]
        lse = outputs[1]
        pairs: Any = tree_flatten(p)
        names = [k for k, _ in pairs]
        flat = [v for _, v in pairs]
        d_h: list[Any] = []
        d_p: list[Any] | None = None
        prev: list[Any] = [lse]  # the backward starts once the forward is done
        for s in starts:
            h_c = after(h[:, s : s + rows], prev)
            t_c = targets[:, s : s + rows]

            def fwd(h_c: Any, *leaves: Any) -> Any:
                return logits_of(tree_unflatten(list(zip(names, leaves, strict=True))), h_c)

            logits = fwd(h_c, *flat)
            probs = mx.exp(logits.astype(mx.float32) - lse[:, s : s + rows, None])
            hit = mx.arange(logits.shape[-1]) == t_c[..., None]
            d_logits = mx.where(hit, probs - 1, probs) * g[:, s : s + rows, None]
            d_logits = d_logits.astype(logits.dtype)
            _, grads = mx.vjp(fwd, [h_c, *flat], [d_logits])
            d_h.append(grads[0])
            # the head's gradient summed in float32 (one bf16 matmul per chunk, not one in all)
            part = [x.astype(mx.float32) for x in grads[1:]]
            d_p = part if d_p is None else [a + b for a, b in zip(d_p, part, strict=True)]
            # the next chunk's input waits for this chunk's gradients: one chunk alive at a time
            prev = [grads[0], *d_p]
        head.update(params)
        d_flat = [d.astype(v.dtype) for d, v in zip(d_p or [], flat, strict=True)]
        d_tree = tree_unflatten(list(zip(names, d_flat, strict=True))) if names else p
        return mx.concatenate(d_h, axis=1), mx.zeros_like(targets), d_tree

    out: Any = ce(h, targets, params)
    return out[0]


def _vocab_size(model: Any) -> int:
    args = getattr(model, "args", None)
    vocab = getattr(args, "vocab_size", None)
    if isinstance(vocab, int) and vocab > 0:
        return vocab
    return int(model.model.embed_tokens.weight.shape[0])
