"""Dataset browser: pick a split, scroll its examples lazily, see one rendered as the model sees it.

Rows come from a `JsonlIndex` (line offsets, read on demand) and are added a page at a time as the
cursor nears the end, so a huge file opens at once. The selected example is rendered through the
model's chat template with the trained tokens highlighted; before a model (tokenizer) is loaded it
is shown as raw JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Label, Select, Static

from mlxtui.core.data.formats import SPLITS, detect_format
from mlxtui.core.data.index import JsonlIndex, RecordError
from mlxtui.core.data.render import render_example

PAGE_ROWS = 100
PREVIEW_CHARS = 200


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


def render_record(record: Any, tokenizer: Any, mask_prompt: bool) -> Text:
    """The example as the model will see it (trained parts highlighted), or pretty JSON."""
    if isinstance(record, RecordError):
        return Text(f"line {record.line}: {record.message}\n\n{record.text}", style="bold red")
    if tokenizer is not None:
        try:
            rendered = render_example(record, tokenizer, detect_format(record), mask_prompt)
            text = Text(
                f"{rendered.format} · {rendered.tokens} tokens, {rendered.trained_tokens} trained"
                " (highlighted)\n\n",
                style="italic",
            )
            for segment in rendered.segments:
                text.append(segment.text, style="bold green" if segment.trains else "dim")
            return text
        except Exception as exc:  # a template problem must still let the user read the example
            fallback = Text(f"(cannot render with the chat template: {exc})\n\n", style="yellow")
            return fallback + Text(json.dumps(record, indent=2, ensure_ascii=False))
    return Text(json.dumps(record, indent=2, ensure_ascii=False))


class DatasetBrowser(Widget):
    DEFAULT_CSS = """
    DatasetBrowser { height: 1fr; }
    DatasetBrowser #ds-bar { height: 1; }
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
        self.tokenizer: Any = None
        self.mask_prompt = False
        self.loaded_rows = 0
        self.selected: int | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="ds-bar"):
            yield Select(
                [(s, s) for s in SPLITS],
                value="train",
                allow_blank=False,
                id="ds-split",
                compact=True,
            )
            yield Label("no dataset", id="ds-count")
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

    def on_unmount(self) -> None:
        if self.index is not None:
            self.index.close()

    # ------------------------------------------------------------ public

    def set_data_dir(self, data_dir: str | Path | None) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        self._open_split(self.split)

    def set_tokenizer(self, tokenizer: Any, mask_prompt: bool) -> None:
        self.tokenizer = tokenizer
        self.mask_prompt = mask_prompt
        self._show_selected()

    def example_text(self) -> str:
        return str(self.query_one("#ds-example", Static).render())

    # ------------------------------------------------------------ internals

    def _open_split(self, split: str) -> None:
        self.split = split
        if self.index is not None:
            self.index.close()
            self.index = None
        table = self.query_one(DataTable)
        table.clear()
        self.loaded_rows = 0
        self.selected = None
        self.query_one("#ds-example", Static).update("")
        path = self.data_dir / f"{split}.jsonl" if self.data_dir else None
        if path is None or not path.is_file():
            where = f"{path}" if path else "no data folder"
            self._set_count(f"{split}: no file ({where})")
            return
        try:
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
        self.query_one("#ds-count", Label).update(Text(text))

    def _poll_index(self) -> None:
        index = self.index
        if index is None:
            return
        more = "" if index.is_complete else "+ (indexing)"
        self._set_count(f"{len(index)}{more} examples · {index.path.name}")
        if self.loaded_rows < min(len(index), PAGE_ROWS):
            self._load_more()

    def _load_more(self) -> None:
        index = self.index
        if index is None:
            return
        table = self.query_one(DataTable)
        end = min(len(index), self.loaded_rows + PAGE_ROWS)
        for i in range(self.loaded_rows, end):
            table.add_row(str(i + 1), preview(index.line(i)), key=str(i))
        self.loaded_rows = end

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
        if row >= self.loaded_rows - 10:
            self._load_more()
        self.selected = row
        self._show_selected()
