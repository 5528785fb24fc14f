"""A switch that also says "on" or "off": Textual's switch is drawn in colour only, which a
monochrome terminal or a plain screen capture does not show."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.geometry import Size
from textual.widgets import Switch

SLIDER_WIDTH = 4
WORD_WIDTH = 4  # " off"


class WordSwitch(Switch):
    def render(self) -> RenderableType:
        grid = Table.grid()
        grid.add_column(width=SLIDER_WIDTH)
        grid.add_column(width=WORD_WIDTH)
        grid.add_row(super().render(), Text(f" {self.word}"))  # type: ignore[arg-type]
        return grid

    @property
    def word(self) -> str:
        return "on" if self.value else "off"

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return SLIDER_WIDTH + WORD_WIDTH
