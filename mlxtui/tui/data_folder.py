"""Which data folder a config trains on, as the dashboard's dataset tools must see it.

"demo" (or an empty field) is resolved by core's one resolver (`core.datadir`), exactly as
the engine reads it: the bundled demo set, never a folder called ./demo. Unlike the engine,
a folder that does not exist yet is still returned: the dataset tools say so, or create it.
"""

from __future__ import annotations

from pathlib import Path

from mlxtui.core.config import TrainConfig
from mlxtui.core.datadir import is_demo, resolve_data_dir


def data_folder(config: TrainConfig) -> Path:
    if is_demo(config.data):
        return resolve_data_dir(config.data)
    return Path(str(config.data)).expanduser()
