"""Tests of mlxtui.core.memory: real samples on this machine, pressure rules, history trends."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import mlx.core as mx
import pytest
from fake_memory import fake_sample

from mlxtui.core.memory import (
    MemoryHistory,
    SystemMemoryProbe,
    classify_available,
    classify_psi,
    device_info,
    format_bytes,
    pressure_level,
    read_meminfo,
    read_psi,
)

GB = 1024**3


def test_real_sample_sees_mlx_allocation():
    probe = SystemMemoryProbe()
    before = probe.sample()
    a = mx.zeros((1024, 1024), dtype=mx.float32)  # 4 MiB
    mx.eval(a)
    after = probe.sample()
    assert after.mlx_active - before.mlx_active >= 4 * 1024 * 1024
    assert after.mlx_peak >= after.mlx_active
    assert 0 < after.system_available <= after.system_total
    assert after.system_used == after.system_total - after.system_available
    assert after.process_rss > 0
    assert 0 <= after.swap_used <= max(after.swap_total, after.swap_used)
    assert after.pressure in ("green", "yellow", "red")
    if Path("/proc/pressure/memory").exists():
        assert after.pressure_source == "/proc/pressure/memory"
    assert after.to_dict()["mlx_active"] == after.mlx_active
    del a


def test_sample_from_another_thread_matches():
    a = mx.ones((256, 256))
    mx.eval(a)
    main_value = mx.get_active_memory()
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(SystemMemoryProbe().sample().mlx_active))
    t.start()
    t.join()
    assert seen == [main_value]


def test_meminfo_agrees_with_psutil():
    import psutil

    info = read_meminfo()
    assert info is not None
    assert info["MemTotal"] == psutil.virtual_memory().total


def test_psi_parsing_and_thresholds(tmp_path):
    f = tmp_path / "memory"
    f.write_text(
        "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n"
        "full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n"
    )
    assert read_psi(f) == 12.5
    assert read_psi(tmp_path / "missing") is None
    assert classify_psi(0.0) == "green"
    assert classify_psi(12.5) == "yellow"
    assert classify_psi(41.0) == "red"
    level, source, value = pressure_level(8 * GB, 16 * GB, psi_path=f)
    assert (level, source, value) == ("yellow", str(f), 12.5)


def test_available_fallback_thresholds(tmp_path):
    assert classify_available(5 * GB, 10 * GB) == "green"
    assert classify_available(int(1.5 * GB), 10 * GB) == "yellow"
    assert classify_available(int(0.5 * GB), 10 * GB) == "red"
    level, source, _ = pressure_level(GB // 2, 10 * GB, psi_path=tmp_path / "none")
    assert (level, source) == ("red", "available/total")


def test_history_series_and_maxlen():
    h = MemoryHistory(maxlen=3)
    for i in range(5):
        h.append(fake_sample(float(i), swap_used=i))
    assert len(h) == 3
    assert h.series("swap_used") == [2, 3, 4]
    assert h.latest is not None and h.latest.timestamp == 4.0
    with pytest.raises(KeyError):
        h.series("nope")


def test_swap_growth_per_minute():
    h = MemoryHistory()
    assert h.swap_growth_per_minute() is None  # no samples, no trend
    h.append(fake_sample(999.5, swap_used=0))
    h.append(fake_sample(999.9, swap_used=10**9))
    assert h.swap_growth_per_minute() is None  # 0.4 s is too short a span to call a trend
    h = MemoryHistory()
    # 10 MB per second for 30 s -> 600 MB/min
    for t in range(31):
        h.append(fake_sample(1000.0 + t, swap_used=t * 10_000_000))
    assert h.swap_growth_per_minute() == pytest.approx(600_000_000, rel=1e-6)
    # flat swap afterwards: the last 60 s window slope falls
    for t in range(31, 200):
        h.append(fake_sample(1000.0 + t, swap_used=300_000_000))
    assert h.swap_growth_per_minute() == 0.0


def test_old_samples_leave_the_window():
    h = MemoryHistory()
    h.append(fake_sample(0.0, swap_used=0))
    h.append(fake_sample(100.0, swap_used=GB))
    assert h.swap_growth_per_minute() is None  # the old sample is out of the 60 s window
    h.append(fake_sample(101.0, swap_used=GB))
    assert h.swap_growth_per_minute() == 0.0


def test_history_is_safe_across_threads():
    h = MemoryHistory(maxlen=50)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                h.swap_growth_per_minute()
                h.series("swap_used")
                assert len(h.samples) <= 50
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(20_000):
        h.append(fake_sample(float(i), swap_used=i))
    stop.set()
    for t in readers:
        t.join()
    assert errors == []  # a bare deque raises "deque mutated during iteration" here
    assert h.series("swap_used")[-1] == 19_999


def test_device_info_has_memory():
    info = device_info()
    assert info["memory_size"] > 0
    assert info["name"]
    if mx.default_device() == mx.cpu:
        assert info["memory_source"] == "system RAM"


def test_format_bytes():
    assert format_bytes(0) == "0 B"
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KB"
    assert format_bytes(3 * GB + GB // 5) == "3.2 GB"
    assert format_bytes(-2048) == "-2.0 KB"
    assert format_bytes(None) == "—"


def test_sample_is_frozen():
    s = fake_sample(0.0)
    with pytest.raises(AttributeError):
        s.swap_used = 1  # type: ignore[misc]
    assert replace(s, swap_used=1).swap_used == 1
