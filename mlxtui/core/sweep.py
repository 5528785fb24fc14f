"""Sweep files: a base config and the overrides of each run, checked and expanded; the queue's
state on disk (sweep.json).

    name: lr-rank                    # optional: the file's name without .yaml
    base: base.yaml                  # a YAML config (as for `mlxtui train --config`), or inline:
    # base: {model: demo, iters: 40, config: base.yaml}   (settings by name, as the flags)
    grid:                            # every combination, the last key varying fastest
      learning_rate: [1e-4, 2e-4]
      lora_rank: [4, 8]
    runs:                            # and/or a list of override sets (each crossed with the grid)
      - {num_layers: 4}
      - {num_layers: 8, name: deep}
    sweep_dir: sweeps/lr-rank        # optional: where sweep.json and best.yaml go

Keys are the settings of `config.SETTINGS`, written as their name (`lora_rank`), their flag
(`lora-rank`, `--lora-layers`) or their YAML key (`lora_parameters.rank`); every value is
checked the way the flag or the form field would check it, and an error names the file, the
line and the key. Expansion is deterministic: the same file gives the same runs, in the same
order, with the same names.

The state file lists each run with its status and run folder and is rewritten atomically after
every change, so a sweep killed at any moment continues where it was (sweep_runner.py).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlxtui.core.config import (
    FIELD_NAMES,
    SETTINGS,
    ConfigError,
    TrainConfig,
    from_dict,
    from_settings,
    load_yaml,
    setting,
    validate_field,
)

STATE_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"
BEST_FILE = "best.yaml"
SUMMARY_FILE = "summary.md"
STATE_VERSION = 1
TOP_KEYS = ("name", "base", "grid", "runs", "sweep_dir")
# statuses of a run in the queue
PENDING, RUNNING, DONE, STOPPED, FAILED, SKIPPED = "pending", "running", "done", "stopped", "failed", "skipped"
# what a sweep may not set, and why (a setting that is accepted must act)
REFUSED = {
    "run_name": "the sweep names each run (a `name:` in a runs entry names that run)",
    "resume_run": "the sweep resumes its own runs; to continue a sweep run it again",
    "adapter_path": "each run keeps its adapter in its run folder; one shared adapter_path would be "
    "overwritten by every run (the best run's config is written to best.yaml)",
    "train": "a sweep trains every run",
}
# short words for run names: lr2e-4-rank8 reads better than learning_rate2e-4-lora_rank8
SHORT = {
    "learning_rate": "lr",
    "lora_rank": "rank",
    "lora_scale": "scale",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "num_layers": "layers",
    "batch_size": "batch",
    "max_seq_length": "seq",
    "grad_accumulation_steps": "accum",
    "grad_checkpoint": "ckpt",
    "iters": "iters",
    "epochs": "epochs",
    "warmup": "warmup",
    "seed": "seed",
    "fine_tune_type": "",
    "optimizer": "",
    "lr_schedule_name": "",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SweepError(ConfigError):
    """A sweep file or sweep folder that cannot be used: where, what, and what to do."""


# ---------------------------------------------------------------- keys


def _key_table() -> dict[str, str]:
    """Every spelling of a setting -> its name: name, flag (with or without --, - or _), YAML key."""
    table: dict[str, str] = {}
    for spec in SETTINGS:
        table[spec.name] = spec.name
        for flag in spec.flags:
            table[flag.lstrip("-").replace("-", "_")] = spec.name
        table[spec.yaml_key] = spec.name
    for name in FIELD_NAMES:  # every TrainConfig field is a setting; kept for safety
        table.setdefault(name, name)
    return table


def setting_name(key: Any, where: str) -> str:
    """The settings-table name of a sweep key, or SweepError naming the nearest known key."""
    import difflib

    if not isinstance(key, str):
        raise SweepError(f"key {key!r} is not a setting name", where=where)
    table = _key_table()
    normal = key.strip().lstrip("-").replace("-", "_")
    if key in table:
        return table[key]
    if normal in table:
        return table[normal]
    near = difflib.get_close_matches(normal, list(table), n=1, cutoff=0.5)
    hint = f"; did you mean '{near[0]}'?" if near else " (the settings are listed by `mlxtui train --help`)"
    raise SweepError(f"unknown setting '{key}'{hint}", where=where)


def check_value(name: str, raw: Any, where: str) -> Any:
    """A sweep value checked as its flag or form field would be; the parsed value."""
    if name in REFUSED:
        raise SweepError(f"cannot be set in a sweep: {REFUSED[name]}", name, where)
    spec = setting(name)
    if spec.kind == "mapping":
        if raw is not None and not isinstance(raw, dict | list):
            raise SweepError(f"must be a mapping, not {type(raw).__name__}", name, where)
        return raw
    value, error = validate_field(name, raw)
    if error:
        raise SweepError(error, name, where)
    return value


# ---------------------------------------------------------------- the file


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: its name, the settings it changes, and the full config."""

    label: str
    overrides: dict[str, Any]
    config: TrainConfig


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    sweep_dir: Path
    base: TrainConfig
    runs: tuple[SweepRun, ...]

    def run(self, label: str) -> SweepRun:
        for r in self.runs:
            if r.label == label:
                return r
        raise KeyError(label)


class _Lines:
    """Line numbers of the keys of a YAML file (for file:line errors)."""

    def __init__(self, path: Path, text: str) -> None:
        import yaml

        from mlxtui.core.config import _mlx_lm_loader

        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        try:
            node = yaml.compose(text, Loader=_mlx_lm_loader())
        except yaml.YAMLError:
            node = None  # load_yaml reports the syntax error with its place
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: Any, prefix: tuple[Any, ...]) -> None:
        import yaml

        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = prefix + (k.value,)
                self.lines[key] = k.start_mark.line + 1
                self._walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = prefix + (i,)
                self.lines[key] = v.start_mark.line + 1
                self._walk(v, key)

    def at(self, *key: Any) -> str:
        while key and key not in self.lines:
            key = key[:-1]
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else str(self.path)


def load_sweep(path: str | Path, sweep_dir: str | Path | None = None) -> Sweep:
    """Read, check and expand a sweep file; SweepError (file:line, key, fix) on anything wrong."""
    p = Path(path)
    try:
        data = load_yaml(p)
    except ConfigError as e:
        raise SweepError(str(e)) from None
    lines = _Lines(p, p.read_text(encoding="utf-8"))
    for key in data:
        if key not in TOP_KEYS:
            raise SweepError(
                f"unknown key '{key}'; a sweep file has {', '.join(TOP_KEYS)} "
                "(settings go under base, grid or runs)",
                where=lines.at(key),
            )
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SweepError(
            f"name {name!r} must be letters, digits, '.', '_' or '-' (it names the sweep folder and the runs)",
            where=lines.at("name"),
        )
    base = _base(data.get("base"), p, lines)
    grid = _grid(data.get("grid"), lines)
    entries = _entries(data.get("runs"), grid, lines)
    if not grid and not entries:
        raise SweepError("has no runs: give grid: {setting: [values]} and/or runs: [{setting: value}]", where=str(p))
    runs = _expand(name, base, grid, entries, p, lines)
    if sweep_dir is None:
        raw_dir = data.get("sweep_dir")
        if raw_dir is not None and not isinstance(raw_dir, str):
            raise SweepError("sweep_dir must be a folder path", where=lines.at("sweep_dir"))
        sweep_dir = raw_dir or str(Path("sweeps") / name)
    return Sweep(name=name, path=p, sweep_dir=Path(sweep_dir), base=base, runs=tuple(runs))


def _base(raw: Any, path: Path, lines: _Lines) -> TrainConfig:
    """`mlxtui train`'s precedence: a YAML file over mlx-lm's defaults, inline settings as flags;
    only settings (neither a model, data nor a file) start from the quick-start profile."""
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        raw = {"config": raw}
    if not isinstance(raw, dict):
        raise SweepError("base must be a YAML config path or a mapping of settings", where=lines.at("base"))
    settings: dict[str, Any] = {}
    config_file: Path | None = None
    for key, value in raw.items():
        where = lines.at("base", key)
        if key == "config":
            if not isinstance(value, str):
                raise SweepError("config must be the path of a YAML config file", where=where)
            config_file = Path(value)
            if not config_file.is_absolute():
                config_file = path.parent / config_file  # beside the sweep file
            continue
        name = setting_name(key, where)
        if name in settings:
            raise SweepError(f"'{key}' sets {name} a second time", name, where)
        settings[name] = check_value(name, value, where)
    if config_file is not None:
        try:
            base = from_dict(load_yaml(config_file), base=TrainConfig(), where=str(config_file))
        except ConfigError as e:
            raise SweepError(str(e)) from None
        for name in REFUSED:
            if name != "train" and getattr(base, name) != getattr(TrainConfig(), name):
                raise SweepError(f"cannot be set in a sweep: {REFUSED[name]}", name, str(config_file))
    elif settings.get("model") in (None, "demo") and settings.get("data") is None:
        base = TrainConfig.quick_start()
    else:
        base = TrainConfig()
    try:
        return from_settings(settings, base=base, where=lines.at("base"))
    except ConfigError as e:
        raise SweepError(str(e)) from None


def _grid(raw: Any, lines: _Lines) -> dict[str, list[Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SweepError("grid must be a mapping of setting: [values]", where=lines.at("grid"))
    grid: dict[str, list[Any]] = {}
    for key, values in raw.items():
        where = lines.at("grid", key)
        name = setting_name(key, where)
        if name in grid:
            raise SweepError(f"'{key}' sets {name} a second time", name, where)
        if not isinstance(values, list) or not values:
            raise SweepError(f"give a list of values, e.g. {key}: [1e-4, 2e-4]", name, where)
        checked = [check_value(name, v, lines.at("grid", key, i)) for i, v in enumerate(values)]
        for i, v in enumerate(checked):
            if checked.index(v) != i:
                raise SweepError(f"the value {v!r} is listed twice", name, lines.at("grid", key, i))
        grid[name] = checked
    return grid


def _entries(raw: Any, grid: dict[str, list[Any]], lines: _Lines) -> list[tuple[str | None, dict[str, Any]]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise SweepError("runs must be a list of override mappings, e.g. [{num_layers: 4}]", where=lines.at("runs"))
    out: list[tuple[str | None, dict[str, Any]]] = []
    for i, entry in enumerate(raw):
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise SweepError(f"runs[{i}] must be a mapping of setting: value", where=lines.at("runs", i))
        label: str | None = None
        overrides: dict[str, Any] = {}
        for key, value in entry.items():
            where = lines.at("runs", i, key)
            if key == "name":
                if not isinstance(value, str) or not _NAME_RE.match(value):
                    raise SweepError(f"runs[{i}] name {value!r} must be letters, digits, '.', '_' or '-'", where=where)
                label = value
                continue
            name = setting_name(key, where)
            if name in grid:
                raise SweepError(f"{name} is in the grid too; give it in one place", name, where)
            if name in overrides:
                raise SweepError(f"'{key}' sets {name} a second time in runs[{i}]", name, where)
            overrides[name] = check_value(name, value, where)
        out.append((label, overrides))
    return out


def _expand(
    name: str,
    base: TrainConfig,
    grid: dict[str, list[Any]],
    entries: list[tuple[str | None, dict[str, Any]]],
    path: Path,
    lines: _Lines,
) -> list[SweepRun]:
    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())] or [{}]
    grid_keys = [k for k in grid if len(grid[k]) > 1]
    plan: list[tuple[str | None, int | None, dict[str, Any]]] = []
    for i, (label, overrides) in enumerate(entries or [(None, {})]):
        for point in points:
            named = label
            if label is not None and len(points) > 1:
                named = f"{label}-{_words(point, grid_keys)}"  # a named entry crossed with the grid
            plan.append((named, i if entries else None, overrides | point))
    varying = _varying([o for _, _, o in plan])
    runs: list[SweepRun] = []
    seen: dict[str, str] = {}
    labels: set[str] = set()
    for label, entry, overrides in plan:
        where = lines.at("runs", entry) if entry is not None else lines.at("grid")
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key in seen:
            raise SweepError(f"two runs have the same settings ({seen[key]} and this one); remove one", where=where)
        if label is None:
            words = _words(overrides, varying)
            label = f"{name}-{words}" if words else name
        base_label, n = label, 1
        while label in labels:
            n += 1
            label = f"{base_label}-{n}"
        labels.add(label)
        seen[key] = label
        try:
            config = from_settings(overrides, base=base, where=f"{where}: run {label}")
        except ConfigError as e:
            raise SweepError(str(e)) from None
        runs.append(SweepRun(label=label, overrides=overrides, config=config))
    return runs


def _varying(overrides: list[dict[str, Any]]) -> list[str]:
    """The settings whose value differs between runs, in the order they first appear."""
    keys: list[str] = []
    for o in overrides:
        for k in o:
            if k not in keys:
                keys.append(k)
    return [k for k in keys if len({json.dumps(o.get(k), default=str) for o in overrides}) > 1]


def _words(overrides: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for k in keys:
        if k not in overrides:
            continue
        parts.append(f"{SHORT.get(k, k)}{fmt_value(overrides[k])}")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        mantissa, exponent = f"{v:.3e}".split("e")
        sci = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return min(f"{v:g}", sci, key=len)  # 2e-4, not 0.0002; 0.5, not 5e-1
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


# ---------------------------------------------------------------- the queue on disk


@dataclass
class RunState:
    """One run's place in the queue (what sweep.json keeps per run)."""

    label: str
    overrides: dict[str, Any]
    status: str = PENDING
    run_dir: str | None = None
    message: str = ""
    estimate_bytes: int | None = None
    verdict: str | None = None  # the memory estimate's: "fits" | "tight" | "will swap" | None
    attempts: int = 0  # times the run was started (a resume counts)
    resumed_from: list[int] = field(default_factory=list)  # steps it was resumed at
    abandoned: list[str] = field(default_factory=list)  # folders of attempts killed before a checkpoint

    @property
    def flagged(self) -> bool:
        return self.verdict == "will swap"


@dataclass
class SweepState:
    name: str
    file: str
    base: dict[str, Any]
    runs: list[RunState]
    created: float = field(default_factory=time.time)
    version: int = STATE_VERSION
    current: str | None = None  # the run this process is training now (None between runs)

    def get(self, label: str) -> RunState:
        for r in self.runs:
            if r.label == label:
                return r
        raise KeyError(label)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (PENDING, RUNNING, DONE, STOPPED, FAILED, SKIPPED)}
        for r in self.runs:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    @property
    def finished(self) -> bool:
        return all(r.status in (DONE, FAILED, SKIPPED) for r in self.runs)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepState:
        runs = [RunState(**r) for r in data["runs"]]
        return cls(
            name=data["name"],
            file=data["file"],
            base=data["base"],
            runs=runs,
            created=data.get("created", time.time()),
            version=data.get("version", STATE_VERSION),
            current=data.get("current"),
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def state_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / STATE_FILE


def read_state(sweep_dir: str | Path) -> SweepState | None:
    path = state_path(sweep_dir)
    if not path.is_file():
        return None
    try:
        return SweepState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SweepError(
            f"{path}: not a sweep state mlxtui wrote ({e}); move it away or give another sweep_dir"
        ) from None


def write_state(sweep_dir: str | Path, state: SweepState) -> None:
    from mlxtui.core.fileio import atomic_write_text

    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(state_path(sweep_dir), state.to_json())


class SweepLock:
    """One process at a time drives a sweep folder: an advisory lock on `sweep.lock`, which
    the system drops when the holder dies (kill -9 included), so a stale lock never blocks."""

    def __init__(self, sweep_dir: str | Path) -> None:
        import fcntl
        import os

        folder = Path(sweep_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_FILE
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise SweepError(
                f"{folder}: another mlxtui (pid {holder}) is running this sweep; wait for it, or "
                "stop it (Ctrl-C there, or s on its sweep screen) and start it here again"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def open_state(sweep: Sweep, write: bool = True) -> SweepState:
    """The sweep's queue: the one in its folder when there is one (a restart continues it),
    else a new one (written there unless `write` is off). A folder holding another sweep is
    refused, never overwritten."""
    base = json.loads(_canonical(sweep.base.to_mlx_lm_dict()))
    old = read_state(sweep.sweep_dir)
    if old is None:
        state = SweepState(
            name=sweep.name,
            file=str(sweep.path.resolve()),
            base=base,
            runs=[RunState(label=r.label, overrides=json.loads(_canonical(r.overrides))) for r in sweep.runs],
        )
        if write:
            write_state(sweep.sweep_dir, state)
        return state
    mine = {r.label: _canonical(r.overrides) for r in sweep.runs}
    theirs = {r.label: _canonical(r.overrides) for r in old.runs}
    problems = []
    if _canonical(old.base) != _canonical(base):
        changed = sorted(k for k in set(base) | set(old.base) if _canonical(base.get(k)) != _canonical(old.base.get(k)))
        problems.append(f"the base config differs ({', '.join(changed)})")
    if mine != theirs:
        only_file = sorted(set(mine) - set(theirs)) + sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        only_dir = sorted(set(theirs) - set(mine))
        if only_file:
            problems.append(f"runs new or changed in the file: {', '.join(only_file)}")
        if only_dir:
            problems.append(f"runs only in the folder: {', '.join(only_dir)}")
    if problems:
        raise SweepError(
            f"{state_path(sweep.sweep_dir)} holds a sweep that differs from {sweep.path}: "
            + "; ".join(problems)
            + ". Its runs are kept: give the changed sweep another name (name: …) or sweep_dir"
        )
    return old
