"""The train job's parts: batch plan, step loop, checkpoint store, datasets, the loss.

batches.py      which examples make each batch (length-grouped, exact on resume)
loop.py         TrainRun: the step loop around mlx_lm.tuner.trainer.train, safe points
checkpoints.py  atomic adapter saves, best, NaN rollback snapshot, resume state
datasets.py     the train/valid/test sets of a data folder, sample prompts
loss.py         the one loss-on-a-dataset function (validation, test, `mlxtui eval`)
samples.py      sample answers at each validation, a safe point between tokens
setup.py        adapters and optimizer put on the model before the first step
gradnorm.py     the optimizer subclass that measures (and clips) the gradient's norm
"""

from mlxtui.core.training.batches import BatchPlan, collate, eval_batches
from mlxtui.core.training.control import TrainControl
from mlxtui.core.training.datasets import load_datasets
from mlxtui.core.training.errors import TrainingError
from mlxtui.core.training.loop import TrainRun
from mlxtui.core.training.loss import evaluate_loss, perplexity, test_loss
from mlxtui.core.training.result import Prepared, TrainResult
from mlxtui.core.training.setup import adapter_config_dict, apply_adapters, build_optimizer

__all__ = [
    "BatchPlan",
    "Prepared",
    "TrainControl",
    "TrainResult",
    "TrainRun",
    "TrainingError",
    "adapter_config_dict",
    "apply_adapters",
    "build_optimizer",
    "collate",
    "eval_batches",
    "evaluate_loss",
    "load_datasets",
    "perplexity",
    "test_loss",
]
