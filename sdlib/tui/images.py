"""Preview images: fetched through the injected HTTP client, cached on disk, decoded small.

Cache layout (``<cache dir>/previews``; safe to delete at any time)::

    previews/
      3f/3f9a...c1.img      the bytes as served (PNG, JPEG, WebP or GIF; never video)

Images are fetched by ``sdlib.sources.civitai.fetch_preview`` (the CDN asked for a small
width, the body capped while streaming). Files are named by the SHA-256 of the URL, written
atomically, and trimmed oldest-first
when the folder grows past ``max_bytes``. Decoding happens in a worker thread: Pillow opens
the bytes with decompression bombs treated as errors, takes the first frame, and shrinks it
to the pixel box the widget will show, so the terminal renderer never gets a large image.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.sources.civitai import MAX_PREVIEW_BYTES

if TYPE_CHECKING:
    import httpx2

__all__ = ["ImageCache", "decode_preview"]

#: The one preview cap, also for local preview sidecars.
MAX_IMAGE_BYTES = MAX_PREVIEW_BYTES
#: Pillow's bomb limit for previews (pixels); 4096 x 4096 is generous for a preview.
MAX_PIXELS = 4096 * 4096


class ImageCache:
    """Disk cache of preview image bytes keyed by URL. Thread-safe."""

    def __init__(self, directory: Path, http: httpx2.Client, *, max_bytes: int = 256 << 20):
        self.directory = directory
        self._http = http
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._writes = 0

    def path_for(self, url: str) -> Path:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.directory / key[:2] / f"{key[:32]}.img"

    def cached(self, url: str) -> bytes | None:
        path = self.path_for(url)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: trimmed last
        return data

    def get(self, url: str) -> bytes | None:
        """The image at ``url`` from the cache, else fetched and cached; None if unusable."""
        data = self.cached(url)
        if data is not None:
            return data
        data = self._fetch(url)
        if data is None:
            return None
        self._store(url, data)
        return data

    def _fetch(self, url: str) -> bytes | None:
        from sdlib.library.sidecars import image_extension
        from sdlib.sources.civitai import fetch_preview

        data = fetch_preview(self._http, url)  # resized by the CDN, capped while streaming
        # A preview may be a video (mp4/webm): those are not drawn, and not cached.
        return data if data and image_extension(data[:16]) else None

    def _store(self, url: str, data: bytes) -> None:
        path = self.path_for(url)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        with self._lock:
            self._writes += 1
            due = self._writes % 32 == 1
        if due:
            self.trim()

    def trim(self) -> None:
        """Delete least recently used files until the cache fits in ``max_bytes``."""
        entries: list[tuple[float, int, Path]] = []
        with contextlib.suppress(OSError):
            for path in self.directory.glob("*/*.img"):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self._max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


def decode_preview(data: bytes, box: tuple[int, int]) -> Any:
    """A small RGB ``PIL.Image`` of ``data`` fitting ``box`` (pixels), or None if undecodable.

    Returns ``Any`` so that callers need not import Pillow's types.
    """
    import io
    import warnings

    try:
        from PIL import Image
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data))
            if opened.width * opened.height > MAX_PIXELS:
                return None
            opened.seek(0)
            opened.draft("RGB", box)  # JPEG: decode at a reduced scale
            image = opened.convert("RGB")
            image.thumbnail((max(1, box[0]), max(1, box[1])))
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombWarning,
            Image.DecompressionBombError,
        ):
            return None
    return image
