"""HTTP for every remote sdlib talks to: one client factory, one fast body, bounded reads.

This layer knows HTTP, not any source: it never imports ``sdlib.sources``,
``sdlib.library`` or ``sdlib.download`` (an import-linter contract says so).

* ``build_client(settings)``: the one ``httpx2.Client`` (User-Agent, timeouts, CA bundle,
  proxies, retries with back-off announced as ``RetryNotice``s, the token scoped to its
  origin); ``network_errors`` turns transport failures into ``SourceError`` at the call
  site (``_client``);
* ``FastBodyTransport``: download bodies read straight into the caller's buffers, asked
  for with the ``FAST_BODY`` request extension (``_fastbody``);
* ``read_capped`` / ``loads_bounded`` / ``challenge_of``: answers from servers we do not
  control, read with a cap and parsed with limits (``_bodies``);
* ``raise_for_status``: an HTTP status as an sdlib error, knowing no source; a source
  with its own error bodies (Civitai) maps its answers itself (``_status``);
* ``open_ranged`` / ``RangedFile``: a remote file's first bytes through Range requests,
  read as a seekable file under a byte budget, for looking inside before a download
  (``_ranges``).
"""

from __future__ import annotations

from sdlib.http._bodies import (
    HEAD,
    MAX_DEPTH,
    MAX_FLOAT,
    MAX_INT_DIGITS,
    HostileJSON,
    challenge_of,
    loads_bounded,
    read_capped,
)
from sdlib.http._client import (
    RETRY_STATUSES,
    USER_AGENT,
    RetryNotice,
    RetryTransport,
    ScopedTokenAuth,
    build_client,
    network_errors,
    origin_of,
    parse_ratelimit_reset,
    parse_retry_after,
    translate_error,
)
from sdlib.http._fastbody import ABORT, FAST_BODY, READINTO, FastBodyTransport
from sdlib.http._ranges import FIRST_READ, NO_RANGES, RangedFile, open_ranged
from sdlib.http._status import raise_for_status

__all__ = [
    "ABORT",
    "FAST_BODY",
    "FIRST_READ",
    "HEAD",
    "MAX_DEPTH",
    "MAX_FLOAT",
    "MAX_INT_DIGITS",
    "NO_RANGES",
    "READINTO",
    "RETRY_STATUSES",
    "USER_AGENT",
    "FastBodyTransport",
    "HostileJSON",
    "RangedFile",
    "RetryNotice",
    "RetryTransport",
    "ScopedTokenAuth",
    "build_client",
    "challenge_of",
    "loads_bounded",
    "network_errors",
    "open_ranged",
    "origin_of",
    "parse_ratelimit_reset",
    "parse_retry_after",
    "raise_for_status",
    "read_capped",
    "translate_error",
]
