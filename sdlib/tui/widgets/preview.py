"""A version's preview images, one at a time, drawn in the terminal.

Drawing is textual-image's: Kitty graphics or Sixel where the terminal answered the probe
(``sdlib.tui.graphics``, run by ``sdlib tui`` before the app starts), half-block characters
otherwise. The ``previews`` option can force a protocol, or ``off`` for text placeholders
(snapshot tests).
Bytes come from ``ImageCache`` (disk) in a worker; decoding and shrinking happen there too.
NSFW previews are not even fetched unless NSFW is enabled in Settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.widget import Widget
from textual.widgets import Static

from sdlib.tui import graphics
from sdlib.tui.messages import PreviewReady

if TYPE_CHECKING:
    from sdlib.sources.civitai import CivitaiImage
    from sdlib.tui.services import Services

#: Cell size in pixels when the terminal did not say (textual-image's own default).
_DEFAULT_CELL = (10, 20)


def image_widget_class(protocol: str) -> type[Widget] | None:
    """textual-image's widget class for ``protocol``; None for ``off`` or when not installed.
    (Imports textual-image: in the UI thread, only once a worker has.)"""
    if protocol == "off":
        return None
    tiw = graphics.widgets()
    if tiw is None:
        return None
    classes: dict[str, Any] = {
        "auto": graphics.auto_class(tiw),
        "sixel": tiw.SixelImage,
        "kitty": tiw.TGPImage,
        "halfcell": tiw.HalfcellImage,
        "unicode": tiw.UnicodeImage,
    }
    cls: type[Widget] | None = classes.get(protocol, tiw.Image)
    return cls


def cell_size() -> tuple[int, int]:
    try:
        from textual_image._terminal import get_cell_size
    except ImportError:
        return _DEFAULT_CELL
    size = get_cell_size()
    return (size.width, size.height)


class PreviewPane(Vertical):
    """``image 2/4 · 512×768`` above the image; ``[`` and ``]`` step through them."""

    def __init__(self, services: Services, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._services = services
        self._images: tuple[CivitaiImage, ...] = ()
        self._index = 0
        self._nsfw = False

    def compose(self) -> ComposeResult:
        yield Static("", id="preview-caption")
        yield Container(Static("", classes="preview-placeholder"), id="preview-frame")

    def use_services(self, services: Services) -> None:
        self._services = services

    def show(self, images: Sequence[CivitaiImage], *, nsfw: bool) -> None:
        """Show the first of ``images`` (still images only; videos are skipped)."""
        self._images = tuple(i for i in images if i.url)
        self._index = 0
        self._nsfw = nsfw
        self._load()

    def step(self, delta: int) -> None:
        if len(self._images) > 1:
            self._index = (self._index + delta) % len(self._images)
            self._load()

    @property
    def current(self) -> CivitaiImage | None:
        return self._images[self._index] if self._images else None

    def _caption(self, extra: str = "") -> None:
        image = self.current
        if image is None:
            text = "no preview images"
        else:
            size = f" · {image.width}×{image.height}" if image.width and image.height else ""
            nav = "  [ ] to browse" if len(self._images) > 1 else ""
            text = f"image {self._index + 1}/{len(self._images)}{size}{nav}"
        self.query_one("#preview-caption", Static).update(text + extra)

    def _placeholder(self, text: str) -> None:
        frame = self.query_one("#preview-frame", Container)
        frame.remove_children()
        frame.mount(Static(text, classes="preview-placeholder"))

    def _load(self) -> None:
        self._caption()
        image = self.current
        if image is None:
            self._placeholder("")
            return
        if image.nsfw and not self._nsfw:
            self._placeholder("NSFW preview hidden\n(enable NSFW in Settings)")
            return
        protocol = self._services.options.previews
        if not graphics.available(protocol):
            what = "previews are off" if protocol == "off" else "install textual-image for previews"
            self._placeholder(f"[preview {self._index + 1}]\n{what}")
            return
        graphics.load_in_background()  # while the image is fetched
        self._placeholder("loading preview…")
        frame = self.query_one("#preview-frame", Container)
        cw, ch = cell_size()
        box = (min(768, max(64, frame.size.width * cw)), min(768, max(64, frame.size.height * ch)))
        self._fetch(image.url, box)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _fetch(self, url: str, box: tuple[int, int]) -> None:
        from sdlib.tui.images import decode_preview

        data = self._services.images.get(url)
        if data is None:
            self.post_message(PreviewReady(url, None, "preview not available (video or error)"))
            return
        graphics.widgets()  # imported here, not in the UI thread when the image arrives
        image = decode_preview(data, box)
        note = None if image is not None else "preview could not be decoded"
        self.post_message(PreviewReady(url, image, note))

    @on(PreviewReady)
    def _ready(self, message: PreviewReady) -> None:
        message.stop()
        current = self.current
        if current is None or current.url != message.url:
            return  # the user moved on
        cls = image_widget_class(self._services.options.previews)
        if message.image is None or cls is None:
            self._placeholder(message.note or "no preview")
            return
        frame = self.query_one("#preview-frame", Container)
        frame.remove_children()
        widget = cls(message.image)
        widget.add_class("preview-image")
        frame.mount(widget)


class LocalPreview(Vertical):
    """A preview image from a local file (a model's ``.preview.png`` sidecar)."""

    def __init__(self, protocol: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._protocol = protocol
        self._path: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="local-caption")
        yield Container(Static("", classes="preview-placeholder"), id="local-frame")

    def _placeholder(self, text: str) -> None:
        frame = self.query_one("#local-frame", Container)
        frame.remove_children()
        frame.mount(Static(text, classes="preview-placeholder"))

    def show_path(self, path: str | None) -> None:
        self._path = path
        name = path.rsplit("/", 1)[-1] if path else ""
        self.query_one("#local-caption", Static).update(name or "no preview sidecar")
        if path is None:
            self._placeholder("")
            return
        if not graphics.available(self._protocol):
            self._placeholder(
                "[preview]\npreviews are off"
                if self._protocol == "off"
                else "install textual-image for previews"
            )
            return
        frame = self.query_one("#local-frame", Container)
        cw, ch = cell_size()
        box = (min(768, max(64, frame.size.width * cw)), min(768, max(64, frame.size.height * ch)))
        self._decode(path, box)

    @work(thread=True, exclusive=True, group="local-preview", exit_on_error=False)
    def _decode(self, path: str, box: tuple[int, int]) -> None:
        from sdlib.tui.images import MAX_IMAGE_BYTES, decode_preview

        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_IMAGE_BYTES + 1)
        except OSError:
            data = b""
        graphics.widgets()  # imported here, not in the UI thread when the image arrives
        image = decode_preview(data, box) if 0 < len(data) <= MAX_IMAGE_BYTES else None
        self.post_message(PreviewReady(path, image, "preview could not be read"))

    @on(PreviewReady)
    def _ready(self, message: PreviewReady) -> None:
        message.stop()
        if message.url != self._path:
            return
        cls = image_widget_class(self._protocol)
        if message.image is None or cls is None:
            self._placeholder(message.note or "no preview")
            return
        frame = self.query_one("#local-frame", Container)
        frame.remove_children()
        widget = cls(message.image)
        widget.add_class("preview-image")
        frame.mount(widget)
