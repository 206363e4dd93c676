"""Reading answers from servers we do not control: capped while streaming, parsed bounded.

``read_capped(response, limit)`` reads at most ``limit`` decoded bytes of a streamed
``httpx2.Response`` and stops there: a 200 MB answer costs ``limit`` bytes of memory, not
200 MB, and a ``Content-Encoding: gzip`` bomb is inflated only up to ``limit`` (it decodes
the raw stream itself with ``zlib``'s ``max_length`` instead of letting httpx2 inflate a whole
network chunk at once). ``loads_bounded(body)`` is ``json.loads`` that refuses JSON nested
deeper than ``MAX_DEPTH``, integers longer than ``MAX_INT_DIGITS`` digits, numbers that
are not finite or beyond ``MAX_FLOAT``, and the non-JSON ``NaN``/``Infinity`` literals,
raising ``HostileJSON`` (a ``ValueError``) with the reason. Callers turn both outcomes into
``BadResponse`` (exit 7) with one line.

``challenge_of(response, body)`` recognises a CDN's browser challenge page (Cloudflare's
"Just a moment...", DDoS-Guard...) so that it is reported as such rather than as "access
denied" or "not JSON".

Transport errors raised while reading are left to the caller's ``network_errors`` block.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sdlib.errors import BadResponse

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "HEAD",
    "MAX_DEPTH",
    "MAX_FLOAT",
    "MAX_INT_DIGITS",
    "HostileJSON",
    "challenge_of",
    "loads_bounded",
    "read_capped",
]

#: Civitai's deepest answers (image meta inside versions inside models) nest about 8 deep.
MAX_DEPTH = 64
#: Seeds, the longest integers Civitai sends, have 20 digits.
MAX_INT_DIGITS = 32
#: JavaScript, which writes Civitai's JSON, switches to exponent notation at 1e21.
MAX_FLOAT = 1e21


class HostileJSON(ValueError):
    """JSON that is well-formed but not something an API would send (the reason is str())."""


#: Inflated bytes per step (so the output is never held twice at full size).
_STEP = 1 << 20
#: What is kept of a body that went past the cap: enough to tell what it was (an HTML page?).
HEAD = 64 << 10


def read_capped(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """(the decoded body, False) when it fits in ``limit`` bytes, else (its first ``HEAD``
    bytes, True). Closes ``response``.

    Works on streamed responses (``client.stream``/``send(stream=True)``) without ever
    holding more than ``limit`` bytes plus one network chunk; on a response already read
    it only slices ``content``.
    """
    try:
        if response.is_stream_consumed or hasattr(response, "_content"):
            content = response.content
            over = len(content) > limit
            return (content[:HEAD] if over else content), over
        declared = _content_length(response)
        if declared is not None and declared > limit and not _encoding(response):
            # Said so up front: read only enough to tell what it is (a challenge page?).
            head, _ = _collect(response.iter_raw(), min(limit, HEAD))
            return head, True
        encoding = _encoding(response)
        if encoding in ("gzip", "x-gzip", "deflate"):
            return _inflate(response.iter_raw(), encoding, limit)
        if encoding:  # br, zstd...: httpx2 decodes; still stop at the first chunk past the cap
            return _collect(response.iter_bytes(), limit)
        return _collect(response.iter_raw(), limit)
    finally:
        response.close()


def _content_length(response: httpx2.Response) -> int | None:
    try:
        value = int(response.headers.get("content-length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _encoding(response: httpx2.Response) -> str:
    value = response.headers.get("content-encoding", "").strip().lower()
    return "" if value == "identity" else value


def _collect(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    out = bytearray()
    for chunk in chunks:
        if len(chunk) > limit - len(out):
            return _head(out, chunk), True
        out += chunk
    return bytes(out), False


def _head(out: bytearray, more: bytes = b"") -> bytes:
    return bytes(out[:HEAD]) if len(out) >= HEAD else bytes(out) + more[: HEAD - len(out)]


def _inflate(chunks: Iterator[bytes], encoding: str, limit: int) -> tuple[bytes, bool]:
    """gzip/deflate decoded with at most ``limit + 1`` bytes of output ever produced."""
    wbits = zlib.MAX_WBITS | 16 if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    first = True
    out = bytearray()
    try:
        for chunk in chunks:
            if first and encoding == "deflate" and chunk and (chunk[0] & 0x0F) != 8:
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
            first = False
            data = chunk
            while data and not inflater.eof:
                out += inflater.decompress(data, min(_STEP, limit - len(out) + 1))
                if len(out) > limit:
                    return _head(out), True
                data = inflater.unconsumed_tail
            if inflater.eof:
                break
        out += inflater.flush()  # all input went through decompress: only a small remainder
    except zlib.error as exc:
        raise BadResponse(f"the server sent a body that is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        return _head(out), True
    return bytes(out), False


# --- JSON ---------------------------------------------------------------------------------------


def _parse_int(text: str) -> int:
    digits = len(text) - (text[:1] == "-")
    if digits > MAX_INT_DIGITS:
        raise HostileJSON(f"an integer of {digits} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise HostileJSON(f"a number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_FLOAT:
        raise HostileJSON(f"the number {text[:24]} (out of range)")
    return value


def _parse_constant(name: str) -> Any:
    raise HostileJSON(f"{name} (not a JSON number)")


def loads_bounded(body: bytes | str) -> Any:
    """``json.loads`` with limits (see the module docstring).

    Raises ``json.JSONDecodeError`` / ``UnicodeDecodeError`` for malformed input and
    ``HostileJSON`` for well-formed input past the limits.
    """
    try:
        data = json.loads(
            body,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        raise HostileJSON(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    _check_depth(data)
    return data


def _check_depth(data: Any) -> None:
    """Refuse containers nested deeper than ``MAX_DEPTH`` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise HostileJSON(f"JSON nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


# --- CDN challenges -----------------------------------------------------------------------------

_CHALLENGE_MARKS = (
    (b"just a moment...", "Cloudflare"),
    (b"cf-chl", "Cloudflare"),
    (b"challenge-platform", "Cloudflare"),
    (b"attention required! | cloudflare", "Cloudflare"),
    (b"checking your browser", "a CDN"),
    (b"ddos-guard", "DDoS-Guard"),
    (b"please enable javascript and cookies", "a CDN"),
)


def challenge_of(response: httpx2.Response, body: bytes) -> str | None:
    """Who served a browser challenge instead of the answer ("Cloudflare"...), or None."""
    if response.headers.get("cf-mitigated", "").strip().lower() == "challenge":
        return "Cloudflare"
    ctype = response.headers.get("content-type", "").lower()
    head = body[:16384].lower()
    if "html" not in ctype and not head.lstrip().startswith(b"<"):
        return None
    for mark, who in _CHALLENGE_MARKS:
        if mark in head:
            return who
    return None
