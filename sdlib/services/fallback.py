"""CivArchive as the fallback for what Civitai no longer has: identity and downloads.

Civitai stays the source. Only when it has nothing does sdlib look further, in this order:

* **identify**: Civitai's by-hash on the configured host; when that host is civitai.com or
  civitai.red, the other one too (one deployment answers by request host, so a mature
  model can be missing from one: ``other_civitai_host``); then CivArchive by SHA256
  (:class:`ChainedLookup`). A CivArchive hit identifies the file with ``source:
  civarchive``; a record whose SHA256 differs from the file's is not a match.
* **download/install**: Civitai answers a model or version as gone (404/410, an archived
  version with no files) or no version has the ``sha256:`` asked for
  (:func:`archive_resolver`): the other colour host is asked the same, then CivArchive by
  SHA256 or version id, and the first
  live mirror it lists (``deletedAt`` null) becomes a ``RemoteFile`` with
  ``source="civarchive"``, verified while streaming against the SHA256 the lookup started
  from (or the SHA256 CivArchive publishes for a version, said so), like any download.

CivArchive is unofficial: it is asked over a client with short timeouts and no retries
(``Context.archive_http``), a failure there is reported in one note and the original
Civitai answer stands, and its "not archived" answers are cached with Civitai's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from sdlib.errors import Gone, NotFound, SdlibError, SourceError

if TYPE_CHECKING:
    from sdlib.config import Settings
    from sdlib.lookup import Lookup, Match, ModelFacts, ModelsReport
    from sdlib.services._context import Context
    from sdlib.sources.civarchive import CivArchiveLookup
    from sdlib.sources.protocol import FileChoice, RemoteFile

__all__ = [
    "ChainedLookup",
    "archive_resolver",
    "civarchive_url",
    "elsewhere",
    "is_gone",
    "library_lookup",
    "other_civitai_host",
]

#: Civitai's two "colour" hosts: each answers for the other's content only partly.
_SWAP = {"civitai.com": "civitai.red", "civitai.red": "civitai.com",
         "civitai.green": "civitai.red"}  # fmt: skip


def other_civitai_host(base_url: str) -> str | None:
    """The other Civitai host to ask before a model counts as gone: civitai.com <->
    civitai.red (civitai.green is the old name of .com); None for any other server."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    bare = host.removeprefix("www.")
    other = _SWAP.get(bare)
    if other is None or parts.port is not None:
        return None
    return urlunsplit((parts.scheme, other, "", "", "")).rstrip("/")


def civarchive_url(settings: Settings) -> str | None:
    """Where CivArchive is asked, or None when it is not: ``[civarchive] enabled = false``;
    or no ``base_url`` set and Civitai is not civitai.com/.red (a demo or private server's
    models are not in CivArchive)."""
    from sdlib.sources.civarchive import DEFAULT_URL
    from sdlib.sources.civitai import CIVITAI_HOSTS

    archive = settings.civarchive
    if not archive.enabled:
        return None
    if archive.base_url:
        return archive.base_url
    host = (urlsplit(settings.civitai.base_url).hostname or "").lower().removeprefix("www.")
    return DEFAULT_URL if host in CIVITAI_HOSTS else None


def is_gone(exc: SourceError) -> bool:
    """Whether Civitai's error says the model, version or file is gone (not a failure, not a
    file choice that matches nothing)."""
    if isinstance(exc, Gone) or exc.status in (404, 410):
        return True
    return isinstance(exc, NotFound) and "no downloadable files" in exc.message


# -- identify ---------------------------------------------------------------------------------


class ChainedLookup:
    """A :class:`~sdlib.lookup.Lookup` that asks ``first`` and each of ``then`` only on a
    miss. ``first``'s failures are the caller's; a fallback's failure is a miss (the first
    source's answer stands) and is counted in ``fallback_errors``."""

    def __init__(self, first: Lookup, then: Sequence[Lookup]) -> None:
        self.first = first
        self.then = tuple(then)
        self.name = first.name
        self.requests = 0
        self.cache_hits = 0
        self.fallback_errors: list[str] = []

    def _count(self) -> None:
        parts = (self.first, *self.then)
        self.requests = sum(p.requests for p in parts)
        self.cache_hits = sum(p.cache_hits for p in parts)

    def prefetch(self, sha256s: Sequence[str], *, refresh: bool = False) -> None:
        """The first source's bulk request; then the hashes it did not find go to the
        fallbacks' bulk requests (the other Civitai host's), not one by one."""
        try:
            self.first.prefetch(sha256s, refresh=refresh)
            missing = [s for s in sha256s
                       if self.first.cached_match({"SHA256": s}, "SHA256") is None]  # fmt: skip
            for lookup in self.then:
                if missing:
                    lookup.prefetch(missing, refresh=refresh)
        finally:
            self._count()

    def match(self, hashes: Mapping[str, str], *, refresh: bool = False) -> Match | None:
        try:
            found = self.first.match(hashes, refresh=refresh)
            for lookup in self.then:
                if found is not None:
                    break
                try:
                    found = lookup.match(hashes, refresh=refresh)
                except SourceError as exc:
                    self.fallback_errors.append(f"{lookup.name}: {exc.message}")
            return found
        finally:
            self._count()

    def cached_match(self, hashes: Mapping[str, str], matched_by: str) -> Match | None:
        for lookup in (self.first, *self.then):
            found = lookup.cached_match(hashes, matched_by)
            if found is not None:
                return found
        return None

    def model(self, model_id: int, ttl: float) -> ModelFacts | None:
        try:
            found = self.first.model(model_id, ttl)
            for lookup in self.then:
                if found is not None:
                    break
                try:
                    found = lookup.model(model_id, ttl)
                except SourceError:
                    continue
            return found
        finally:
            self._count()

    def models(
        self,
        ids: Sequence[int],
        *,
        ttl: float,
        refresh: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ModelsReport:
        """Update checks ask the first source only (an archive has no newer versions)."""
        try:
            return self.first.models(ids, ttl=ttl, refresh=refresh, on_progress=on_progress)
        finally:
            self._count()

    def preview(self, url: str) -> bytes | None:
        return self.first.preview(url)


def library_lookup(ctx: Context, rate: float = 4.0) -> Lookup:
    """Civitai (configured host, then the other colour host), then CivArchive, as one lookup
    cached in the library index."""
    from sdlib.sources.civitai import CivitaiLookup

    civitai = CivitaiLookup(ctx.http, ctx.settings.civitai.base_url, ctx.index, rate=rate)
    then: list[Lookup] = []
    other = other_civitai_host(ctx.settings.civitai.base_url)
    if other is not None:
        then.append(CivitaiLookup(ctx.http, other, ctx.index, rate=rate))
    archive = archive_lookup(ctx)
    if archive is not None:
        then.append(archive)
    return ChainedLookup(civitai, then) if then else civitai


def archive_lookup(ctx: Context) -> CivArchiveLookup | None:
    from sdlib.sources.civarchive import CivArchiveLookup

    url = civarchive_url(ctx.settings)
    return CivArchiveLookup(ctx.archive_http, url, ctx.index) if url is not None else None


# -- download / install -----------------------------------------------------------------------

Resolver = Callable[[str, "FileChoice", SourceError], "RemoteFile | None"]


def archive_resolver(ctx: Context, on_note: Callable[[str], None]) -> Resolver | None:
    """What the installer asks when Civitai says a Civitai reference is gone: the file from
    Civitai's other host (civitai.com <-> civitai.red), else from a live CivArchive mirror,
    else None (then Civitai's error stands). None when there is nowhere else to ask."""
    other = other_civitai_host(ctx.settings.civitai.base_url)
    archive_on = civarchive_url(ctx.settings) is not None
    if other is None and not archive_on:
        return None

    def resolve(ref: str, choice: FileChoice, exc: SourceError) -> RemoteFile | None:
        from sdlib.services.remote import source_of

        if not is_gone(exc) or source_of(ctx, ref) != "civitai":
            return None
        if other is not None:
            found = _from_other_host(ctx, other, ref, choice, on_note)
            if found is not None:
                return found
        archive = archive_lookup(ctx) if archive_on else None
        if archive is None:
            return None
        try:
            return _from_archive(ctx, archive, ref, choice, on_note)
        except SourceError as failure:
            on_note(f"{ref}: CivArchive could not be asked ({failure.message})")
            return None

    return resolve


def elsewhere(
    ctx: Context, ref: str, exc: SourceError, *, file_id: int | None = None,
    on_note: Callable[[str], None] | None = None,
) -> RemoteFile | None:  # fmt: skip
    """The file a download of ``ref`` would take now that Civitai answered ``exc``: from
    Civitai's other host or a live CivArchive mirror (``source`` says which), or None when
    ``exc`` does not say gone or nowhere else has it. ``show`` and ``inspect`` use it to
    offer what ``download`` would fetch; nothing is downloaded."""
    from sdlib.sources.protocol import ANY_FILE, FileChoice

    resolve = archive_resolver(ctx, on_note or (lambda _text: None))
    if resolve is None:
        return None
    return resolve(ref, FileChoice(file_id=file_id) if file_id else ANY_FILE, exc)


def _from_other_host(
    ctx: Context, other: str, ref: str, choice: FileChoice, on_note: Callable[[str], None]
) -> RemoteFile | None:
    """``ref`` resolved on Civitai's other colour host, or None when it fails there too."""
    from sdlib.sources.civitai import CivitaiClient, resolve_file

    client = CivitaiClient(ctx.http, base_url=other, nsfw=ctx.settings.civitai.nsfw)
    try:
        found = resolve_file(client, ref, choice, on_note=on_note)
    except SdlibError:
        return None  # gone there too, or failing: CivArchive is next
    here = urlsplit(ctx.settings.civitai.base_url).netloc
    on_note(f"{ref}: not on {here}; found on {urlsplit(other).netloc}")
    return found


def _from_archive(
    ctx: Context, archive: CivArchiveLookup, ref: str, choice: FileChoice,
    on_note: Callable[[str], None],
) -> RemoteFile | None:  # fmt: skip
    from sdlib.sources.civarchive import mirror_file

    text = ref.strip()
    if text.lower().startswith("sha256:"):
        wanted = text.split(":", 1)[1].strip().upper()
        if len(wanted) != 64:
            return None
        answer, _ = archive.by_sha256(wanted)
        file = answer.file_with_sha256(wanted) if answer is not None else None
        sha: str | None = wanted
        label = "the SHA256 asked for"
    else:
        try:
            parsed = ctx.civitai.parse_ref(text)
        except SdlibError:
            return None
        if parsed.version_id is None and parsed.model_id is None:
            return None
        # A bare model id: the version CivArchive answers for the model (its newest).
        answer = archive.version(parsed.version_id, parsed.model_id)
        file_id = choice.file_id or parsed.file_id
        files = answer.files if answer is not None else ()
        file = next((f for f in files if f.id == file_id), None) if file_id else (
            next((f for f in files if f.primary and f.live_mirror), None)
            or next((f for f in files if f.live_mirror), None)
        )  # fmt: skip
        sha, label = (file.sha256 if file else None), "the SHA256 CivArchive publishes"
    if answer is None or file is None:
        return None
    mirror = file.live_mirror
    if mirror is None:
        on_note(f"{ref}: CivArchive knows it, but lists no live mirror")
        return None
    if sha is None or file.sha256 != sha:
        on_note(f"{ref}: CivArchive lists a mirror but no SHA256 to verify it against; "
                "not downloading unverifiable bytes")  # fmt: skip
        return None
    host = urlsplit(mirror.url).netloc
    on_note(f"{ref}: gone from Civitai; downloading from a CivArchive mirror ({host}), "
            f"verified against SHA256 {sha} ({label})")  # fmt: skip
    return mirror_file(archive.base_url, answer, file, mirror, sha)
