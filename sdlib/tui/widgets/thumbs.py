"""The Library's thumbnail grid: one tile per model, its preview sidecar drawn small.

Hundreds of tiles stay cheap: a tile is a name and a placeholder until it scrolls into view;
then one worker thread reads and shrinks the previews of the tiles in view (the bytes
capped, Pillow's bomb limit on), newest view first, and drops a batch the user has
scrolled away from. Decoded thumbnails are kept for the last ``CACHE`` tiles only.
Drawing is textual-image's, as for Browse's previews (``previews`` option; ``off`` shows
names only).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical, VerticalScroll
from textual.events import Focus, Resize
from textual.message import Message
from textual.widgets import Static

from sdlib.tui import graphics
from sdlib.tui.messages import PreviewReady
from sdlib.tui.widgets.preview import cell_size, image_widget_class

__all__ = ["Thumb", "ThumbGrid", "ThumbItem"]

#: A tile's size in cells (CSS: .thumb), its image box inside, and decoded images kept.
TILE = (22, 12)
IMAGE_CELLS = (20, 10)
CACHE = 256


@dataclass(frozen=True)
class ThumbItem:
    path: str
    name: str
    #: The preview sidecar to draw, or None.
    preview: str | None


class Thumb(Vertical):
    """One tile; focusable (the grid's cursor is the focus)."""

    can_focus = True

    def __init__(self, item: ThumbItem, index: int) -> None:
        super().__init__(classes="thumb")
        self.item = item
        self.index = index
        self.loaded = False

    def compose(self) -> ComposeResult:
        text = "…" if self.item.preview else "no preview"
        yield Container(Static(text, classes="thumb-placeholder"), classes="thumb-frame")
        yield Static(self.item.name, classes="thumb-name", markup=False)

    def show_image(self, image: Any, protocol: str) -> None:
        cls = image_widget_class(protocol)
        frame = self.query_one(".thumb-frame", Container)
        frame.remove_children()
        if image is None or cls is None:
            frame.mount(Static("no preview", classes="thumb-placeholder"))
        else:
            frame.mount(cls(image, classes="thumb-image"))
        self.loaded = True

    def on_focus(self, event: Focus) -> None:
        self.post_message(ThumbGrid.Highlighted(self.item.path))


class ThumbGrid(VerticalScroll):
    """Tiles in rows as wide as the grid allows; arrows move, enter opens the table."""

    can_focus = False  # the tiles take the focus

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("pageup", "move(0, -3)", "Page up", show=False),
        Binding("pagedown", "move(0, 3)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    class Highlighted(Message):
        """A tile got the focus: its model is the selected one."""

        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    def __init__(self, protocol: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._protocol = protocol
        self._items: list[ThumbItem] = []
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._columns = 1
        self._pending: tuple[str, ...] = ()
        self._wanted: tuple[list[ThumbItem], str | None] | None = None
        self._replacing = False

    # -- contents -----------------------------------------------------------------------------
    @property
    def columns(self) -> int:
        return self._columns

    async def set_items(
        self, items: Sequence[ThumbItem], selected: str | None = None, *, take_focus: bool = False
    ) -> None:
        """Show ``items`` (the table's rows, filtered as it is); focus ``selected``'s tile.

        Calls made while tiles are being replaced (a filter typed fast) only leave their
        items for the running call: the last one is what is shown, once."""
        self._wanted = (list(items), selected)
        if self._replacing:
            return
        self._replacing = True
        try:
            while self._wanted is not None:
                wanted, selected = self._wanted
                self._wanted = None
                # The tiles keep the focus they had; a field being typed in keeps it.
                focused = self.screen.focused
                had_focus = focused is None or (
                    isinstance(focused, Thumb) and focused in self.children
                )
                if wanted != self._items or not self.children:
                    self._items = wanted
                    await self.remove_children()
                    await self.mount_all([Thumb(item, i) for i, item in enumerate(wanted)])
                if had_focus or take_focus:
                    self.focus_path(selected)
        finally:
            self._replacing = False
        self.call_after_refresh(self.load_visible)

    def tiles(self) -> list[Thumb]:
        return list(self.query(Thumb))

    def focus_path(self, path: str | None) -> None:
        tiles = self.tiles()
        if not tiles:
            return
        tile = next((t for t in tiles if t.item.path == path), tiles[0])
        tile.focus()

    # -- geometry -----------------------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        self._columns = max(1, event.size.width // TILE[0])
        self.styles.grid_size_columns = self._columns
        self.call_after_refresh(self.load_visible)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if int(old_value) // TILE[1] != int(new_value) // TILE[1]:
            self.load_visible()

    def visible_indices(self) -> range:
        """Tiles in view, one row of margin below (scrolling down shows them loaded)."""
        first_row = int(self.scroll_y) // TILE[1]
        rows = max(1, self.size.height // TILE[1] + 2)
        start = first_row * self._columns
        return range(start, min(len(self._items), start + rows * self._columns))

    # -- loading ------------------------------------------------------------------------------
    def load_visible(self) -> None:
        """Draw the thumbnails in view: from the cache, else decoded in the worker."""
        if not self.display or not self.size.height:
            return  # hidden (the table is shown): nothing is in view
        tiles = self.tiles()
        wanted = []
        for index in self.visible_indices():
            if index >= len(tiles):
                break
            tile = tiles[index]
            if tile.loaded or tile.item.preview is None:
                continue
            if tile.item.path in self._cache:
                self._cache.move_to_end(tile.item.path)
                tile.show_image(self._cache[tile.item.path], self._protocol)
            elif graphics.available(self._protocol):
                wanted.append((tile.item.path, tile.item.preview))
        batch = tuple(path for path, _ in wanted)
        if batch and batch != self._pending:
            self._pending = batch
            cw, ch = cell_size()
            self._decode(wanted, (IMAGE_CELLS[0] * cw, IMAGE_CELLS[1] * ch))

    @work(thread=True, exclusive=True, group="thumbs", exit_on_error=False)
    def _decode(self, wanted: list[tuple[str, str]], box: tuple[int, int]) -> None:
        from textual.worker import get_current_worker

        from sdlib.tui.images import MAX_IMAGE_BYTES, decode_preview

        worker = get_current_worker()
        graphics.widgets()  # imported here, not in the UI thread when the images arrive
        for path, preview in wanted:
            if worker.is_cancelled:
                return  # the user scrolled on: a newer batch is waiting
            try:
                with open(preview, "rb") as fh:
                    data = fh.read(MAX_IMAGE_BYTES + 1)
            except OSError:
                data = b""
            image = decode_preview(data, box) if 0 < len(data) <= MAX_IMAGE_BYTES else None
            self.post_message(PreviewReady(path, image))

    @on(PreviewReady)
    def _ready(self, message: PreviewReady) -> None:
        message.stop()
        self._cache[message.url] = message.image
        self._cache.move_to_end(message.url)
        while len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        for tile in self.tiles():
            if tile.item.path == message.url:
                tile.show_image(message.image, self._protocol)
                break

    # -- moving -------------------------------------------------------------------------------
    def _focused_index(self) -> int:
        focused = self.screen.focused
        return focused.index if isinstance(focused, Thumb) and focused.parent is self else 0

    def action_move(self, dx: int, dy: int) -> None:
        self._go(self._focused_index() + dx + dy * self._columns)

    def action_jump(self, index: int) -> None:
        self._go(index if index >= 0 else len(self._items) - 1)

    def _go(self, index: int) -> None:
        tiles = self.tiles()
        if tiles:
            tile = tiles[max(0, min(len(tiles) - 1, index))]
            tile.focus()
            self.scroll_to_widget(tile, animate=False)
