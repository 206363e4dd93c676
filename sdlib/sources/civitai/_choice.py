"""Which file of a version to fetch: Civitai's own pick, and the record of the choice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sdlib.sources.civitai._fields import _ToDict
from sdlib.sources.civitai._models import _MODEL_FILE_TYPES, CivitaiFile

__all__ = ["DownloadTarget", "choose_file"]


@dataclass(frozen=True)
class DownloadTarget(_ToDict):
    """Exactly which file to fetch and from where: the downloader's input."""

    url: str
    file_name: str
    size: int | None
    #: Civitai hash name -> uppercase hex, as published (may be empty).
    hashes: Mapping[str, str]
    file_id: int
    version_id: int
    model_id: int | None
    model_name: str | None
    version_name: str
    model_type: str | None
    base_model: str | None
    file_type: str
    format: str | None
    weights: str | None
    fp: str | None
    primary: bool
    pickle_scan: str | None = None
    early_access_ends: str | None = None
    air: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("SHA256")


def choose_file(
    files: Sequence[CivitaiFile],
    *,
    type: str | None = None,
    format: str | None = None,
    size: str | None = None,
    fp: str | None = None,
    file_id: int | None = None,
) -> CivitaiFile | None:
    """Pick a file the way Civitai's download endpoint does (reference section 2.9).

    ``file_id`` wins outright. Otherwise filter by ``type``, score format (100), size (10)
    and fp (1) against the request (defaults SafeTensor / pruned / fp16) plus 1000 for a
    model-type file; then reject the winner if it contradicts any parameter the caller gave.
    """
    if file_id is not None:
        return next((f for f in files if f.id == file_id), None)
    pool = [f for f in files if type is None or f.type.lower() == type.lower()]
    if not pool:
        return None
    want_format = format or "SafeTensor"
    want_size = size or "pruned"
    want_fp = fp or "fp16"

    def score(f: CivitaiFile) -> float:
        s = 0.0
        s += 100 if _eq(f.format, want_format) else -100
        s += 10 if _eq(f.weights, want_size) else -10
        s += 1 if _eq(f.fp, want_fp) else -1
        s += 1000 if f.type in _MODEL_FILE_TYPES else 0
        s += 0.01 if f.primary else 0
        return s

    best = max(pool, key=score)
    for given, actual in ((format, best.format), (size, best.weights), (fp, best.fp)):
        if given is not None and not _eq(actual, given):
            return None
    return best


def _eq(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()
