"""Which data folder a config trains on, as the dashboard's dataset tools must see it.

An empty data field or "demo" means the bundled demo set, exactly as the engine reads it
(`mlxtui.demo_data.demo_data_dir()`), never a folder called ./demo.
"""

from __future__ import annotations

from pathlib import Path

from mlxtui.core.config import TrainConfig

DEMO_NAMES = (None, "", "demo")


def data_folder(config: TrainConfig) -> Path:
    if config.data in DEMO_NAMES:
        from mlxtui.demo_data import demo_data_dir

        return demo_data_dir()
    return Path(str(config.data)).expanduser()
