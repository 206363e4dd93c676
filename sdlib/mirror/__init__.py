"""A studio mirror: each model file crosses the internet once, then comes from the LAN.

Content-addressed on S3-compatible storage (or any HTTP server holding the same layout):

    PREFIX/sha256/<first two hex>/<64 hex>     the file's bytes
    PREFIX/meta/<64 hex>.json                  what they are and where they came from

* ``MirrorConfig``: ``[mirror]`` + ``SDLIB_MIRROR_URL`` + the standard ``AWS_*`` variables and
  profiles (``_config``);
* ``MirrorMeta`` / ``MirrorSource``: the JSON sidecar; ``object_key`` / ``meta_key``: the
  layout (``_layout``);
* ``Mirror`` / ``open_mirror``: ``object_url`` (a GET-able URL the download engine can
  range and resume: public, or presigned for a private bucket), ``stat``, ``meta``,
  ``entries``, ``hash_object``, and ``push`` (a conditional create: the first writer wins,
  "already exists" is success; big files in parts, never visible half-written)
  (``_mirror``); the S3 client is obstore, the optional ``sdlib[s3]`` extra (``_s3``).

Reading an HTTP mirror or a public bucket needs no S3 library. Errors are sdlib's
(``SourceError`` unreachable, ``AuthRequired``/``AccessDenied`` refused, ``ConfigError``
misconfigured, ``HashMismatch`` a file that is not what it claims); mirror-first callers
treat any of them as a miss and go upstream.
"""

from __future__ import annotations

from sdlib.mirror._config import Credentials, MirrorConfig
from sdlib.mirror._layout import (
    MirrorMeta,
    MirrorSource,
    check_sha256,
    meta_key,
    object_key,
    sha256_of_key,
)
from sdlib.mirror._mirror import Mirror, MirrorEntry, Progress, PushResult, open_mirror

__all__ = [
    "Credentials",
    "Mirror",
    "MirrorConfig",
    "MirrorEntry",
    "MirrorMeta",
    "MirrorSource",
    "Progress",
    "PushResult",
    "check_sha256",
    "meta_key",
    "object_key",
    "open_mirror",
    "sha256_of_key",
]
