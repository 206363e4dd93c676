"""The services screens call, built once from ``Settings`` by the app and handed down.

``Services`` is the service layer's :class:`~sdlib.services.Context` (the same one the CLI
and scripts use) plus the TUI's options and preview cache. Screens never build HTTP clients
or caches: they ask ``app.services`` and call :mod:`sdlib.services` operations with it.
Everything is created lazily on first use, which happens in a worker thread, so that
importing httpx2 or opening SQLite never delays the first frame. A settings change
makes a new ``Services``; the old one stays open until the app exits, because downloads
that started with it may still be using its client.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.services import Context

if TYPE_CHECKING:
    import httpx2

    from sdlib.config import Settings
    from sdlib.library.layouts import Layout
    from sdlib.library.placement import Destination
    from sdlib.tui.images import ImageCache

__all__ = ["PREVIEW_PROTOCOLS", "Services", "TuiOptions", "WorkerPool"]

#: How previews are drawn: auto picks Kitty/Sixel when the terminal answers, else half cells.
PREVIEW_PROTOCOLS = ("auto", "sixel", "kitty", "halfcell", "unicode", "off")


@dataclass(frozen=True)
class TuiOptions:
    """Front-end choices that are not user settings in the config file."""

    #: Models per search request (Civitai allows up to 100).
    page_size: int = 50
    #: auto, sixel, kitty, halfcell, unicode or off (text placeholders only).
    previews: str = "auto"
    #: Downloads running at the same time.
    parallel_downloads: int = 2
    #: Delay before loading the highlighted model's details (keys held down stay cheap).
    detail_delay: float = 0.25
    #: A ``--demo`` session: its settings point at the demo server and a demo webUI, so
    #: nothing is written to the config file (Settings apply for this session only).
    demo: bool = False


class Services(Context):
    """The service context (:class:`sdlib.services.Context`) plus what only the TUI needs:
    its options and the preview image cache. Thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx2.BaseTransport | None = None,
        options: TuiOptions | None = None,
    ) -> None:
        super().__init__(settings, transport=transport)
        self.options = options or TuiOptions()
        self._images: ImageCache | None = None

    def with_settings(self, settings: Settings) -> Services:
        """A fresh ``Services`` for new settings (same transport and options)."""
        return Services(settings, transport=self._transport, options=self.options)

    @property
    def images(self) -> ImageCache:
        with self._lock:
            if self._images is None:
                from sdlib.tui.images import ImageCache

                self._images = ImageCache(self.settings.cache_dir / "previews", self.http)
            return self._images

    def library_root(
        self, root: str | Path | None = None, ui: str | None = None
    ) -> tuple[Path, Layout]:
        """The configured webUI folder and its layout; the TUI says where to set it."""
        from sdlib.errors import UsageError

        if root is None and not self.settings.library.root:
            raise UsageError("no webUI folder is set: choose one in Settings (key 4)")
        return super().library_root(root, ui)

    def destination(
        self, root: str | Path | None = None, ui: str | None = None, **options: Any
    ) -> Destination:
        from sdlib.errors import UsageError

        if root is None and not self.settings.library.root:
            raise UsageError("no webUI folder is set: choose one in Settings (key 4)")
        return super().destination(root, ui, **options)

    def close(self) -> None:
        with self._lock:
            super().close()
            self._images = None


class WorkerPool(ThreadPoolExecutor):
    """The event loop's executor, which runs Textual's thread workers.

    Roomy (two downloads, a scan and a stalled request must not queue a search behind
    them), and it does not wait for running workers when the app closes: asyncio.run would
    otherwise hold the terminal until a download or a Retry-After back-off ended. Downloads
    are told to stop first (their part files are kept); ``sdlib tui`` then exits.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=32, thread_name_prefix="sdlib-tui")

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)
