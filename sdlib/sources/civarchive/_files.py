"""A file CivArchive lists a live mirror for, as the install path's ``RemoteFile``.

The mirror's bytes are trusted only through their SHA256: the record's other hashes and its
rounded size are never published to the download engine, which decides on SHA256 (and the
size the mirror's server reports). ``raise_for_mirror`` maps a mirror host's statuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sdlib.errors import AccessDenied, NotFound, SourceError
from sdlib.sources.civarchive._lookup import page_url
from sdlib.sources.protocol import RemoteFile
from sdlib.taxonomy import CIVITAI_TYPE_TO_KIND, Container, Kind, base_from_civitai

if TYPE_CHECKING:
    import httpx2

    from sdlib.sources.civarchive._records import ArchiveAnswer, ArchiveFile, Mirror

__all__ = ["mirror_file", "raise_for_mirror"]

_CONTAINERS = {".safetensors": Container.SAFETENSORS, ".ckpt": Container.PICKLE_ZIP,
               ".pt": Container.PICKLE_ZIP, ".pth": Container.PICKLE_ZIP,
               ".gguf": Container.GGUF}  # fmt: skip


def mirror_file(
    base_url: str, answer: ArchiveAnswer, file: ArchiveFile, mirror: Mirror, sha256: str
) -> RemoteFile:
    """``file`` of ``answer`` from ``mirror``, to be verified against ``sha256``."""
    name = _safe_name(mirror.filename) or _safe_name(file.name) or _url_name(mirror.url)
    name = name or f"{sha256[:12].lower()}.safetensors"
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    title = " ".join(n for n in (answer.model_name, answer.version_name) if n) or name
    host = urlsplit(mirror.url).netloc
    pinned = (f"{answer.model_id}@{answer.version_id}" if answer.model_id and answer.version_id
              else f"sha256:{sha256.lower()}")  # fmt: skip
    return RemoteFile(
        source="civarchive",
        pinned_ref=pinned,
        url=mirror.url,
        file_name=name,
        size=file.size,
        hashes={"SHA256": sha256.upper()},
        container=_CONTAINERS.get(suffix),
        kind=CIVITAI_TYPE_TO_KIND.get(answer.model_type or "", Kind.UNKNOWN),
        base=base_from_civitai(answer.base_model),
        base_label=answer.base_model,
        title=title,
        picked=f"{name} from a CivArchive mirror ({host})",
        page_url=page_url(base_url, answer),
        tags=tuple(str(i) for i in (answer.version_id, file.id) if i is not None),
        model_id=answer.model_id,
        version_id=answer.version_id,
        file_id=file.id,
        model_name=answer.model_name,
        model_type=answer.model_type,
        description=answer.description,
        trained_words=answer.trained_words,
        nsfw=bool(answer.nsfw),
        model_tags=answer.tags,
        author=answer.creator,
        record=None,
        raise_for_status=raise_for_mirror,
    )  # fmt: skip


def raise_for_mirror(response: httpx2.Response) -> None:
    """A mirror's failure as one line: gone (404/410), refused (401/403), or failing."""
    status = response.status_code
    if status < 400:
        return
    host = response.request.url.host
    if status in (404, 410):
        raise NotFound(f"the CivArchive mirror {host} no longer has the file (HTTP {status})",
                       status=status)  # fmt: skip
    if status in (401, 403):
        raise AccessDenied(f"the CivArchive mirror {host} refused the download (HTTP {status})",
                           status=status)  # fmt: skip
    raise SourceError(f"the CivArchive mirror {host} answered HTTP {status}", status=status)


def _safe_name(name: str | None) -> str | None:
    """A bare file name (no folders, nothing Windows forbids), or None."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    bad = set('<>:"|?*') | {chr(c) for c in range(32)}
    if not base or base in (".", "..") or any(c in bad for c in base):
        return None
    return base


def _url_name(url: str) -> str | None:
    return _safe_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1]))
