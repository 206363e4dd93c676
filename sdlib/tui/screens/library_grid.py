"""The Library screen's thumbnail grid: the same models as the table, filtered alike, with
one selected in both. ``ThumbView`` is a base of
:class:`~sdlib.tui.screens.library.LibraryScreen`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.widgets import DataTable

from sdlib.tui.screens import library_extras as extras
from sdlib.tui.screens._base import SdlibScreen
from sdlib.tui.widgets.thumbs import Thumb, ThumbGrid

if TYPE_CHECKING:
    from textual.widget import Widget

    from sdlib.library.scan import FileReport

__all__ = ["ThumbView"]


class ThumbView(SdlibScreen):
    _reports: dict[str, FileReport]

    if TYPE_CHECKING:  # LibraryScreen defines them

        def _selected_path(self) -> str | None: ...

        def selected(self) -> FileReport | None: ...

        def _show_detail(self, f: FileReport | None) -> None: ...

    def grid_shown(self) -> bool:
        return self.has_class("-grid")

    async def action_toggle_grid(self) -> None:
        """Table <-> thumbnails; both show the same models, filtered alike, one selected."""
        grid = not self.grid_shown()
        self.set_class(grid, "-grid")
        if grid:
            await self._fill_grid(take_focus=True)
        else:
            table = self.query_one("#library-table", DataTable)
            table.focus()
            self._show_detail(self.selected())
        self.refresh_bindings()

    async def _fill_grid(self, take_focus: bool = False) -> None:
        table = self.query_one("#library-table", DataTable)
        shown = [self._reports[str(key.value)] for key in table.rows]
        await self.query_one(ThumbGrid).set_items(
            extras.thumb_items(shown), self._selected_path(), take_focus=take_focus
        )

    @on(ThumbGrid.Highlighted)
    def _tile_highlighted(self, message: ThumbGrid.Highlighted) -> None:
        table = self.query_one("#library-table", DataTable)
        if self.grid_shown() and message.path in table.rows:  # (not a tile losing its view)
            table.move_cursor(row=table.get_row_index(message.path))

    def home(self) -> Widget | None:
        if self.grid_shown():
            tiles = self.query(Thumb)
            selected = self._selected_path()
            return next((t for t in tiles if t.item.path == selected), tiles.first(Thumb))
        return super().home()
