"""Engine events become typed messages; floods are batched without losing or reordering events;
the dashboard's modules import each other without a cycle."""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxtui.core import events as ev
from mlxtui.tui import messages as msg

TUI = Path(msg.__file__).parent


class Recorder:
    """Stands in for the app: post_message only records (as Textual's queue would, in order)."""

    def __init__(self) -> None:
        self.posted: list[Any] = []

    def post_message(self, message: Any) -> bool:
        self.posted.append(message)
        return True


def step(i: int) -> ev.TrainStep:
    return ev.TrainStep(i, 10, 1.0, 1e-4, 100.0, 1.0, i * 10, 0.5, None)


def test_every_event_kind_has_its_message_class() -> None:
    kinds = [
        obj
        for obj in vars(ev).values()
        if isinstance(obj, type) and issubclass(obj, ev.Event) and obj is not ev.Event
    ]
    assert kinds
    for kind in kinds:
        cls = msg.MESSAGES.get(kind)
        assert cls is not None, f"{kind.__name__} has no message class"
        assert cls.__name__ == kind.__name__  # so its handler is on_<event_name>
        # A copy posted to a screen must not bubble up to the app and be handled twice.
        assert cls.bubble is False


def test_unknown_events_are_not_lost() -> None:
    @dataclass(frozen=True)
    class NewerEvent(ev.Event):
        x: int = 1

    target = Recorder()
    msg.EventBridge(target)(NewerEvent())  # type: ignore[arg-type]
    assert isinstance(target.posted[0], msg.OtherEvent)


def test_consecutive_steps_share_one_message_until_it_is_read() -> None:
    target = Recorder()
    bridge = msg.EventBridge(target)  # type: ignore[arg-type]
    for i in range(1, 4):
        bridge(step(i))
    assert len(target.posted) == 1
    first = target.posted[0]
    assert isinstance(first, msg.TrainStep)
    assert [s.iteration for s in first.events] == [1, 2, 3]

    bridge(step(4))  # the first run was read: a new message
    assert [s.iteration for s in first.events] == [1, 2, 3]
    assert [s.iteration for s in target.posted[1].events] == [4]

    bridge(ev.ValReport(4, 1.0, 0.1, True))
    bridge(step(5))  # after another kind: never joins the run before it (order is kept)
    kinds = [type(m).__name__ for m in target.posted]
    assert kinds == ["TrainStep", "TrainStep", "ValReport", "TrainStep"]
    assert [s.iteration for s in target.posted[3].events] == [5]


def test_a_copy_for_a_screen_carries_the_same_events() -> None:
    target = Recorder()
    bridge = msg.EventBridge(target)  # type: ignore[arg-type]
    bridge(ev.GenerationToken(1, "a"))
    bridge(ev.GenerationToken(1, "b"))
    copy = target.posted[0].copy()
    assert [t.text for t in copy.events] == ["a", "b"]
    assert copy is not target.posted[0]


def test_many_threads_lose_nothing() -> None:
    target = Recorder()
    bridge = msg.EventBridge(target)  # type: ignore[arg-type]
    per_thread = 500

    def emit(offset: int) -> None:
        for i in range(per_thread):
            bridge(step(offset + i))
            if i % 50 == 0:
                bridge(ev.Log("info", "x"))

    threads = [threading.Thread(target=emit, args=(k * 10_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    steps = [e.iteration for m in target.posted if isinstance(m, msg.TrainStep) for e in m.events]
    assert len(steps) == 4 * per_thread
    for k in range(4):  # each thread's own events stay in their order
        mine = [i for i in steps if k * 10_000 <= i < (k + 1) * 10_000]
        assert mine == sorted(mine)
    assert len(target.posted) < 4 * per_thread  # and they were batched


def _tui_imports(path: Path) -> set[str]:
    """Every mlxtui.tui module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("mlxtui.tui")
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (TUI.parent.parent / (sub.replace(".", "/") + ".py")).is_file()
                found.add(sub if is_module else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mlxtui.tui"))
    return found


def test_no_import_cycle_inside_the_dashboard() -> None:
    root = TUI.parent.parent
    graph: dict[str, set[str]] = {}
    for path in TUI.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = _tui_imports(path) - {name}
    assert "mlxtui.tui.app" in graph

    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != "open", "import cycle: " + " → ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
