"""mlxtui: a terminal dashboard for fine-tuning language models with MLX.

The Python API:

    from mlxtui import TrainConfig, TrainPipeline
    result = TrainPipeline(TrainConfig.quick_start(iters=50)).execute()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlxtui.core.blas import install_import_hook

__all__ = ["TrainConfig", "TrainPipeline", "TrainResult"]

if TYPE_CHECKING:
    from mlxtui.core.config import TrainConfig
    from mlxtui.core.training import TrainResult
    from mlxtui.pipeline import TrainPipeline

# Linux CPU: OpenBLAS is loaded the moment anything imports mlx (mlxtui.core.blas says why).
install_import_hook()


def __getattr__(name: str) -> Any:
    # Lazy, so `import mlxtui` (and the CLI's start) stays fast and MLX-free.
    if name == "TrainConfig":
        from mlxtui.core.config import TrainConfig

        return TrainConfig
    if name == "TrainPipeline":
        from mlxtui.pipeline import TrainPipeline

        return TrainPipeline
    if name == "TrainResult":
        from mlxtui.core.training import TrainResult

        return TrainResult
    raise AttributeError(name)
