"""CivArchive: an unofficial archive of Civitai, asked for models gone from Civitai.

No official documentation exists (reference civarchive.md); this package speaks the JSON
routes public clients use, over the injected client from ``sdlib.http``:

* ``CivArchiveClient``: ``/api/sha256/{hash}`` and ``/api/models/{id}?modelVersionId=``
  (``_client``), answers parsed tolerantly into ``ArchiveAnswer`` records (``_records``);
* ``CivArchiveLookup``: CivArchive as the library's ``sdlib.lookup.Lookup`` (identity by
  SHA256 only, negative answers cached per server) (``_lookup``);
* ``mirror_file``: a live mirror of an archived file as the install path's ``RemoteFile``,
  verified against a SHA256 (``_files``).

It is a fallback: ``sdlib.services.fallback`` asks it only after Civitai found nothing.
"""

from __future__ import annotations

from sdlib.sources.civarchive._client import DEFAULT_URL, CivArchiveClient
from sdlib.sources.civarchive._files import mirror_file, raise_for_mirror
from sdlib.sources.civarchive._lookup import CivArchiveLookup, page_url
from sdlib.sources.civarchive._records import ArchiveAnswer, ArchiveFile, Mirror, parse_answer

__all__ = [
    "DEFAULT_URL",
    "ArchiveAnswer",
    "ArchiveFile",
    "CivArchiveClient",
    "CivArchiveLookup",
    "Mirror",
    "mirror_file",
    "page_url",
    "parse_answer",
    "raise_for_mirror",
]
