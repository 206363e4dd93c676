"""A one-line table cell that costs DataTable little to measure and draw."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len, set_cell_size
from rich.measure import Measurement
from rich.segment import Segment
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


class Cell:
    """Plain text for a one-line cell, drawn as one segment: what a ``Text`` draws there
    (tabs expanded, right-aligned if ``right``, cut to the column by the table), without
    Rich's wrapping and justifying, measured once. Never markup: "[PRT]" stays text."""

    __slots__ = ("right", "text", "width")

    def __init__(self, text: str, *, right: bool = False) -> None:
        if "\t" in text:  # as Text draws it: tab stops every 8 cells
            expanded = Text(text)
            expanded.expand_tabs(8)
            text = expanded.plain
        self.text = text
        self.width = cell_len(text)
        self.right = right

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Cell({self.text!r}{', right=True' if self.right else ''})"

    def fit(self, width: int) -> str:
        """The text in ``width`` cells: padded (on the left if ``right``), or cut."""
        room = width - self.width
        if room < 0:
            return set_cell_size(self.text, width)
        return " " * room + self.text if self.right else self.text + " " * room

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = options.max_width - self.width
        yield Segment(" " * room + self.text if self.right and room > 0 else self.text)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)
