"""Atomic writes: a failure at any moment leaves the previous file whole."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from mlxtui.core.fileio import (
    DiskFullError,
    atomic_save_safetensors,
    atomic_write,
    atomic_write_text,
)


def test_a_failed_write_leaves_the_previous_version_and_no_temp_file(tmp_path):
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "good: 1\n")

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == "good: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_a_full_disk_is_a_clear_error_naming_the_file(tmp_path):
    target = tmp_path / "adapters.safetensors"
    target.write_bytes(b"previous")

    def full(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=r"disk full while writing .*adapters.safetensors.*previous version is intact"):
        atomic_write(target, full)
    assert target.read_bytes() == b"previous"


def test_safetensors_are_written_whole(tmp_path):
    import mlx.core as mx

    path = tmp_path / "a.safetensors"
    atomic_save_safetensors(path, {"w": mx.ones((2, 3))})
    assert mx.load(str(path))["w"].shape == (2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]
