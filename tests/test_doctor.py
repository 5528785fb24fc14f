"""Tests of `mlxtui doctor` on this machine (Linux x86_64, CPU back-end, OpenBLAS installed)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys

import pytest

from mlxtui.cli.doctor import add_parser as add_doctor_parser
from mlxtui.cli.doctor import format_report
from mlxtui.cli.doctor import run as cmd_doctor
from mlxtui.core import doctor
from mlxtui.core.blas import blas_status
from mlxtui.core.doctor import (
    DoctorFinding,
    DoctorReport,
    check_architecture,
    check_disk,
    run_doctor,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux machine facts")


@pytest.fixture(scope="module")
def report() -> DoctorReport:
    return run_doctor()


def test_every_check_reports(report):
    names = [f.name for f in report.findings]
    for name in (
        "architecture", "os", "python", "mlx", "backend", "device", "memory",
        "available memory", "swap", "mlx-lm", "textual", "disk",
    ):  # fmt: skip
        assert name in names, name
    assert len(names) == len(set(names))
    assert all(f.status in ("ok", "warn", "fail") for f in report.findings)
    assert all(f.advice for f in report.findings if f.status != "ok")


@linux_only
def test_findings_on_this_machine(report):
    assert report.get("architecture").value == platform.machine()
    assert report.get("architecture").status == "ok"
    assert (
        report.get("os").value.startswith(("Debian", "Ubuntu", "Fedora", "Linux"))
        or "kernel" in report.get("os").value
    )
    assert report.get("mlx").value == importlib.metadata.version("mlx")
    assert report.get("backend").value.startswith("CPU")
    assert report.get("mlx-lm").value == importlib.metadata.version("mlx-lm")
    assert report.get("textual").value == importlib.metadata.version("textual")
    blas = report.get("blas")
    assert blas is not None and blas.value.startswith(blas_status().kind)
    assert "libopenblas" in blas.value and blas.status == "ok"
    gflops = float(blas.value.rsplit(", ", 1)[1].split(" GFLOP/s")[0])  # measured, not asserted fast
    assert gflops > 0
    assert report.ok


def test_json_shape(report):
    data = json.loads(report.to_json())
    assert set(data) == {"ok", "counts", "findings"}
    assert data["ok"] is report.ok
    assert sum(data["counts"].values()) == len(data["findings"])
    for f in data["findings"]:
        assert set(f) == {"name", "status", "value", "advice"}


def test_table_is_aligned(report):
    text = format_report(report)
    rows = [line for line in text.splitlines() if line and line[0] in "✓!✗"]
    assert len(rows) == len(report.findings)
    width = max(len(f.name) for f in report.findings)
    for row, f in zip(rows, report.findings, strict=True):
        assert row[2 : 2 + width].rstrip() == f.name
        assert row[2 + width + 2 :] == f.value
    assert text.splitlines()[-1].endswith("failures")


def test_failures_make_exit_code_one(capsys, monkeypatch):
    bad = DoctorReport((DoctorFinding("mlx", "fail", "not installed", "install it"),))
    monkeypatch.setattr(doctor, "run_doctor", lambda: bad)
    assert cmd_doctor(argparse.Namespace(json=False)) == 1
    out = capsys.readouterr().out
    assert "✗ mlx  not installed" in out and "→ install it" in out


def test_cli_parser_and_json_output(capsys):
    parser = argparse.ArgumentParser()
    add_doctor_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", "--json"])
    code = args.func(args)
    data = json.loads(capsys.readouterr().out)
    assert code == (0 if data["ok"] else 1)


def test_intel_mac_is_a_failure(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    f = check_architecture()
    assert f.status == "fail" and "arm64" in f.advice


def test_disk_check_walks_up_to_an_existing_folder(tmp_path):
    f = check_disk(tmp_path / "not" / "yet" / "made")
    assert f.status in ("ok", "warn") and "free in" in f.value


def test_a_crashing_check_becomes_a_failure():
    def boom():
        raise RuntimeError("kaput")

    (f,) = doctor._safe("x", boom)
    assert f.status == "fail" and "kaput" in f.value
