"""What the demo server's hosts share: fault kinds and records, request records, the
threaded HTTP server class and the small helpers its handlers use (stdlib only)."""

from __future__ import annotations

import hashlib
import re
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from sdlib.demo.catalogue import (
    ServedFile,
)

if TYPE_CHECKING:
    from sdlib.demo.server import DemoServer

#: Fault kinds. Status kinds answer with that error instead of the real response; body kinds
#: change how a file body is sent (storage host by default).
FAULT_KINDS: dict[str, str] = {
    "401": "401 login required (download endpoint JSON)",
    "403": "403 no access",
    "403-early": "403 Early Access with a deadline",
    "404": "404 not found",
    "410": "410 archived",
    "429": "429 rate limited (retry_after=SECONDS to send Retry-After)",
    "500": "500 unexpected error",
    "503": "503 busy (Retry-After: 2 unless retry_after= is given; retry_after=none omits it)",
    "html": "an HTML page instead of JSON (status=200 by default)",
    "drop": "close the connection after after_bytes bytes of the body",
    "stall": "stop sending after after_bytes bytes for seconds= seconds, then close",
    "wrong-length": "send the file delta= bytes shorter (negative) or longer, consistently",
    "range-ignored": "answer 200 with the whole file to a Range request",
    "expired": "treat signed storage URLs as expired (403)",
    # What the API publishes as a file's hashes (file_id= for one file, else every file; on
    # until cleared). Civitai's records hold such values; the bytes served stay the same.
    "hash-autov3-full": "publish AutoV3 in full (64 characters), as older Civitai records do",
    "hash-crc32-wrong": "publish a CRC32 that does not match the bytes",
    "hash-no-sha256": "publish no SHA256",
    "hash-no-blake3": "publish no BLAKE3",
    "hash-sha256-wrong": "publish a SHA256 that does not match the bytes",
}
_BODY_KINDS = frozenset({"drop", "stall", "wrong-length", "range-ignored", "expired"})
_HASH_KINDS = frozenset(k for k in FAULT_KINDS if k.startswith("hash-"))

_BROWSER_RE = re.compile(r"mozilla|chrome|safari|firefox|opera|edge", re.IGNORECASE)


@dataclass
class Fault:
    """One switched-on fault. ``times=None`` keeps it on until cleared."""

    kind: str
    match: str
    times: int | None = None
    status: int | None = None
    retry_after: float | None = None
    send_retry_after: bool = True
    after_bytes: int = 0
    seconds: float = 30.0
    delta: int = -1024
    deadline: str = "2030-01-01T00:00:00.000Z"
    hits: int = 0
    #: hash-* kinds: the one file whose published hashes change (None: every file).
    file_id: int | None = None


@dataclass(frozen=True)
class RequestRecord:
    """A request as a server saw it (``server``: "api", "storage", "hub" or "hub-cdn")."""

    server: str
    method: str
    path: str
    headers: Mapping[str, str]
    time: float = field(default_factory=time.time)

    @property
    def authorization(self) -> bool:
        return any(k.lower() == "authorization" for k in self.headers)

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def parse_fault(spec: str) -> dict[str, Any]:
    """``"429:times=2,retry_after=1,match=/api/v1/models"`` -> keyword arguments for add_fault."""
    kind, _, rest = spec.partition(":")
    out: dict[str, Any] = {"kind": kind.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"fault option {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    demo: DemoServer
    role: str

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a cancelled download, a test's timeout) is
        normal for a download server: no traceback. Anything else is still reported."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def _body_sha256(served: ServedFile) -> str:
    """SHA256 of a safetensors file after its header: AutoV3 in full (hashlib, not sdlib)."""
    digest = hashlib.sha256()
    with served.open() as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n)
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest().upper()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end) half-open; "unsatisfiable"; or None to ignore (multi-range, junk)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, end
