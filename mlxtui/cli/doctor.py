"""`mlxtui doctor`: check this machine for MLX fine-tuning and print what to do."""

from __future__ import annotations

import argparse
from typing import Any

SYMBOLS = {"ok": "✓", "warn": "!", "fail": "✗"}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("doctor", help="check this machine for MLX fine-tuning")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)
    return p


def format_report(report: Any) -> str:
    """An aligned table: symbol, name, value, then the advice on its own indented line."""
    width = max((len(f.name) for f in report.findings), default=0)
    lines = []
    for f in report.findings:
        lines.append(f"{SYMBOLS[f.status]} {f.name.ljust(width)}  {f.value}")
        if f.advice and f.status != "ok":
            lines.append(f"  {' ' * width}  → {f.advice}")
    counts = report.to_dict()["counts"]
    lines.append("")
    lines.append(f"{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failures")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mlxtui.core import doctor

    report = doctor.run_doctor()
    print(report.to_json() if getattr(args, "json", False) else format_report(report))
    return 0 if report.ok else 1
