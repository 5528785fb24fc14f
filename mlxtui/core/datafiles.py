"""The data given as files (`train_data=`, `valid_data=`, `test_data=`) instead of a folder.

mlx-lm and the engine read a data folder holding train.jsonl, valid.jsonl and test.jsonl. The
guides' Python API names files instead (`TrainConfig(train_data="data/train.jsonl")`). Two cases:

- files named train.jsonl / valid.jsonl / test.jsonl in one folder: that folder is the data
  folder, as `--data` would name it (so a valid.jsonl beside a named train.jsonl is used, as
  mlx_lm.lora would use it);
- any other names or folders: the files are linked (or copied where links fail) under their
  split's name into a staging folder in mlxtui's cache, one per set of files, and that folder is
  the data folder. The run's config.yaml keeps both the files and the folder.

Nothing is dropped: a split whose file is given is the split that runs, and a folder given in
`data` as well must be the same folder, else the run is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from mlxtui.core.config import ConfigError, TrainConfig

SPLIT_FIELDS = (("train_data", "train"), ("valid_data", "valid"), ("test_data", "test"))


def staging_root() -> Path:
    from mlxtui.core.models import cache_root

    return cache_root() / "data-files"


def with_data_folder(config: TrainConfig) -> TrainConfig:
    """`config` with `data` naming the folder that holds the given split files."""
    given: dict[str, tuple[str, Path]] = {}
    for field_name, split in SPLIT_FIELDS:
        value = getattr(config, field_name)
        if value:
            given[split] = (field_name, Path(value).expanduser())
    if not given:
        return config
    for split, (field_name, path) in given.items():
        if not path.is_file():
            raise ConfigError(f"{path}: no such file; give the JSONL file of the {split} split", field_name)
    if config.train and "train" not in given:
        named = ", ".join(f for f, _ in given.values())
        raise ConfigError(
            f"{named} given without train_data: training needs the training file too "
            "(or turn train off to only test)",
            "train_data",
        )
    paths = {split: path.resolve() for split, (_f, path) in given.items()}
    folders = {p.parent for p in paths.values()}
    if len(folders) == 1 and all(p.name == f"{split}.jsonl" for split, p in paths.items()):
        folder = folders.pop()
    else:
        folder = _stage(paths)
    if config.data is not None and Path(config.data).expanduser().resolve() != folder:
        raise ConfigError(
            f"names the folder {config.data}, and {', '.join(f for f, _ in given.values())} name "
            f"files that make the folder {folder}; give a data folder or the files, not both",
            "data",
        )
    return config.with_values(data=str(folder))


def _stage(paths: dict[str, Path]) -> Path:
    """A folder of links named <split>.jsonl to the given files, the same for the same files."""
    key = "\n".join(f"{split}={paths[split]}" for split in sorted(paths))
    folder = staging_root() / hashlib.sha1(key.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        target = folder / f"{split}.jsonl"
        if target.is_symlink() or target.exists():
            target.unlink()
        source = paths.get(split)
        if source is None:
            continue  # a split not given is absent, not one left over from another run
        try:
            os.symlink(source, target)
        except OSError:
            shutil.copyfile(source, target)  # a file system without links
    return folder
