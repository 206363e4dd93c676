"""A DataTable for one-line rows of ``Cell`` in fixed-width columns, added and drawn cheaply.

Textual's DataTable is general: each ``add_row`` re-sets the cursor and works out the
column order twice, every cell of a new row is measured on the next idle (600 measures for
a page of 100 results, to widen columns that here have fixed widths), and every cell drawn
goes through Rich's padding, styling and line-splitting (most of a page's first frame).
Rows of ``Cell`` in fixed-width columns need none of it: ``add_cell_rows`` adds a batch
with one cursor update and nothing to measure, and a body cell is drawn as the one segment
DataTable's own path would have produced (same style, padding, alignment and cut; a test
compares the two for every visible cell). Anything else (headers, other cell types, rows
of another height, columns that size to their content) takes DataTable's own path.

The fast paths use DataTable internals (Textual 8); on a Textual without them the table
falls back to ``add_row`` and DataTable's drawing, slower but the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import Any

import textual
from rich.segment import Segment
from rich.style import Style
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, Row, RowKey

from sdlib.tui.widgets.cells import Cell

#: What the fast paths read or write of DataTable (present in Textual 8).
_INTERNALS = (
    "_row_locations",
    "_column_locations",
    "_data",
    "_update_count",
    "_require_update_dimensions",
    "_cell_render_cache",
    "_show_hover_cursor",
    "_pseudo_class_state",
    "_render_cell",
    "_get_styles_to_render_cell",
    "_highlight_cursor",
)


#: The fast paths follow DataTable's internals as Textual 8 has them: on another major
#: version (where they may mean something else under the same names) DataTable's own paths
#: run. A test fails when the fast path is off, so an upgrade is checked, not silently slow.
_TESTED = textual.__version__.split(".")[0] == "8"


class CellTable(DataTable[Any]):
    """DataTable with a batch add and a cheap draw for one-line ``Cell`` rows."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast = _TESTED and all(hasattr(self, name) for name in _INTERNALS)

    def add_cell_rows(self, rows: Iterable[tuple[str, Sequence[Cell]]]) -> int:
        """Append ``(key, cells)`` rows whose key is not in the table yet (a repeated key,
        here or earlier in ``rows``, is skipped); returns how many were added. The same
        as ``add_row`` for each, with one cursor update for the batch."""
        if not self._fast or any(c.auto_width for c in self.columns.values()):
            added = 0
            for key, cells in rows:
                if key not in self.rows:
                    self.add_row(*cells, key=key)
                    added += 1
            return added
        column_keys = [column.key for column in self.ordered_columns]
        before = self.row_count
        locations, data, metadata = self._row_locations, self._data, self.rows
        for key, cells in rows:
            row_key = RowKey(key)
            if row_key in locations:
                continue
            if len(cells) > len(column_keys):
                raise ValueError("More values provided than there are columns.")
            locations[row_key] = len(metadata)
            data[row_key] = dict(zip_longest(column_keys, cells))
            metadata[row_key] = Row(row_key, 1, None, False)
        added = self.row_count - before
        if not added:
            return 0
        # Not in _new_rows: nothing to measure (fixed widths, one line, no labels); the
        # next idle still sets the scrollable size from the row count.
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate  # clamp it once, as add_row does
        if before == 0 and self.columns and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()  # the first row is highlighted (RowHighlighted)
        self._update_count += 1
        self.check_idle()
        return added

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """DataTable's cell drawing; a ``Cell`` in a one-line body row is one segment."""
        if self._fast and row_index >= 0 and column_index >= 0:
            row_key = self._row_locations.get_key(row_index)
            column_key = self._column_locations.get_key(column_index)
            row = self.rows.get(row_key) if row_key is not None else None
            if row is not None and column_key is not None and row.height == 1:
                cell = self._data[row.key].get(column_key)
                if isinstance(cell, Cell):
                    return self._draw(cell, row.key, column_key, row_index, column_index,
                                      base_style, width, cursor, hover)  # fmt: skip
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

    def _draw(
        self,
        cell: Cell,
        row_key: RowKey,
        column_key: ColumnKey,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> list[list[Segment]]:
        """What DataTable's ``_render_cell`` draws for ``cell``, as one segment."""
        # DataTable's own cache under DataTable's key: emptied whenever DataTable empties it.
        cache_key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor,
                     self._update_count, self._pseudo_class_state)  # fmt: skip
        lines: list[list[Segment]] | None = self._cell_render_cache.get(cache_key)
        if lines is None:
            component, post = self._get_styles_to_render_cell(
                False,  # not the header
                False,  # not a row label
                row_index < self.fixed_rows or column_index < self.fixed_columns,
                hover,
                cursor,
                self.show_cursor,
                self._show_hover_cursor,
                self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css",
            )
            # Rich's Styled(Padding(cell)): the table's style, the cell's place (the mouse
            # reads it), the cursor's; then the post style. The padding shares the style.
            style = base_style + Style.from_meta({"row": row_index, "column": column_index})
            style += component
            if post:
                style += post
            pad = " " * self.cell_padding
            lines = [[Segment(pad + cell.fit(width - 2 * self.cell_padding) + pad, style)]]
            self._cell_render_cache[cache_key] = lines
        return lines
