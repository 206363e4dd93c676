"""The search results table: one row per model, and a signal to fetch the next page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message

from sdlib.formatting import count, date, ellipsize
from sdlib.tui.widgets.cell_table import CellTable
from sdlib.tui.widgets.cells import Cell

if TYPE_CHECKING:
    from sdlib.sources.civitai import CivitaiModel
    from sdlib.sources.hf import HubModel

#: (key, label, width); the name column takes what is left.
_FIXED = (
    ("type", "type", 12),
    ("base", "base", 10),
    ("downloads", "dl", 6),
    ("likes", "likes", 6),
    ("updated", "updated", 10),
)
#: The Hub's columns: the repo id takes what is left; no type (the Hub has none).
_HUB_FIXED = (
    ("base", "base", 10),
    ("gated", "gated", 6),
    ("downloads", "dl", 6),
    ("likes", "likes", 6),
    ("updated", "updated", 10),
)
#: Rows before the end at which the next page is requested.
PREFETCH_ROWS = 5


class ResultsTable(CellTable):
    """Models as rows keyed by model id (Hub repos by ``hf:ORG/REPO``); posts ``NearEnd``
    when the end comes into view."""

    # Rows, not columns: home and end go to the first and last model.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "First", show=False),
        Binding("end", "scroll_bottom", "Last", show=False),
    ]

    class NearEnd(Message):
        """The cursor or the scroll position is close to the last row."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.name_width = 24
        #: "civitai" or "huggingface": which columns the table has.
        self.source = "civitai"

    def setup_columns(self, total_width: int, source: str | None = None) -> None:
        """(Re)create the columns for a table ``total_width`` cells wide (for ``source``'s
        results; the current source when None)."""
        self.source = source or self.source
        columns = _HUB_FIXED if self.source == "huggingface" else _FIXED
        fixed = sum(w + 2 for _k, _l, w in columns) + 2 + 2  # cell padding, scrollbar
        self.name_width = max(14, total_width - fixed)
        self.clear(columns=True)
        self.add_column("repo" if self.source == "huggingface" else "name", key="name",
                        width=self.name_width)  # fmt: skip
        for key, label, width in columns:
            self.add_column(label, key=key, width=width)

    def hub_cells(self, model: HubModel) -> list[Cell]:
        from sdlib.formatting import terminal_safe

        return [
            Cell(ellipsize(terminal_safe(model.id, newlines=False), self.name_width)),
            Cell(model.base.value if model.base.value != "unknown" else "?"),
            Cell(model.gated or "no"),
            Cell(count(model.downloads), right=True),
            Cell(count(model.likes), right=True),
            Cell(date(model.last_modified)),
        ]

    def add_hub_models(self, models: Iterable[HubModel]) -> int:
        """Append Hub repos not already present (keys ``hf:ORG/REPO``)."""
        return self.add_cell_rows((f"hf:{model.id}", self.hub_cells(model)) for model in models)

    def row_cells(self, model: CivitaiModel) -> list[Cell]:
        # Cells, not str: DataTable would read "[PRT]" in a model name as markup.
        from sdlib.formatting import terminal_safe

        # Names come from a server: nothing in them may act on the terminal.
        name = terminal_safe(model.name, newlines=False) + (" ⚠" if model.nsfw else "")
        base = terminal_safe(", ".join(model.base_models), newlines=False) or "?"
        return [
            Cell(ellipsize(name, self.name_width)),
            Cell(ellipsize(terminal_safe(model.type, newlines=False), 12)),
            Cell(ellipsize(base, 10)),
            Cell(count(model.download_count), right=True),
            Cell(count(model.thumbs_up_count), right=True),
            Cell(date(model.updated)),
        ]

    def add_models(self, models: Iterable[CivitaiModel]) -> int:
        """Append models not already present; returns how many were added (Civitai's
        cursors sometimes repeat an item across pages)."""
        return self.add_cell_rows((str(model.id), self.row_cells(model)) for model in models)

    def near_end(self) -> bool:
        """Is the cursor, or the last row in view, within ``PREFETCH_ROWS`` of the end?"""
        if not self.row_count:
            return False
        last_visible = int(self.scroll_y) + self.size.height - 2  # minus the header row
        return max(self.cursor_row, last_visible) >= self.row_count - PREFETCH_ROWS

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value > old_value and self.near_end():
            self.post_message(self.NearEnd())
