"""The mirror's layout and its JSON sidecar: pure values, no IO.

Objects live at ``PREFIX/sha256/<first two hex>/<64 hex>`` (the fan-out is for people and
``ls``; S3 needs none) and each has a sidecar at ``PREFIX/meta/<64 hex>.json`` saying what
the bytes are and where they came from. The SHA256 is in the key because S3 cannot vouch for
a multipart object's full SHA256: readers verify it while streaming.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdlib.errors import UsageError
from sdlib.hashing import HASH_NAMES, FileHashes

__all__ = [
    "META_VERSION",
    "MirrorMeta",
    "MirrorSource",
    "check_sha256",
    "meta_key",
    "object_key",
    "sha256_of_key",
]

META_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_OBJECT_KEY = re.compile(r"(?:^|/)sha256/([0-9a-f]{2})/([0-9a-f]{64})$")


def check_sha256(value: str) -> str:
    """``value`` as 64 lower-case hex digits; UsageError (exit 2) otherwise."""
    text = value.strip()
    if not _HEX64.match(text):
        raise UsageError(f"not a SHA256 (64 hex digits): {value!r}")
    return text.lower()


def object_key(sha256: str) -> str:
    """The object's key below the prefix: ``sha256/<aa>/<64 hex>``."""
    sha = check_sha256(sha256)
    return f"sha256/{sha[:2]}/{sha}"


def meta_key(sha256: str) -> str:
    return f"meta/{check_sha256(sha256)}.json"


def sha256_of_key(key: str) -> str | None:
    """The SHA256 an object key names, None for any other key (a sidecar, a stray upload,
    a key whose fan-out folder does not match its name)."""
    m = _OBJECT_KEY.search(key)
    if m is None or not m.group(2).startswith(m.group(1)):
        return None
    return m.group(2)


@dataclass(frozen=True)
class MirrorSource:
    """One place the bytes are published upstream."""

    #: "civitai", "huggingface" or "url".
    type: str
    model_id: int | None = None
    version_id: int | None = None
    file_id: int | None = None
    #: Hub ``owner/name``, the commit and the file's path in the repo.
    repo: str | None = None
    revision: str | None = None
    path: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MirrorSource:
        def num(key: str) -> int | None:
            v = raw.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        def text(key: str) -> str | None:
            v = raw.get(key)
            return v if isinstance(v, str) else None

        return cls(type=text("type") or "url", model_id=num("model_id"),
                   version_id=num("version_id"), file_id=num("file_id"), repo=text("repo"),
                   revision=text("revision"), path=text("path"), url=text("url"))  # fmt: skip

    def describe(self) -> str:
        if self.type == "civitai":
            return f"civitai version {self.version_id} file {self.file_id}"
        if self.type == "huggingface":
            return f"hf {self.repo}@{self.revision or 'main'}/{self.path}"
        return self.url or self.type


@dataclass(frozen=True)
class MirrorMeta:
    """The sidecar: what an object is, as sdlib knew it when it was pushed."""

    hashes: FileHashes
    kind: str = "unknown"
    base: str = "unknown"
    precision: str | None = None
    #: File names the bytes were seen under, first seen first.
    names: tuple[str, ...] = ()
    sources: tuple[MirrorSource, ...] = ()
    #: Who pushed it (user@host) and when (ISO 8601, UTC).
    pushed_by: str | None = None
    pushed_at: str | None = None

    @property
    def sha256(self) -> str:
        return self.hashes.sha256.lower()

    @property
    def size(self) -> int:
        return self.hashes.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": META_VERSION,
            "sha256": self.sha256,
            "size": self.size,
            "hashes": {k: v for k, v in self.hashes.to_dict().items() if k != "size"},
            "kind": self.kind,
            "base": self.base,
            "precision": self.precision,
            "names": list(self.names),
            "sources": [s.to_dict() for s in self.sources],
            "pushed_by": self.pushed_by,
            "pushed_at": self.pushed_at,
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, raw: Any) -> MirrorMeta | None:
        """The sidecar parsed, or None if it is not one (a sidecar is advisory: the key's
        SHA256 and the bytes are what count)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("hashes"), dict):
            return None
        h = raw["hashes"]
        size = raw.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        values = {n: h.get(n) if isinstance(h.get(n), str) else None for n in HASH_NAMES}
        sha = raw.get("sha256") or values["sha256"]
        if not isinstance(sha, str) or not _HEX64.match(sha):
            return None
        values["sha256"] = sha.upper()
        if not values["autov2"]:
            values["autov2"] = sha[:10].upper()
        hashes = FileHashes(size=size, sha256=values["sha256"] or "", autov1=values["autov1"],
                            autov2=values["autov2"] or "", autov3=values["autov3"],
                            crc32=values["crc32"] or "", blake3=values["blake3"] or "")  # fmt: skip
        names = tuple(n for n in raw.get("names") or () if isinstance(n, str))
        sources = tuple(MirrorSource.from_dict(s) for s in raw.get("sources") or ()
                        if isinstance(s, dict))  # fmt: skip

        def text(key: str) -> str | None:
            v = raw.get(key)
            return v if isinstance(v, str) else None

        return cls(hashes=hashes, kind=text("kind") or "unknown", base=text("base") or "unknown",
                   precision=text("precision"), names=names, sources=sources,
                   pushed_by=text("pushed_by"), pushed_at=text("pushed_at"))  # fmt: skip
