"""What every source answers for a reference: one file to fetch, and the facts about it.

A source (Civitai today; the Hugging Face Hub next) turns a reference the user typed into a
:class:`RemoteFile`: where the bytes are, their published size and hashes, the container,
what the source says the file is (kind, base), the pages and previews that describe it, and
the error mapping its download host needs. The install path (``sdlib.install``) knows only
this record: it downloads through the engine, verifies, classifies, places and writes
sidecars without asking which source it came from. ``record`` carries the source's own
answer for the sidecar that front ends read (Civitai's version JSON: ``.civitai.info``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.lookup import Preview
from sdlib.taxonomy import Base, Container, Kind

if TYPE_CHECKING:
    import httpx2

__all__ = ["ANY_FILE", "FileChoice", "RemoteFile"]


@dataclass(frozen=True)
class FileChoice:
    """Which file of a version: Civitai's own filters, or an exact file id."""

    type: str | None = None
    format: str | None = None
    size: str | None = None
    fp: str | None = None
    file_id: int | None = None


#: No preference: the file the source itself would pick (Civitai's primary file).
ANY_FILE = FileChoice()


@dataclass(frozen=True)
class RemoteFile:
    """One file a source offers, with everything a download and its placement need."""

    #: The source's name: ``civitai``, ``hf``.
    source: str
    #: The reference that names exactly this file's version, for records and resumes
    #: (``4384@128713``; ``hf:ORG/REPO@<commit>/PATH``).
    pinned_ref: str
    url: str
    file_name: str
    size: int | None
    #: Published hashes by Civitai's names (``SHA256``, ``AutoV2``, ``BLAKE3``...), upper hex.
    hashes: Mapping[str, str]
    container: Container | None
    #: What the source says the file is (``Kind.UNKNOWN`` when it does not say).
    kind: Kind
    base: Base
    #: The base as the source writes it (``SD 1.5``), for notes and sidecars.
    base_label: str | None
    #: "DreamShaper 8": the model and version, for progress lines and records.
    title: str
    #: One line saying which file was picked and why.
    picked: str
    #: The page a person opens for this model version.
    page_url: str
    #: Extra words that tell two files of the same name apart (version and file ids).
    tags: tuple[str, ...] = ()
    model_id: int | None = None
    version_id: int | None = None
    file_id: int | None = None
    #: The exact revision the bytes come from (a Hub commit), when the source has one.
    revision: str | None = None
    model_name: str | None = None
    model_type: str | None = None
    #: The model's description and the version's (HTML as published).
    description: str | None = None
    version_description: str | None = None
    trained_words: tuple[str, ...] = ()
    nsfw: bool = False
    model_tags: tuple[str, ...] = ()
    author: str | None = None
    #: The source's metadata of the file (fp, size, format) as it publishes it.
    file_metadata: Mapping[str, Any] = field(default_factory=dict)
    previews: tuple[Preview, ...] = ()
    #: The source's own record, written as-is to its sidecar (``.civitai.info``).
    record: Mapping[str, Any] | None = None
    #: Maps the download host's error answers to sdlib errors (the engine knows no source).
    raise_for_status: Callable[[httpx2.Response], None] | None = None
    #: A fresh URL when a signed one expired mid-download.
    refresh: Callable[[], str] | None = None
    #: The same bytes already on this machine (the Hugging Face cache): linked or copied
    #: instead of downloaded, and verified all the same.
    cached_path: Path | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("SHA256")
