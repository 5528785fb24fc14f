"""Dataset browser: pick a split, scroll its examples lazily, see one rendered as the model sees it.

Rows come from a `JsonlIndex` (line offsets, read on demand). The table holds a window of lines
(starting at `window_start`), a page is added as the cursor nears its end, and a jump far away rebuilds the
window around the target, so a file of millions of lines opens and jumps at once. The selected
example is rendered through the model's chat template with the trained tokens highlighted; before a
model (tokenizer) is loaded it is shown as raw JSON.

`/` searches the split in the background (`JsonlIndex.search`), `n`/`N` go to the next/previous
match, `g` jumps to a line number.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.events import DescendantBlur
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Select, Static

if TYPE_CHECKING:
    # mlxtui.core.data imports numpy (a quarter of the dashboard's import time): it is imported
    # when a data folder is set, after the first frame (benchmarks/bench_first_frame.py).
    from mlxtui.core.data.index import JsonlIndex, Search

PAGE_ROWS = 100
PREVIEW_CHARS = 200
SEARCH_POLL_S = 0.1


def preview(line: str) -> str:
    """A one-line summary of a JSONL line: the text of its first messages, else the line itself."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:PREVIEW_CHARS]
    if isinstance(record, dict):
        messages = record.get("messages")
        if isinstance(messages, list):
            parts = [
                str(m.get("content", ""))
                for m in messages
                if isinstance(m, dict) and m.get("role") != "system"
            ]
            return " ▸ ".join(parts)[:PREVIEW_CHARS].replace("\n", " ")
        for key in ("prompt", "text"):
            if isinstance(record.get(key), str):
                return record[key][:PREVIEW_CHARS].replace("\n", " ")
    return line[:PREVIEW_CHARS]


# The trained tokens: "success" is green in the bundled themes, as the header line says.
TRAINED = "bold $success"


def render_record(record: Any, tokenizer: Any, mask_prompt: bool) -> Content:
    """The example as the model will see it (trained parts highlighted), or pretty JSON."""
    from mlxtui.core.data.formats import detect_format
    from mlxtui.core.data.index import RecordError
    from mlxtui.core.data.render import render_example

    if isinstance(record, RecordError):
        return Content.styled(
            f"line {record.line}: {record.message}\n\n{record.text}", "bold $error"
        )
    if tokenizer is not None:
        try:
            rendered = render_example(record, tokenizer, detect_format(record), mask_prompt)
            text = Content.styled(
                f"{rendered.format} · {rendered.tokens} tokens · "
                f"{rendered.trained_tokens} trained, in green\n\n",
                "italic",
            )
            for segment in rendered.segments:
                text = text.append_text(segment.text, TRAINED if segment.trains else "dim")
            return text
        except Exception as exc:  # a template problem must still let the user read the example
            fallback = Content.styled(
                f"(cannot render with the chat template: {exc})\n\n", "$warning"
            )
            return fallback.append(json.dumps(record, indent=2, ensure_ascii=False))
    return Content(json.dumps(record, indent=2, ensure_ascii=False))


class DatasetBrowser(Widget):
    class Indexed(Message):
        """The split's index is complete: its size is known (hints and the schedule use it)."""

        def __init__(self, split: str, examples: int) -> None:
            super().__init__()
            self.split = split
            self.examples = examples

    BINDINGS = [
        Binding("slash", "find", "Search", key_display="/"),
        Binding("n", "next_match(1)", "Next match", show=False),
        Binding("N,shift+n", "next_match(-1)", "Previous match", show=False),
        Binding("g", "goto", "Go to line"),
    ]
    DEFAULT_CSS = """
    DatasetBrowser { height: 1fr; }
    DatasetBrowser #ds-bar { height: 1; }
    DatasetBrowser #ds-find { display: none; height: 1; border: none; width: 1fr; }
    DatasetBrowser #ds-find.-shown { display: block; }
    DatasetBrowser #ds-split { width: 16; }
    DatasetBrowser #ds-bar Select { height: 1; }
    DatasetBrowser #ds-count { width: 1fr; padding: 0 1; color: $text-muted; }
    DatasetBrowser #ds-body { height: 1fr; }
    DatasetBrowser #ds-table { width: 2fr; height: 1fr; }
    DatasetBrowser #ds-view { width: 3fr; height: 1fr; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data_dir: Path | None = None
        self.split = "train"
        self.index: JsonlIndex | None = None
        self._reported: JsonlIndex | None = None  # the index whose completion was posted
        self._all_splits = False  # the split menu lists them all (set_data_dir)
        self.tokenizer: Any = None
        self.mask_prompt = False
        self.loaded_rows = 0
        self.window_start = 0  # line shown in the table's first row
        self.selected: int | None = None
        self.search: Search | None = None
        self.search_progress = (0, 0)
        self.find_mode = "search"  # what the bar's input is for: "search" | "goto"
        self._pending_jump: int | None = None
        self._auto_jump = False
        self._rebuilding = False
        self._count = "no dataset"  # the count line's text, as shown

    def compose(self) -> ComposeResult:
        with Horizontal(id="ds-bar"):
            yield Select(  # all the splits once a data folder is set (set_data_dir)
                [(self.split, self.split)],
                value=self.split,
                allow_blank=False,
                id="ds-split",
                compact=True,
            )
            yield Label(self._count, id="ds-count")
        yield Input(id="ds-find", compact=True)
        with Horizontal(id="ds-body"):
            table: DataTable[str] = DataTable(id="ds-table", cursor_type="row", zebra_stripes=True)
            yield table
            with VerticalScroll(id="ds-view"):
                yield Static("", id="ds-example")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("#", key="n", width=5)
        table.add_column("example", key="text")
        self.set_interval(0.5, self._poll_index)
        self.set_interval(SEARCH_POLL_S, self._poll_search)

    def on_unmount(self) -> None:
        self._cancel_search()
        if self.index is not None:
            self.index.close()

    # ------------------------------------------------------------ public

    def set_data_dir(self, data_dir: str | Path | None) -> None:
        from mlxtui.core.data.formats import SPLITS

        if not self._all_splits:
            self._all_splits = True
            select: Select[str] = self.query_one("#ds-split", Select)
            select.set_options([(s, s) for s in SPLITS])
            select.value = self.split
        self.data_dir = Path(data_dir) if data_dir else None
        self._open_split(self.split)

    def set_tokenizer(self, tokenizer: Any, mask_prompt: bool) -> None:
        self.tokenizer = tokenizer
        self.mask_prompt = mask_prompt
        self._show_selected()

    def example_text(self) -> str:
        return str(self.query_one("#ds-example", Static).render())

    def count_text(self) -> str:
        return str(self.query_one("#ds-count", Label).render())

    def jump_to_line(self, line: int) -> bool:
        """Select 1-based `line`; waits for the index when the line is not indexed yet."""
        index = self.index
        if index is None or line < 1:
            return False
        if line > len(index):
            if index.is_complete:
                self.app.notify(f"{index.path.name} has {len(index)} lines", severity="warning")
                return False
            self._pending_jump = line
            self._set_count(f"indexing… line {line} is not reached yet")
            return False
        self._pending_jump = None
        self._select_line(line - 1)
        return True

    def show_line(self, split: str, line: int) -> bool:
        """Open `split` (if another) and select its 1-based `line`."""
        from mlxtui.core.data.formats import SPLITS

        if split != self.split and split in SPLITS:
            select = self.query_one("#ds-split", Select)
            with self.prevent(Select.Changed):
                select.value = split
            self._open_split(split)
        return self.jump_to_line(line) if line > 0 else self.index is not None

    def start_search(self, text: str) -> None:
        """Find `text` in the split's lines in the background; the first match is selected."""
        self._cancel_search()
        if self.index is None or not text:
            return
        self.search_progress = (0, self.index.total_bytes)
        self._auto_jump = True

        def progress(done: int, total: int, _matches: int) -> None:
            self.search_progress = (done, total)  # a tuple swap: safe to read from the UI thread

        self.search = self.index.search(text, on_progress=progress)
        self._poll_search()

    @property
    def matches(self) -> list[int]:
        """0-based lines of the current search's matches so far."""
        return list(self.search.matches) if self.search is not None else []

    # ------------------------------------------------------------ actions

    def action_find(self) -> None:
        self._open_find("search")

    def action_goto(self) -> None:
        self._open_find("goto")

    def action_next_match(self, direction: int) -> None:
        matches = self.matches
        if not matches:
            self.app.notify("No matches (/ searches).", severity="warning")
            return
        here = self.selected if self.selected is not None else -1
        if direction > 0:
            i = bisect.bisect_right(matches, here)
            target = matches[i] if i < len(matches) else matches[0]
        else:
            i = bisect.bisect_left(matches, here) - 1
            target = matches[i] if i >= 0 else matches[-1]
        self._select_line(target)
        self._poll_search()

    # ------------------------------------------------------------ find bar

    def _open_find(self, mode: str) -> None:
        if self.index is None:
            self.app.notify("No dataset file to search.", severity="warning")
            return
        self.find_mode = mode
        find = self.query_one("#ds-find", Input)
        find.placeholder = (
            "search text (Enter searches, n/N next/previous, Esc cancels)"
            if mode == "search"
            else f"line number 1-{len(self.index)} (Enter jumps)"
        )
        find.value = self.search.text if mode == "search" and self.search is not None else ""
        find.add_class("-shown")
        find.focus()

    def _close_find(self) -> None:
        find = self.query_one("#ds-find", Input)
        find.remove_class("-shown")
        if find.has_focus:
            self.query_one(DataTable).focus()

    @on(Input.Submitted, "#ds-find")
    def _find_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        self._close_find()
        if self.find_mode == "goto":
            if value.isdigit():
                self.jump_to_line(int(value))
            elif value:
                self.app.notify(f"'{value}' is not a line number", severity="warning")
        else:
            self.start_search(value)

    def on_descendant_blur(self, event: DescendantBlur) -> None:
        if event.widget.id == "ds-find":
            event.widget.remove_class("-shown")

    def key_escape(self) -> None:
        if self.query_one("#ds-find", Input).has_class("-shown"):
            self._close_find()

    # ------------------------------------------------------------ internals

    def _cancel_search(self) -> None:
        if self.search is not None:
            self.search.cancel()
            self.search = None

    def _poll_search(self) -> None:
        search = self.search
        if search is None:
            return
        matches = search.matches
        if self._auto_jump and len(matches):
            self._auto_jump = False
            start = self.selected if self.selected is not None else 0
            found = list(matches)
            i = bisect.bisect_left(found, start)
            self._select_line(found[i] if i < len(found) else found[0])
        done, total = self.search_progress
        state = "" if search.is_done else f" (searching {done * 100 // max(total, 1)}%)"
        if search.error is not None:
            state = f" (search failed: {search.error})"
        where = ""
        if self.selected is not None and len(matches):
            found = list(matches)
            i = bisect.bisect_left(found, self.selected)
            if i < len(found) and found[i] == self.selected:
                where = f" · match {i + 1}"
        if search.is_done and self._auto_jump and not len(matches):
            self._auto_jump = False
        self._set_count(
            f"{len(matches)} match{'es' if len(matches) != 1 else ''} for '{search.text}'"
            f"{state}{where} · n/N"
        )

    def _open_split(self, split: str) -> None:
        self.split = split
        self._cancel_search()
        self._pending_jump = None
        if self.index is not None:
            self.index.close()
            self.index = None
        table = self.query_one(DataTable)
        table.clear()
        self.loaded_rows = 0
        self.window_start = 0
        self.selected = None
        self.query_one("#ds-example", Static).update("")
        path = self.data_dir / f"{split}.jsonl" if self.data_dir else None
        if path is None or not path.is_file():
            where = f"{path}" if path else "no data folder"
            self._set_count(f"{split}: no file ({where})")
            return
        try:
            from mlxtui.core.data.index import JsonlIndex

            self.index = JsonlIndex(path)
        except OSError as exc:
            self._set_count(f"{path}: cannot read ({exc.strerror or exc})")
            return
        self._load_more()
        self._poll_index()
        if self.loaded_rows:
            self.selected = 0
            self._show_selected()

    def _set_count(self, text: str) -> None:
        label = self.query_one("#ds-count", Label)
        if text == self._count:
            return  # polled twice a second: an unchanged count must cost nothing
        self._count = text
        # One row whatever the text (no wrapping; a long one ends in "…"): no layout pass.
        label.update(Text(text, no_wrap=True, overflow="ellipsis"), layout=False)

    def _poll_index(self) -> None:
        index = self.index
        if index is None:
            return
        if index.is_complete and index is not self._reported:
            self._reported = index
            self.post_message(self.Indexed(self.split, len(index)))
        if self.search is None:
            more = "" if index.is_complete else "+ (indexing)"
            noun = "example" if len(index) == 1 and index.is_complete else "examples"
            self._set_count(f"{len(index)}{more} {noun} · {index.path.name} · / search, g line")
        if self.loaded_rows < min(len(index) - self.window_start, PAGE_ROWS):
            self._load_more()
        if self._pending_jump is not None and (
            self._pending_jump <= len(index) or index.is_complete
        ):
            self.jump_to_line(self._pending_jump)

    def _load_more(self) -> None:
        index = self.index
        if index is None:
            return
        table = self.query_one(DataTable)
        start = self.window_start + self.loaded_rows
        end = min(len(index), start + PAGE_ROWS)
        for i in range(start, end):
            table.add_row(str(i + 1), preview(index.line(i)), key=str(i))
        self.loaded_rows = end - self.window_start

    def _select_line(self, line: int) -> None:
        """Move the cursor to 0-based `line`, rebuilding the window around it when it is outside."""
        if self.index is None:
            return
        if not (self.window_start <= line < self.window_start + self.loaded_rows):
            self._rebuild_window(max(0, line - PAGE_ROWS // 2))
            while self.window_start + self.loaded_rows <= line < len(self.index):
                before = self.loaded_rows
                self._load_more()
                if self.loaded_rows == before:
                    break
        table = self.query_one(DataTable)
        self.selected = line
        self._rebuilding = True
        try:
            table.move_cursor(row=line - self.window_start)
        finally:
            self._rebuilding = False
        self._show_selected()

    def _rebuild_window(self, offset: int) -> None:
        table = self.query_one(DataTable)
        self._rebuilding = True
        try:
            table.clear()
            self.window_start = offset
            self.loaded_rows = 0
            self._load_more()
        finally:
            self._rebuilding = False

    def _show_selected(self) -> None:
        view = self.query_one("#ds-example", Static)
        if self.index is None or self.selected is None or self.selected >= len(self.index):
            return
        view.update(
            render_record(self.index.record(self.selected), self.tokenizer, self.mask_prompt)
        )

    @on(Select.Changed, "#ds-split")
    def _split_changed(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str) and event.value != self.split:
            self._open_split(event.value)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        row = event.cursor_row
        if self._rebuilding or row != self.query_one(DataTable).cursor_row:
            return  # stale: the window was rebuilt or the cursor moved on since
        if row >= self.loaded_rows - 10:
            self._load_more()
        line = self.window_start + row
        if row == 0 and self.window_start > 0 and self.selected == line + 1:
            # Moving up past the window's first row: bring the page above into the table.
            self._select_line_in_new_window(line, max(0, self.window_start - PAGE_ROWS))
            return
        self.selected = line
        self._show_selected()

    def _select_line_in_new_window(self, line: int, offset: int) -> None:
        self._rebuild_window(offset)
        while self.window_start + self.loaded_rows <= line:
            self._load_more()
        self._select_line(line)
