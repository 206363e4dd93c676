"""The services screens call, built once from ``Settings`` by the app and handed down.

Screens never build HTTP clients or caches: they ask ``app.services`` (rule 6 of the style
notes). Everything here is created lazily on first use, which happens in a worker thread,
so that importing httpx or opening SQLite never delays the first frame. A settings change
makes a new ``Services``; the old one stays open until the app exits, because downloads
that started with it may still be using its client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from sdlib.config import Settings
    from sdlib.download import DownloadEvent
    from sdlib.hashcache import HashCache
    from sdlib.install import Installer
    from sdlib.library.index import Index
    from sdlib.library.layouts import Layout
    from sdlib.library.placement import Destination
    from sdlib.sources.civitai import CivitaiClient
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


class Services:
    """Lazily built clients and caches for one ``Settings``. Thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        options: TuiOptions | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or TuiOptions()
        self._transport = transport
        self._lock = threading.RLock()
        self._http: httpx.Client | None = None
        self._civitai: CivitaiClient | None = None
        self._hashes: HashCache | None = None
        self._images: ImageCache | None = None
        self._index: Index | None = None

    def with_settings(self, settings: Settings) -> Services:
        """A fresh ``Services`` for new settings (same transport and options)."""
        return Services(settings, transport=self._transport, options=self.options)

    @property
    def http(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                from sdlib.http import build_client

                self._http = build_client(self.settings, self._transport)
            return self._http

    @property
    def civitai(self) -> CivitaiClient:
        with self._lock:
            if self._civitai is None:
                from sdlib.sources.civitai import CivitaiClient

                self._civitai = CivitaiClient(
                    self.http,
                    base_url=self.settings.civitai.base_url,
                    nsfw=self.settings.civitai.nsfw,
                )
            return self._civitai

    @property
    def hashes(self) -> HashCache:
        with self._lock:
            if self._hashes is None:
                from sdlib.hashcache import HashCache

                self._hashes = HashCache(self.settings.cache_dir / "hashes.sqlite")
            return self._hashes

    @property
    def images(self) -> ImageCache:
        with self._lock:
            if self._images is None:
                from sdlib.tui.images import ImageCache

                self._images = ImageCache(self.settings.cache_dir / "previews", self.http)
            return self._images

    @property
    def index(self) -> Index:
        """The library index (SQLite in the data dir), shared with ``sdlib scan``."""
        with self._lock:
            if self._index is None:
                from sdlib.library.index import Index

                self._index = Index.for_settings(self.settings)
            return self._index

    def library_root(self) -> tuple[Path, Layout]:
        """The webUI folder and its layout (with folder overrides), as ``sdlib scan`` uses."""
        from sdlib.errors import UsageError
        from sdlib.library.scan import load_layout

        lib = self.settings.library
        if not lib.root:
            raise UsageError("no webUI folder is set: choose one in Settings (key 4)")
        root = Path(lib.root).expanduser()
        if not root.is_dir():
            raise UsageError(f"the webUI folder {root} is not a folder (see Settings)")
        return root, load_layout(root, lib.ui, dict(lib.folders))

    def destination(self) -> Destination:
        """Where downloads go: the configured webUI root and layout (UsageError if unset)."""
        from sdlib.errors import UsageError
        from sdlib.library.placement import Destination

        lib = self.settings.library
        if not lib.root:
            raise UsageError("no webUI folder is set: choose one in Settings (key 4)")
        dest = Destination.for_ui(Path(lib.root), lib.ui)
        if lib.folders and dest.layout is not None:
            dest = replace(dest, layout=dest.layout.with_overrides(lib.folders))
        return dest

    def installer(
        self,
        *,
        on_event: Callable[[DownloadEvent], None] | None,
        cancel: threading.Event | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> Installer:
        """An ``Installer`` (the CLI's download path) into ``destination()``.

        ``cancel`` stops the download at its next write, keeping the part file; retries
        wait on it too, so a pause never sits out a back-off.
        """
        from sdlib.download import DownloadOptions
        from sdlib.install import Installer
        from sdlib.sources.civitai import raise_for_status

        options = DownloadOptions.from_settings(self.settings, raise_for_status=raise_for_status)
        if cancel is not None:

            def sleep(seconds: float) -> None:
                cancel.wait(seconds)  # a pause ends a back-off at once

            options = replace(options, cancel=cancel, sleep=sleep)
        return Installer(
            civitai=self.civitai,
            http=self.http,
            destination=self.destination(),
            options=options,
            hashes=self.hashes,
            previews=True,
            nsfw=self.settings.civitai.nsfw,
            on_event=on_event,
            on_note=on_note or (lambda _m: None),
        )

    def close(self) -> None:
        with self._lock:
            if self._hashes is not None:
                self._hashes.close()
                self._hashes = None
            if self._index is not None:
                self._index.close()
                self._index = None
            if self._http is not None:
                self._http.close()
                self._http = None
            self._civitai = None
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
