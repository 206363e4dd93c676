"""Which published hashes decide that downloaded bytes are the published file, which only warn.

Civitai publishes up to six hashes per file, and some of its records hold one in another
form than today's (a 64-character AutoV3, stored before its database began keeping 12) or
one that is simply wrong (CRC32). Throwing away a file whose SHA256 is right because of
those would be wrong, so:

* **deciding**: the size, and SHA256; where no SHA256 is published, BLAKE3; then AutoV2.
  The first of these the source published decides. A mismatch means the bytes are not the
  published file: the download is discarded, unless the user knowingly accepts what the
  source serves (``accept_mismatch``); the file is then kept and marked unverified.
* **secondary**: every other published hash (CRC32, AutoV1, AutoV3, and BLAKE3/AutoV2 when a
  stronger one decides). AutoV3 compares on the published length (12 characters, or the
  full 64). When the deciding hash matches, a secondary that differs is a warning and is
  recorded, never a failure.
* **nothing decisive published** (only CRC32, AutoV1 or AutoV3, or nothing): the size and
  whatever is published decide, and the result says "unverified".

Unknown hash names and empty values are ignored; comparison ignores case. Pure: no IO.
It judges ``FileHashes`` against published values and needs nothing else, so it lives with
the readers of bytes rather than in the download engine: checking a file already on disk
against what its source published asks the same question without loading any HTTP code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sdlib.hashing import FileHashes

__all__ = ["DECIDING", "Disagreement", "Verification", "check", "published_hashes"]

#: Hashes that decide, strongest first; the first one published is used.
DECIDING = ("SHA256", "BLAKE3", "AutoV2")
_NAMES = {n.lower(): n for n in ("SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3")}
#: The lengths Civitai has published AutoV3 in: the database's 12, the scanner's full 64.
_AUTOV3_LENGTHS = (12, 64)


@dataclass(frozen=True)
class Disagreement:
    """A published hash that differs from the downloaded bytes' own."""

    hash: str
    published: str
    actual: str | None

    def describe(self) -> str:
        return f"{self.hash} (published {self.published}, the file's is {self.actual or 'none'})"

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "published": self.published, "actual": self.actual}


@dataclass(frozen=True)
class Verification:
    """What the published size and hashes say about a file's bytes."""

    #: verified | unverified | mismatch
    status: str
    #: The hash that decided (SHA256, BLAKE3 or AutoV2); None when none was published.
    decided_by: str | None
    #: None when no size was published.
    size_matches: bool | None
    #: Every published hash that differs (the deciding one first, if it does).
    disagreements: tuple[Disagreement, ...] = ()
    #: The bytes did not match and the user kept them anyway (``accept_mismatch``).
    accepted_mismatch: bool = False
    #: The published size, when it differs from the file's.
    expected_size: int | None = None
    actual_size: int | None = None
    #: The published hashes that were compared, in Civitai's spelling.
    checked: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def problem(self) -> str | None:
        """Why the bytes are not the published file (one phrase), or None."""
        parts = []
        if self.size_matches is False:
            parts.append(f"size {self.actual_size:,} bytes, expected {self.expected_size:,}")
        failing = [d for d in self.disagreements if self.decided_by in (None, d.hash)]
        if len(failing) == 1:
            bad = failing[0]
            parts.append(
                f"{bad.hash} differs from what the source published ({bad.published}, "
                f"the file's is {bad.actual or 'none'})"
            )
        elif failing:
            parts.append(
                f"{', '.join(d.hash for d in failing)} differ from what the source published"
            )
        return "; ".join(parts) or None

    def warning(self) -> str | None:
        """One line for the user when there is something to say, else None."""
        if self.accepted_mismatch:
            return f"kept although {self.problem()} (--accept-mismatch); marked unverified"
        if self.status == "unverified":
            checked = (["size"] if self.size_matches else []) + list(self.checked)
            return (
                "unverified: the source publishes no SHA256, BLAKE3 or AutoV2 "
                f"(checked: {', '.join(checked) or 'nothing'})"
            )
        secondary = [d for d in self.disagreements if d.hash != self.decided_by]
        if self.status == "verified" and secondary:
            details = "; ".join(d.describe() for d in secondary)
            return (
                f"the source publishes a different {details}; kept: its "
                f"{self.decided_by} and size match"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "decided_by": self.decided_by,
            "size_matches": self.size_matches,
            "disagreements": [d.to_dict() for d in self.disagreements],
            "accepted_mismatch": self.accepted_mismatch,
            "checked": list(self.checked),
        }

    def accept(self) -> Verification:
        """The same facts, with a mismatch knowingly taken (kept, marked unverified)."""
        if self.status != "mismatch":
            return self
        return replace(self, status="unverified", accepted_mismatch=True)


def published_hashes(published: Mapping[str, Any]) -> dict[str, str]:
    """Known hash names in Civitai's spelling -> upper-case value; others dropped."""
    out: dict[str, str] = {}
    for key, value in published.items():
        name = _NAMES.get(str(key).strip().lower())
        if name is None or not isinstance(value, str) or not value.strip():
            continue
        out[name] = value.strip().upper()
    return out


def check(hashes: FileHashes, published: Mapping[str, Any], size: int | None) -> Verification:
    """Judge ``hashes`` (of the bytes) against a source's published ``size`` and hashes."""
    pub = published_hashes(published)
    decider = next((name for name in DECIDING if name in pub), None)
    diffs = [
        Disagreement(name, value, _ours(hashes, name, value))
        for name, value in pub.items()
        if not _same(hashes, name, value)
    ]
    diffs.sort(key=lambda d: d.hash != decider)  # the deciding one first
    size_matches = None if size is None else hashes.size == size
    if size_matches is False:
        status = "mismatch"
    elif decider is None:
        # Only weak hashes (or none) were published: they decide, but prove little.
        status = "mismatch" if diffs else "unverified"
    elif diffs and diffs[0].hash == decider:
        status = "mismatch"
    else:
        status = "verified"
    return Verification(
        status=status,
        decided_by=decider,
        size_matches=size_matches,
        disagreements=tuple(diffs),
        expected_size=size if size_matches is False else None,
        actual_size=hashes.size if size_matches is False else None,
        checked=tuple(pub),
    )


def _ours(hashes: FileHashes, name: str, published: str) -> str | None:
    if name == "AutoV3" and len(published) == 64:
        return hashes.autov3_full
    return hashes.get(name)


def _same(hashes: FileHashes, name: str, published: str) -> bool:
    if name == "AutoV3" and len(published) not in _AUTOV3_LENGTHS:
        return False
    ours = _ours(hashes, name, published)
    return ours is not None and ours.upper() == published
