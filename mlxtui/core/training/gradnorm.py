"""The gradient's global norm, measured (and clipped when asked) inside mlx-lm's compiled step.

mlx-lm's `train()` compiles its step over [model.state, optimizer.state, mx.random.state] and
offers no hook for the gradients. The optimizer's `update` is the one place inside that step
that sees them, so the optimizer is built from a subclass that measures their global norm
there, clips them when `max_grad_norm` is set, and keeps the norm in its state under
`GRAD_NORM_KEY`: the compiled step then writes the norm out like any other state, and the loss
callback reads it after the step. The key is saved and restored with the rest of the state
(a resumed run continues exactly; it does not take part in the update).
"""

from __future__ import annotations

from typing import Any, cast

GRAD_NORM_KEY = "grad_norm"


def global_norm(gradients: Any) -> Any:
    """sqrt(sum of every gradient's squares), summed in float32 (what clip_grad_norm measures)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    leaves = cast(list[tuple[str, Any]], tree_flatten(gradients))
    squares = [g.astype(mx.float32).square().sum() for _, g in leaves]
    return mx.sqrt(sum(squares[1:], squares[0])) if squares else mx.array(0.0)


def watched_optimizer_class(base: type, max_grad_norm: float | None) -> type:
    """`base` (an mlx.optimizers class) whose `update` records the norm and clips."""
    import mlx.core as mx
    import mlx.optimizers as optim

    class Watched(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # In the state from the start, so the compiled step sees it among its inputs.
            self.state[GRAD_NORM_KEY] = mx.array(0.0, mx.float32)

        def update(self, model: Any, gradients: Any) -> None:
            if max_grad_norm is not None:
                gradients, norm = optim.clip_grad_norm(gradients, max_grad_norm)
            else:  # unclipped gradients stay bit for bit what they were
                norm = global_norm(gradients)
            self.state[GRAD_NORM_KEY] = norm.astype(mx.float32)
            super().update(model, gradients)

    Watched.__name__ = Watched.__qualname__ = f"Watched{base.__name__}"
    return Watched
