"""How the command line words the core's typed errors: a setting is named by its flag.

Also the parser's own refusals: a flag given a wrong type or a value outside its range is one
line naming the flag and what it takes, exit status 2 (`OneLineParser`, `check_flag_types`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

COMMAND_LINE = "the command line"

# Flags of commands other than train that are not settings of the table: (minimum, maximum).
# The train flags take theirs from config.SETTINGS; a flag whose command checks its own range
# (generate --max-tokens) is left to it.
FLAG_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("eval", "n"): (1, None),
    ("eval", "max_tokens"): (1, None),
    ("eval", "test_batches"): (-1, None),
    ("bench", "runs"): (1, None),
    ("bench", "max_tokens"): (1, None),
    ("generate", "temp"): (0, None),
    ("generate", "top_p"): (0, 1),
    ("generate", "seed"): (0, None),
    ("data", "seed"): (0, None),
    ("convert", "q_bits"): (2, 8),
    ("convert", "q_group_size"): (1, None),
}


def config_error_text(e: Any) -> str:
    """A ConfigError for a person at a terminal.

    A bad flag value reads `--batch-size: must be at least 1`; a bad YAML value keeps the file
    and the key (`run.yaml: batch_size: …`), since that is what the user edits.
    """
    from mlxtui.core.config import flag_for

    field = getattr(e, "field", None)
    where = getattr(e, "where", None)
    message = getattr(e, "message", str(e))
    flag = flag_for(field) if field else None
    if flag and where in (COMMAND_LINE, None):
        return f"{flag}: {message}"
    return str(e)


def replace_worded(text: str) -> str:
    """A core message whose fix is to replace what exists, with the fix said as the --force flag."""
    from mlxtui.core.fileio import worded_replace

    return worded_replace(text, "pass --force to replace it")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a refusal said in one line (no usage block): `mlxtui train: --iters: …`."""

    def error(self, message: str) -> NoReturn:
        message = message.removeprefix("argument ")
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def range_text(minimum: float | None, maximum: float | None) -> str:
    """'from 1 to 4096', 'at least 0', 'at most 1', or '' for no range."""
    if minimum is not None and maximum is not None:
        return f"from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"at least {minimum:g}"
    if maximum is not None:
        return f"at most {maximum:g}"
    return ""


def number_type(
    whole: bool, minimum: float | None = None, maximum: float | None = None, enforce: bool = True
) -> Callable[[str], Any]:
    """An argparse type: a whole number (or a finite number) within [minimum, maximum].

    With enforce=False only the type is checked here; the range is the config validation's
    (so a YAML value and a flag are refused by the same rule), and is only said in the message.
    """
    kind = "a whole number" if whole else "a number"
    allowed = range_text(minimum, maximum)

    def parse(text: str) -> Any:
        try:
            value: Any = int(text.replace("_", "")) if whole else float(text)
        except ValueError:
            tail = f" {allowed}" if allowed else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}; give {kind}{tail}") from None
        if not whole and not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a finite number; give {kind} {allowed}".rstrip()
            )
        if enforce and (
            (minimum is not None and value < minimum) or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {kind} {allowed}")
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # `lora` is `train` under another name
                    seen.add(id(sub))
                    yield name, sub


def flag_actions(
    parser: argparse.ArgumentParser, command: str = ""
) -> Iterator[tuple[str, argparse.Action]]:
    """(top-level command, action) for every option of every (sub)command."""
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            yield command, action
    for name, sub in _subparsers(parser):
        yield from flag_actions(sub, command or name)


def check_flag_types(parser: argparse.ArgumentParser) -> None:
    """Give every numeric flag a type that names what it takes: the train flags their row of
    config.SETTINGS (range checked by the config, as for YAML), the others FLAG_RANGES."""
    from mlxtui.core.config import SETTINGS

    by_dest = {s.flag_dest: s for s in SETTINGS if s.flags}
    for command, action in flag_actions(parser):
        if (
            action.type not in (int, float)
            and getattr(action.type, "__name__", "") != "positive_int"
        ):
            continue
        whole = action.type is not float
        spec = by_dest.get(action.dest) if command in ("train", "lora") else None
        if spec is not None:
            action.type = number_type(whole, spec.minimum, spec.maximum, enforce=False)
            continue
        lo, hi = FLAG_RANGES.get((command, action.dest), (None, None))
        if getattr(action.type, "__name__", "") == "positive_int":
            lo = 1 if lo is None else lo
        action.type = number_type(whole, lo, hi)
