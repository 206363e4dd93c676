"""One way to fetch a preview image: bounded size in pixels, bounded size in bytes.

Civitai's image CDN resizes on request: the path segment before the file name says how
(``…/<uuid>/original=true/<id>.jpeg`` or ``…/<uuid>/width=450/<id>.jpeg``; reference
civitai-api.md 3.4). ``preview_url`` asks for at most ``PREVIEW_WIDTH`` pixels wide, so a
preview costs tens of kilobytes instead of a multi-megabyte original. ``fetch_preview``
then streams the answer and stops reading at ``MAX_PREVIEW_BYTES`` (a body that goes past
it is dropped, never read to the end). The TUI's image cache, ``identify`` and
``download``/``install`` sidecar previews all call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from sdlib.errors import SourceError
from sdlib.http import network_errors, read_capped

if TYPE_CHECKING:
    import httpx2

__all__ = ["MAX_PREVIEW_BYTES", "PREVIEW_WIDTH", "fetch_preview", "preview_url"]

#: Pixels wide asked of Civitai's CDN (its own thumbnails use 450).
PREVIEW_WIDTH = 450
#: A preview is at most this many bytes; anything longer is not read past this point.
MAX_PREVIEW_BYTES = 16 << 20

#: Keys of the CDN's transform segment that decide the size (replaced by ``width=N``).
_SIZE_KEYS = frozenset({"width", "height", "original"})


def preview_url(url: str, width: int = PREVIEW_WIDTH) -> str:
    """``url`` asking Civitai's image CDN for at most ``width`` pixels wide.

    Rewrites the transform segment (``original=true``, ``width=1024``, or a list such as
    ``anim=false,width=1024``) keeping its other options, and never asks for more than the
    URL already did. On Civitai's image hosts a URL without a transform segment gets one.
    Other URLs come back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    segs = parts.path.split("/")
    for i in range(len(segs) - 2, 0, -1):  # never the file name, never the leading ""
        items = segs[i].split(",")
        pairs = [item.partition("=") for item in items]
        if not all(sep and key for key, sep, _ in pairs):
            continue
        if not any(key in _SIZE_KEYS for key, _, _ in pairs):
            continue
        asked = next((v for k, _, v in pairs if k == "width" and v.isdigit()), None)
        w = min(width, int(asked)) if asked else width
        kept = [item for item, (key, _, _) in zip(items, pairs, strict=True)
                if key not in _SIZE_KEYS]  # fmt: skip
        segs[i] = ",".join([f"width={w}", *kept])
        return urlunsplit(parts._replace(path="/".join(segs)))
    host = (parts.hostname or "").lower()
    if _is_cdn(host) and len(segs) >= 4 and segs[-1]:  # /<account>/<uuid>/<name>
        segs.insert(len(segs) - 1, f"width={width}")
        return urlunsplit(parts._replace(path="/".join(segs)))
    return url


def _is_cdn(host: str) -> bool:
    """Civitai's image CDN (image.civitai.com, imagecache.civitai.com, on .com/.red/.green)."""
    name, _, domain = host.partition(".")
    return name.startswith("image") and domain in ("civitai.com", "civitai.red", "civitai.green")


def fetch_preview(
    http: httpx2.Client,
    url: str,
    *,
    width: int = PREVIEW_WIDTH,
    max_bytes: int = MAX_PREVIEW_BYTES,
    timeout: float = 30.0,
) -> bytes | None:
    """The bytes of the preview at ``url`` (resized by ``preview_url``), or None when it
    cannot be had: an error status, a network failure, or a body over ``max_bytes``.

    Never raises for the server's sake: a missing preview is never worth failing for.
    """
    target = preview_url(url, width)
    try:
        with network_errors(target), http.stream("GET", target, timeout=timeout) as response:
            if response.status_code != 200:
                return None
            data, over = read_capped(response, max_bytes)
    except SourceError:  # includes BadResponse for a broken gzip body
        return None
    return None if over or not data else data
