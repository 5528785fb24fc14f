"""What a run puts on the model before its first step: adapters, optimizer, adapter_config."""

from __future__ import annotations

from typing import Any

from mlxtui.core.config import ConfigError, TrainConfig, build_lr_schedule
from mlxtui.core.training.gradnorm import watched_optimizer_class


def apply_adapters(model: Any, config: TrainConfig) -> None:
    """Freeze the base and add LoRA/DoRA layers (or unfreeze the last blocks for full)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    n_layers = len(model.layers)
    if config.num_layers > n_layers:
        raise ConfigError(
            f"the model has {n_layers} layers but {config.num_layers} were asked; "
            f"use at most {n_layers} (or -1 for all)",
            "num_layers",
        )
    if config.fine_tune_type == "full":
        for layer in model.layers[-max(config.num_layers, 0) :]:
            layer.unfreeze()
    else:
        params = dict(config.lora_parameters)
        params.pop("alpha", None)
        linear_to_lora_layers(
            model, config.num_layers, params, use_dora=config.fine_tune_type == "dora"
        )
        if config.fine_tune_type == "lora":
            # same parameters and adapter files, fewer and cheaper kernels (fast_lora.py)
            from mlxtui.core.training import fast_lora

            fast_lora.speed_up_lora(model)


# mlx-lm clears MLX's cache after a step whenever the cache holds more than its threshold, so
# its 0 means "clear after every step". Freeing and re-allocating every buffer each step cost
# 73 -> 42 ms per step at 4x256 on an H200 (issue 12). Our 0 means "never": the cache is kept
# between steps (MLX's cache_limit still bounds it, and the memory guard still watches it).
NEVER_CLEAR = 2**62


def clear_cache_threshold(config: TrainConfig) -> int:
    """The threshold handed to mlx-lm's trainer: the user's size, or never when it is 0."""
    return config.clear_cache_threshold if config.clear_cache_threshold > 0 else NEVER_CLEAR


def adapter_config_dict(config: TrainConfig, model_path: str) -> dict[str, Any]:
    """What mlx_lm.load(..., adapter_path) and mlx_lm.fuse read from adapter_config.json."""
    d = config.to_mlx_lm_dict()
    d["model"] = model_path
    d["fine_tune_type"] = config.fine_tune_type
    d["num_layers"] = config.num_layers
    d["lora_parameters"] = {k: v for k, v in config.lora_parameters.items() if k != "alpha"}
    return d


def build_optimizer(config: TrainConfig, total_iters: int) -> Any:
    import mlx.optimizers as optim

    classes = {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "muon": optim.Muon,
        "sgd": optim.SGD,
        "adafactor": optim.Adafactor,
    }
    lr = build_lr_schedule(config, total_iters)
    extra = dict(config.optimizer_config.get(config.optimizer, {}) or {})
    cls = watched_optimizer_class(classes[config.optimizer], config.max_grad_norm)
    return cls(learning_rate=lr, **extra)
