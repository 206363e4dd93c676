"""The context every operation runs in: built once from ``Settings``, owns what is shared.

The HTTP client, the Civitai client, the library index, the hash cache and the download
destination are created lazily on first use (so building a context costs nothing and
importing httpx2 or opening SQLite never delays a TUI frame) and closed together. The CLI
builds one per command, the TUI one per settings, a script one per ``with`` block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

    from sdlib.config import Settings
    from sdlib.download import DownloadEvent
    from sdlib.hashcache import HashCache
    from sdlib.http import RetryNotice
    from sdlib.install import Installer
    from sdlib.library.index import Index
    from sdlib.library.layouts import Layout
    from sdlib.library.placement import Destination
    from sdlib.lookup import Lookup
    from sdlib.mirror import Mirror
    from sdlib.sources.civitai import CivitaiClient
    from sdlib.sources.hf import HubClient

__all__ = ["Context"]


class Context:
    """Lazily built clients and stores for one ``Settings``. Thread-safe.

    ``transport`` replaces the network (tests use ``httpx2.MockTransport``); everything else
    comes from ``settings``. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, settings: Settings | None = None, *, transport: httpx2.BaseTransport | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:  # fmt: skip
        #: Told of each HTTP retry before its back-off (the CLI prints one line per retry).
        self.on_retry = on_retry
        if settings is None:
            from sdlib.config import load_settings

            settings = load_settings()
        self.settings = settings
        self._transport = transport
        self._lock = threading.RLock()
        self._http: httpx2.Client | None = None
        self._archive_http: httpx2.Client | None = None
        self._webui_http: httpx2.Client | None = None
        self._civitai: CivitaiClient | None = None
        self._hub: HubClient | None = None
        self._hashes: HashCache | None = None
        self._index: Index | None = None
        self._mirror: Mirror | None = None
        self._mirror_http: httpx2.Client | None = None
        self._mirror_open = False

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared clients and stores -------------------------------------------------------------

    @property
    def http(self) -> httpx2.Client:
        with self._lock:
            if self._http is None:
                from sdlib.http import build_client

                self._http = build_client(self.settings, self._transport, on_retry=self.on_retry)
            return self._http

    @property
    def archive_http(self) -> httpx2.Client:
        """For unofficial fallback sources (CivArchive): ``[civarchive] timeout`` for each
        request and no retries, so a slow or down archive never holds a command up."""
        with self._lock:
            if self._archive_http is None:
                from sdlib.http import build_client

                net = self.settings.network
                t = self.settings.civarchive.timeout
                net = replace(net, retries=0, connect_timeout=min(net.connect_timeout, t),
                              read_timeout=min(net.read_timeout, t))  # fmt: skip
                self._archive_http = build_client(
                    replace(self.settings, network=net), self._transport
                )
            return self._archive_http

    @property
    def webui_http(self) -> httpx2.Client:
        """For telling running webUIs to refresh (``[webui.NAME]``, ``services.refresh``):
        no retries (a webUI that is not running is only noted), no Civitai or Hub token, and
        no ``[network] proxy`` (that is for reaching the internet; a webUI is usually local;
        the ``*_PROXY`` variables with ``NO_PROXY`` still apply). Callers give each request
        its webUI's timeout and credentials."""
        with self._lock:
            if self._webui_http is None:
                from sdlib.http import build_client

                s = self.settings
                net = replace(s.network, retries=0, proxy=None)
                s = replace(s, network=net, civitai=replace(s.civitai, token=None),
                            huggingface=replace(s.huggingface, token=None))  # fmt: skip
                self._webui_http = build_client(s, self._transport)
            return self._webui_http

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
    def hub(self) -> HubClient:
        """The Hugging Face Hub at the configured endpoint, over :attr:`http` (which sends
        the Hub token to that endpoint only)."""
        with self._lock:
            if self._hub is None:
                from sdlib.sources.hf import HubClient

                hub = self.settings.huggingface
                self._hub = HubClient(self.http, endpoint=hub.endpoint, token=bool(hub.token))
            return self._hub

    @property
    def hashes(self) -> HashCache:
        with self._lock:
            if self._hashes is None:
                from sdlib.hashcache import HashCache

                self._hashes = HashCache(self.settings.cache_dir / "hashes.sqlite")
            return self._hashes

    @property
    def index(self) -> Index:
        """The library index (SQLite in the data dir), shared by every face."""
        with self._lock:
            if self._index is None:
                from sdlib.library.index import Index

                self._index = Index.for_settings(self.settings)
            return self._index

    @property
    def mirror(self) -> Mirror | None:
        """The studio mirror (``[mirror] url`` / ``SDLIB_MIRROR_URL``), None when none is
        configured. Its HTTP client retries once (a down mirror must not hold a download up:
        callers go upstream) and carries no Civitai or Hub token."""
        with self._lock:
            if not self._mirror_open:
                s = self.settings
                if s.mirror.url:  # no mirror, no import (every download asks)
                    from sdlib.http import build_client
                    from sdlib.mirror import open_mirror

                    net = replace(
                        s.network, retries=1, connect_timeout=min(s.network.connect_timeout, 5.0)
                    )
                    s = replace(s, network=net, civitai=replace(s.civitai, token=None),
                                huggingface=replace(s.huggingface, token=None))  # fmt: skip
                    self._mirror_http = build_client(s, self._transport)
                    self._mirror = open_mirror(self.settings, self._mirror_http, hashes=self.hashes)
                self._mirror_open = True
            return self._mirror

    def remote(self, rate: float = 4.0) -> Lookup:
        """The source's answers for the library (``identify``, ``updates``), cached in the
        index per server, at most ``rate`` requests a second. Its ``requests`` and
        ``cache_hits`` count what it did."""
        from sdlib.services.fallback import library_lookup

        # Civitai, then (on a miss) the other Civitai host and CivArchive: services.fallback.
        return library_lookup(self, rate)

    def sha256_of(self) -> Callable[[str], str | None]:
        """A file's SHA256 from the hash cache (hashing it if needed); None if unreadable."""
        from sdlib.errors import SdlibError

        hashes = self.hashes

        def sha256_of(path: str) -> str | None:
            try:
                return hashes.get(path)[0].sha256
            except (OSError, SdlibError):
                return None

        return sha256_of

    # -- where the library is ------------------------------------------------------------------

    def library_root(
        self, root: str | Path | None = None, ui: str | None = None
    ) -> tuple[Path, Layout]:
        """A webUI folder (``root``, else ``[library] root``) and its layout (``ui``, else
        ``[library] ui``, with the configured folder overrides)."""
        from sdlib.errors import UsageError
        from sdlib.library.scan import load_layout

        lib = self.settings.library
        path = self._root(root)
        if not path.is_dir():
            raise UsageError(f"the webUI folder {path} is not a folder")
        return path, load_layout(path, ui or lib.ui, dict(lib.folders))

    def destination(
        self, root: str | Path | None = None, ui: str | None = None, *,
        folder: str | Path | None = None, create: bool = False,
    ) -> Destination:  # fmt: skip
        """Where downloads go: a webUI root (default: the configured one) and its layout.

        ``folder`` instead puts every file into one plain folder. ``create`` makes a webUI root
        that does not exist yet (a new install), which needs a named ``ui``: there is nothing
        to detect in a missing folder, and a misspelt name leaves no empty folder behind.
        """
        from sdlib.errors import UsageError
        from sdlib.library.placement import Destination

        if folder is not None:
            if root is not None or ui is not None:
                raise UsageError("use either --to DIR or --ui/--root, not both")
            return Destination.folder(Path(folder).expanduser())
        lib = self.settings.library
        path = self._root(root)
        ui = ui or lib.ui
        if create and not path.exists():
            if ui.lower() == "auto":
                raise UsageError(
                    f"{path} does not exist yet; say which webUI it is for with --ui "
                    "(a1111, forge, reforge, sdnext, comfyui, stabilitymatrix)"
                )
            from sdlib.library.layouts import get_layout

            get_layout(ui)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None
        dest = Destination.for_ui(path, ui)
        if lib.folders and dest.layout is not None:
            dest = replace(dest, layout=dest.layout.with_overrides(lib.folders))
        if self.settings.store.path:  # a root linked to the store downloads into it
            from sdlib.services.store import with_store

            dest = with_store(self.settings, dest)
        return dest

    def _root(self, root: str | Path | None) -> Path:
        """``root``, else ``[library] root`` (UsageError when neither is set)."""
        from sdlib.errors import UsageError

        if root is None:
            root = self.settings.library.root
            if not root:
                raise UsageError(
                    "no webUI folder is set: give one, or set [library] root in the config"
                )
        return Path(root).expanduser()

    def installer(
        self,
        *,
        on_event: Callable[[DownloadEvent], None] | None = None,
        cancel: threading.Event | None = None,
        on_note: Callable[[str], None] | None = None,
        destination: Destination | None = None,
        previews: bool = True,
        overrides: Mapping[str, Any] | None = None,
    ) -> Installer:
        """An ``Installer`` into ``destination`` (default: :meth:`destination`).

        ``cancel`` stops the download at its next write, keeping the part file; retries
        wait on it too, so a pause never sits out a back-off. ``overrides`` are
        ``DownloadOptions`` fields that replace the settings' (``connections=1``...).
        """
        from sdlib.download import DownloadOptions
        from sdlib.errors import SdlibError
        from sdlib.services._installer import RecordingInstaller
        from sdlib.services.fallback import archive_resolver
        from sdlib.services.remote import record_install
        from sdlib.sources.civitai import raise_for_status

        options = DownloadOptions.from_settings(
            self.settings, raise_for_status=raise_for_status, **dict(overrides or {})
        )
        if cancel is not None:

            def sleep(seconds: float) -> None:
                cancel.wait(seconds)  # a pause ends a back-off at once

            options = replace(options, cancel=cancel, sleep=sleep)
        try:  # a mirror that cannot be opened is a miss: every file comes from upstream
            mirror = self.mirror
        except SdlibError as exc:
            (on_note or (lambda _m: None))(f"mirror not used: {exc.message}")
            mirror = None
        # Every install, from any face, is recorded in the library index with its identity.
        return RecordingInstaller(
            record=lambda result: record_install(self, result),
            civitai=self.civitai,
            hub=self.hub,
            http=self.http,
            destination=destination or self.destination(),
            options=options,
            hashes=self.hashes,
            previews=previews,
            nsfw=self.settings.civitai.nsfw,
            on_event=on_event,
            on_note=on_note or (lambda _m: None),
            fallback=archive_resolver(self, on_note or (lambda _m: None)),
            mirror=mirror,
            mirror_http=self._mirror_http,
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
            if self._archive_http is not None:
                self._archive_http.close()
                self._archive_http = None
            if self._webui_http is not None:
                self._webui_http.close()
                self._webui_http = None
            if self._mirror_http is not None:
                self._mirror_http.close()
                self._mirror_http = None
            self._mirror = None
            self._mirror_open = False
            self._civitai = None
            self._hub = None
