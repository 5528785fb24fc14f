"""Check a data folder the way mlx-lm will read it and report every problem with file:line.

Nothing here raises on bad data and nothing writes: each problem becomes a Finding. Errors are
what makes `mlx_lm.lora` fail or train on garbage; warnings are what the user probably did not mean.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import DEFAULT_KEYS, ROLES, SPLITS, FormatKeys, detect_format, split_paths
from .index import RecordError, json_type, parse_line, scan_lines
from .prepare import PROMPT_COLUMNS, RESPONSE_COLUMNS
from .render import RenderError, count_tokens, has_chat_template

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total) over all files

MISNAMED = {
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "eval": "valid",
    "training": "train",
    "testing": "test",
}


# Roles of other chat formats (ShareGPT, OpenAI legacy) and the name mlx-lm's templates expect
ROLE_ALIASES = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "ai": "assistant",
    "function": "tool",
}


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    file: str
    line: int  # 1-based; 0 when the finding is about the whole file or folder
    message: str
    code: str = ""  # a stable short name of the kind of problem ("invalid-json", "leakage", ...)
    more: int = 0  # > 0: not one finding but "N more like this" past the per-kind cap

    def format(self) -> str:
        return f"{self.place()}: {self.severity}: {self.message}"

    def place(self, data_dir: str | Path | None = None) -> str:
        """`file:line` (the file relative to data_dir when inside it), or the file alone."""
        name = self.file
        if data_dir:
            try:
                name = str(Path(self.file).relative_to(data_dir)) or name
            except ValueError:
                pass
        return f"{name}:{self.line}" if self.line else name


@dataclass(frozen=True)
class FindingGroup:
    """Every finding of one kind (severity and code): how many, and the ones kept, in file order."""

    severity: str
    code: str
    count: int  # the findings past the per-kind cap included
    findings: tuple[Finding, ...]

    def places(self, first: int, data_dir: str | Path | None = None) -> str:
        """'train.jsonl:12, train.jsonl:15, train.jsonl:20 and 471 more'."""
        shown = [f.place(data_dir) for f in self.findings[:first]]
        rest = self.count - len(shown)
        return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")

    def headline(self, first: int = 3, data_dir: str | Path | None = None) -> str:
        return f"{self.severity} {self.code} x{self.count}: {self.places(first, data_dir)}"


@dataclass(frozen=True)
class ValidationReport:
    findings: tuple[Finding, ...]
    data_dir: str = ""
    examples: dict[str, int] = field(default_factory=dict)  # split -> readable records
    formats: dict[str, str | None] = field(default_factory=dict)  # split -> format mlx-lm will use

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def format_findings(self) -> str:
        return "\n".join(f.format() for f in self.findings)

    def groups(self) -> tuple[FindingGroup, ...]:
        """The findings by kind: errors first, then warnings, each kind where it first appears."""
        kinds: dict[tuple[str, str], list[Finding]] = {}
        counts: dict[tuple[str, str], int] = {}
        for f in self.findings:
            key = (f.severity, f.code or f.message)
            kinds.setdefault(key, [])
            counts[key] = counts.get(key, 0) + (f.more or 1)
            if not f.more:
                kinds[key].append(f)
        order = sorted(kinds, key=lambda k: k[0] != "error")  # stable: first appearance within
        return tuple(FindingGroup(k[0], k[1], counts[k], tuple(kinds[k])) for k in order)

    def format_grouped(self, first: int = 3) -> str:
        """One block per kind: a kind seen once is its finding's line; a kind seen more often is
        `severity code xN: the first places and N more`, then its first finding in full."""
        lines: list[str] = []
        for g in self.groups():
            if g.count == 1 and g.findings:
                lines.append(g.findings[0].format())
                continue
            lines.append(g.headline(first, self.data_dir))
            if g.findings:
                lines.append(f"  e.g. {g.findings[0].format()}")
        return "\n".join(lines)

    def to_json(self, first: int = 3) -> dict[str, Any]:
        """The report as plain data: the verdict, the groups and every finding kept."""
        return {
            "data_dir": self.data_dir,
            "ok": self.ok,
            "errors": sum(g.count for g in self.groups() if g.severity == "error"),
            "warnings": sum(g.count for g in self.groups() if g.severity == "warning"),
            "examples": dict(self.examples),
            "formats": dict(self.formats),
            "groups": [
                {
                    "severity": g.severity,
                    "code": g.code,
                    "count": g.count,
                    "first": [f.place() for f in g.findings[:first]],
                    "message": g.findings[0].message if g.findings else "",
                }
                for g in self.groups()
            ],
            "findings": [
                {
                    "severity": f.severity,
                    "file": f.file,
                    "line": f.line,
                    "code": f.code,
                    "message": f.message,
                }
                for f in self.findings
                if not f.more
            ],
        }

    def summary(self) -> str:
        counts = ", ".join(f"{s}: {n}" for s, n in self.examples.items())
        verdict = "OK" if self.ok else "NOT READY"
        n_errors = sum(f.more or 1 for f in self.errors)  # the ones past the cap counted too
        n_warnings = sum(f.more or 1 for f in self.warnings)
        return f"{verdict}: {n_errors} error(s), {n_warnings} warning(s) ({counts or 'no files'})"


Issue = tuple[str, str, str]  # (severity, code, message)


def _err(code: str, message: str) -> Issue:
    return ("error", code, message)


def _warn(code: str, message: str) -> Issue:
    return ("warning", code, message)


def check_record(record: dict[str, Any], fmt: str, keys: FormatKeys = DEFAULT_KEYS) -> list[Issue]:
    """Problems of one parsed record read as `fmt` (shape, roles, order, empty content, unknown keys)."""
    issues: list[Issue] = []
    unknown = sorted(k for k in record if k not in keys.known_keys(fmt))
    if unknown:
        shown = ", ".join(json.dumps(k) for k in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        issues.append(
            _warn("unknown-key", f"unknown key(s) {shown} in a {fmt} record: mlx-lm ignores them")
        )
    if fmt == "chat":
        issues += _check_chat(record.get(keys.chat_feature), keys.chat_feature)
        tools = record.get("tools")
        if tools is not None and not isinstance(tools, list):
            issues.append(
                _err(
                    "bad-type",
                    f'"tools" must be a list of function definitions, got {json_type(tools)}',
                )
            )
    elif fmt == "completions":
        for key, required in ((keys.prompt_feature, False), (keys.completion_feature, True)):
            value = record.get(key)
            if not isinstance(value, str):
                issues.append(_err("bad-type", f'"{key}" must be a string, got {json_type(value)}'))
            elif not value.strip():
                what = (
                    "nothing to learn" if required else "the model learns to answer an empty prompt"
                )
                issues.append(
                    (
                        ("error" if required else "warning"),
                        "empty-content",
                        f'empty "{key}": {what}',
                    )
                )
    elif fmt == "text":
        value = record.get(keys.text_feature)
        if not isinstance(value, str):
            issues.append(
                _err("bad-type", f'"{keys.text_feature}" must be a string, got {json_type(value)}')
            )
        elif not value.strip():
            issues.append(_err("empty-content", f'empty "{keys.text_feature}": nothing to learn'))
    return issues


def _check_chat(messages: Any, key: str) -> list[Issue]:
    if not isinstance(messages, list):
        return [
            _err(
                "bad-type",
                f'"{key}" must be a list of {{"role", "content"}} objects, got {json_type(messages)}',
            )
        ]
    if not messages:
        return [_err("empty-content", f'"{key}" is an empty list: nothing to learn')]
    issues: list[Issue] = []
    seen_user = seen_assistant = False
    roles: list[Any] = []
    for i, m in enumerate(messages):
        where = f"{key}[{i}]"
        if not isinstance(m, dict):
            issues.append(
                _err(
                    "bad-type",
                    f'{where} must be an object {{"role", "content"}}, got {json_type(m)}',
                )
            )
            roles.append(None)
            continue
        role = m.get("role")
        roles.append(role)
        if "role" not in m:
            issues.append(_err("missing-key", f'{where} has no "role"'))
        elif not isinstance(role, str) or role not in ROLES:
            shown = json.dumps(role) if isinstance(role, str) else json_type(role)
            hint = ROLE_ALIASES.get(role) if isinstance(role, str) else None
            tip = f' (rename it "{hint}")' if hint else ""
            issues.append(
                _err("bad-role", f"{where}: role {shown} is not one of {', '.join(ROLES)}{tip}")
            )
        has_tool_calls = bool(m.get("tool_calls"))
        label = f"{where} ({role})" if isinstance(role, str) else where
        if "content" not in m:
            if not has_tool_calls:
                issues.append(_err("missing-key", f'{label} has no "content"'))
        else:
            content = m["content"]
            if content is None:
                if not has_tool_calls:
                    issues.append(_err("empty-content", f"{label}: content is null"))
            elif isinstance(content, list):
                issues.append(
                    _warn(
                        "content-parts",
                        f"{label}: content is a list of parts; text-only chat templates may reject it",
                    )
                )
            elif not isinstance(content, str):
                issues.append(
                    _err("bad-type", f"{label}: content must be a string, got {json_type(content)}")
                )
            elif not content.strip() and not has_tool_calls:
                severity = "warning" if role == "system" else "error"
                issues.append((severity, "empty-content", f"{label}: empty content"))
        if role == "system" and i > 0:
            issues.append(
                _err("role-order", f'{where}: "system" is only allowed as the first turn')
            )
        elif role == "user":
            seen_user = True
        elif role == "assistant":
            if not seen_user and not seen_assistant:
                issues.append(_err("role-order", f"{where}: assistant turn before any user turn"))
            seen_assistant = True
    if not seen_assistant:
        issues.append(
            _err("no-assistant", "no assistant turn: there is nothing for the model to learn")
        )
    elif roles[-1] != "assistant":
        last = json.dumps(roles[-1]) if isinstance(roles[-1], str) else "?"
        issues.append(
            _warn(
                "last-turn",
                f"the last turn is {last}, not the assistant's: with --mask-prompt only that last turn trains",
            )
        )
    return issues


def record_hash(record: Any) -> int:
    """A 64-bit hash of the record's canonical JSON (key order and spacing do not matter)."""
    canonical = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(
        hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
        "little",
    )


class _Collector:
    """Findings with a cap per (file, kind) so a million identical warnings stay readable."""

    def __init__(self, max_per_kind: int | None) -> None:
        self.findings: list[Finding] = []
        self.max_per_kind = max_per_kind
        self.counts: dict[tuple[str, str], int] = {}
        self.suppressed: dict[tuple[str, str], tuple[str, int]] = {}

    def add(self, severity: str, file: str, line: int, message: str, code: str) -> None:
        key = (file, code or message)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if self.max_per_kind is None or n <= self.max_per_kind:
            self.findings.append(Finding(severity, file, line, message, code))
        elif key not in self.suppressed:
            self.suppressed[key] = (severity, line)

    def done(self) -> tuple[Finding, ...]:
        out = list(self.findings)
        for (file, code), (severity, line) in self.suppressed.items():
            more = self.counts[(file, code)] - (self.max_per_kind or 0)
            out.append(
                Finding(
                    severity,
                    file,
                    line,
                    f"… and {more} more line(s) with this problem ({code}) from here on",
                    code,
                    more=more,
                )
            )
        return tuple(out)


def validate_dataset(
    data_dir: str | Path,
    tokenizer: Any = None,
    max_seq_length: int = 2048,
    progress: ProgressFn | None = None,
    keys: FormatKeys = DEFAULT_KEYS,
    *,
    batch_size: int | None = None,
    max_per_kind: int | None = 1000,
) -> ValidationReport:
    """Check train/valid/test.jsonl of a folder; never raises on bad data, never writes.

    With a tokenizer, examples longer than max_seq_length tokens and chat-template failures are
    reported too. With batch_size, splits smaller than one batch (mlx-lm refuses them) are errors.
    """
    data_dir = Path(data_dir)
    out = _Collector(max_per_kind)
    examples: dict[str, int] = {}
    formats: dict[str, str | None] = {}
    if not data_dir.exists():
        out.add(
            "error",
            str(data_dir),
            0,
            "folder not found: expected a folder with train.jsonl (and valid.jsonl, test.jsonl)",
            "missing-file",
        )
        return ValidationReport(out.done(), str(data_dir))
    if data_dir.is_file():
        out.add(
            "error",
            str(data_dir),
            0,
            f"this is a file, expected a folder with train.jsonl: run `mlxtui data split {data_dir} --out DIR` to make one",
            "missing-file",
        )
        return ValidationReport(out.done(), str(data_dir))
    paths = split_paths(data_dir)
    for extra in sorted(data_dir.glob("*.jsonl")):
        if extra.stem not in SPLITS:
            hint = f": rename it to {MISNAMED[extra.stem]}.jsonl" if extra.stem in MISNAMED else ""
            out.add(
                "warning",
                str(extra),
                0,
                f"ignored: mlx-lm only reads train.jsonl, valid.jsonl and test.jsonl{hint}",
                "ignored-file",
            )
    if not paths["train"].exists():
        out.add(
            "error",
            str(data_dir),
            0,
            f"no train.jsonl in {data_dir}: expected train.jsonl (required), valid.jsonl and test.jsonl (optional), one JSON object a line",
            "missing-file",
        )
    elif not paths["valid"].exists():
        out.add(
            "warning",
            str(paths["valid"]),
            0,
            "no valid.jsonl: training will run without a validation loss (make one with `mlxtui data split`)",
            "missing-file",
        )
    present = {s: p for s, p in paths.items() if p.is_file()}
    total = sum(p.stat().st_size for p in present.values())
    state = _State(tokenizer, max_seq_length, keys, out, progress, total)
    for split, path in present.items():
        examples[split], formats[split] = state.check_file(split, path)
    train_fmt = formats.get("train")
    for split, fmt in formats.items():
        if split != "train" and train_fmt and fmt and fmt != train_fmt:
            out.add(
                "warning",
                str(paths[split]),
                0,
                f"{split}.jsonl is {fmt} but train.jsonl is {train_fmt}",
                "mixed-format",
            )
    if batch_size is not None:
        for split in ("train", "valid"):
            n = examples.get(split, 0)
            if split in present and 0 < n < batch_size:
                out.add(
                    "error",
                    str(paths[split]),
                    0,
                    f"{n} example(s), fewer than batch_size {batch_size}: mlx-lm refuses this; add examples or lower the batch size",
                    "too-few",
                )
    return ValidationReport(out.done(), str(data_dir), examples, formats)


class _State:
    """What one validation pass carries across files: the train hashes, progress, the tokenizer."""

    def __init__(
        self,
        tokenizer: Any,
        max_seq_length: int,
        keys: FormatKeys,
        out: _Collector,
        progress: ProgressFn | None,
        total: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.keys = keys
        self.out = out
        self.progress = progress
        self.total = total
        self.done_before = 0
        self.train_hashes: dict[int, int] = {}
        self.template_ok = tokenizer is None or has_chat_template(tokenizer)

    def check_file(self, split: str, path: Path) -> tuple[int, str | None]:
        name = str(path)
        file_fmt: str | None = None
        fmt_line = 0
        hashes: dict[int, int] = {}
        count = 0
        done = 0
        template_reported = False
        try:
            for number, raw, done in scan_lines(path):
                if self.progress is not None and number % 1000 == 0:
                    self.progress(self.done_before + done, self.total)
                if not raw.strip():
                    self.out.add(
                        "warning",
                        name,
                        number,
                        "blank line: mlx_lm.lora cannot parse it; delete it",
                        "blank-line",
                    )
                    continue
                try:
                    fmt = self._check_line(name, number, raw, split, file_fmt, fmt_line, hashes)
                except Exception as e:  # a checker bug must not hide the rest of the report
                    self.out.add(
                        "error",
                        name,
                        number,
                        f"internal error while checking this line: {e!r} (please report it)",
                        "internal",
                    )
                    continue
                if fmt is None:
                    continue
                count += 1
                if file_fmt is None:
                    file_fmt, fmt_line = fmt, number
                if (
                    fmt in ("chat", "completions")
                    and not self.template_ok
                    and not template_reported
                ):
                    template_reported = True
                    self.out.add(
                        "error",
                        name,
                        number,
                        "the model's tokenizer has no chat template: chat and completions data need one (use a chat/instruct model or the text format)",
                        "no-template",
                    )
        except OSError as e:
            self.out.add("error", name, 0, f"cannot read the file: {e.strerror or e}", "unreadable")
        self.done_before += done
        if self.progress is not None:
            self.progress(self.done_before, self.total)
        if count == 0 and not any(
            f.file == name and f.severity == "error" for f in self.out.findings
        ):
            tail = (
                ""
                if split == "train"
                else " (mlx-lm fails on an empty file: delete it or add examples)"
            )
            self.out.add("error", name, 0, f"empty file: no examples{tail}", "empty-file")
        if split == "train":
            self.train_hashes = hashes
        return count, file_fmt

    def _check_line(
        self,
        name: str,
        number: int,
        raw: bytes,
        split: str,
        file_fmt: str | None,
        fmt_line: int,
        hashes: dict[int, int],
    ) -> str | None:
        """Report the line's problems; return the format it is read as (None: unreadable)."""
        record = parse_line(raw, number)
        if isinstance(record, RecordError):
            self.out.add(
                "error",
                name,
                number,
                record.message + _not_jsonl_hint(raw, number, name),
                "invalid-json" if "JSON" in record.message else "invalid-utf8",
            )
            return None
        keys = self.keys
        fmt: str | None = detect_format(record, keys)
        if fmt is None:
            self.out.add(
                "error", name, number, _missing_keys_message(record, keys, name), "missing-key"
            )
            return None
        if file_fmt is not None and fmt != file_fmt:
            if _has_keys_of(record, file_fmt, keys):
                fmt = file_fmt  # mlx-lm reads it as the file's format and finds what it needs
            else:
                self.out.add(
                    "error",
                    name,
                    number,
                    f"this line is {fmt} but the file is {file_fmt} (from line {fmt_line}): mlx-lm reads every line as {file_fmt} and fails here",
                    "mixed-format",
                )
                return fmt
        issues = check_record(record, fmt, keys)
        for severity, code, message in issues:
            self.out.add(severity, name, number, message, code)
        h = record_hash(record)
        if h in hashes:
            self.out.add("warning", name, number, f"duplicate of line {hashes[h]}", "duplicate")
        else:
            hashes[h] = number
        if split != "train" and h in self.train_hashes:
            self.out.add(
                "warning",
                name,
                number,
                f"same example as train.jsonl:{self.train_hashes[h]} (leakage: the {split} loss will look better than it is)",
                "leakage",
            )
        if (
            self.tokenizer is not None
            and self.template_ok
            and not any(s == "error" for s, _, _ in issues)
        ):
            self._check_length(name, number, record, fmt)
        return fmt

    def _check_length(self, name: str, number: int, record: dict[str, Any], fmt: str) -> None:
        try:
            tokens, prompt = count_tokens(record, self.tokenizer, fmt, self.keys)
        except RenderError as e:
            self.out.add("error", name, number, str(e), "template-error")
            return
        limit = self.max_seq_length
        if tokens > limit:
            msg = f"{tokens} tokens, more than max_seq_length {limit}: will be truncated (the last {tokens - limit} tokens are lost)"
            if prompt >= limit:
                msg += "; with --mask-prompt nothing of it trains"
            self.out.add("warning", name, number, msg, "too-long")


def _has_keys_of(record: dict[str, Any], fmt: str, keys: FormatKeys) -> bool:
    if fmt == "completions":
        return keys.prompt_feature in record and keys.completion_feature in record
    if fmt == "chat":
        return keys.chat_feature in record
    return keys.text_feature in record


def _missing_keys_message(record: dict[str, Any], keys: FormatKeys, file: str = "FILE") -> str:
    found = ", ".join(json.dumps(k) for k in sorted(record)[:8]) or "none"
    if keys.prompt_feature in record:
        hint = f' (has "{keys.prompt_feature}" but no "{keys.completion_feature}")'
    elif keys.completion_feature in record:
        hint = f' (has "{keys.completion_feature}" but no "{keys.prompt_feature}")'
    else:
        hint = ""
    message = f"missing keys{hint}: expected {keys.describe()}; found {found}"
    lower = {k.lower() for k in record}
    if "conversations" in lower:
        message += (
            '; this looks like ShareGPT ("conversations" of {"from", "value"}): mlx-lm needs '
            '"messages" of {"role", "content"} with roles user/assistant'
        )
    elif lower & set(PROMPT_COLUMNS) and lower & set(RESPONSE_COLUMNS):
        message += f"; make mlx-lm records with `mlxtui data convert {file} --out DIR`"
    return message


def _not_jsonl_hint(raw: bytes, number: int, file: str) -> str:
    """What to do when the first line shows the file is JSON but not JSON Lines."""
    if number != 1:
        return ""
    head = raw.strip()
    if head.startswith(b"["):
        return f"; the file looks like one JSON array, not JSON Lines: run `mlxtui data convert {file} --out DIR`"
    if head == b"{":
        return "; the file looks like pretty-printed JSON: mlx-lm needs one JSON object per line"
    return ""
