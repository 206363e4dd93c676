"""Look inside a remote file before downloading it: ``sdlib inspect REF_OR_URL``.

A Civitai reference (``4384``, ``4384@128713``, a civitai.com URL, an AIR) is resolved to
the file its download endpoint would serve, a Hugging Face one (``hf:ORG/REPO[@REV][/PATH]``
or a pasted Hub link) to its commit-pinned ``/resolve`` URL; any other ``http(s)://`` URL is
the file itself. Only the first bytes are read, through HTTP Range requests
(``sdlib.http.RangedFile``: a few KiB for a 7 GB checkpoint, never more than the local
readers' header cap), and the same header readers and classifier as for a file on disk say
what it is (``sdlib.inspect.inspect_header``): the report equals ``inspect_path``'s for the
same bytes.

A source hands over a file as a ``RemoteTarget`` (URL, extra headers for its own host, its
error mapper): ``inspect_remote(ctx, RemoteTarget(url, name, ...))``. Credentials in
``headers`` go to that URL's origin only, never to a host it redirects to.

Nothing here prints; ``on_step`` hears what is being done (a front end shows it while it
waits).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    import httpx2

    from sdlib.errors import SourceError
    from sdlib.inspect import InspectReport
    from sdlib.services._context import Context

__all__ = ["RemoteInspection", "RemoteTarget", "inspect_remote", "is_remote", "resolve_target"]

#: Two letters at least: ``C://x`` is a Windows path.
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]+://", re.IGNORECASE)
_CIVITAI_ID = re.compile(r"^(?:[0-9]{1,10})?(?:@[0-9]{1,10})?$")


@dataclass(frozen=True)
class RemoteTarget:
    """One remote file to look into: where its bytes are and how its host answers errors."""

    url: str
    #: The file's name, for the report ("dreamshaper_8.safetensors").
    name: str
    #: Extra request headers for ``url``'s own origin (a source's ``Authorization``).
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Maps the host's error answers to sdlib errors (a source knows its error bodies);
    #: None maps the bare status.
    raise_for_status: Callable[[httpx2.Response], None] | None = None
    #: ``civitai``, ``huggingface`` or ``url``.
    source: str = "url"
    #: The reference that pins this file (``4384@128713``, ``hf:ORG/REPO@<commit>/PATH``),
    #: when a source resolved it.
    pinned_ref: str | None = None


@dataclass(frozen=True)
class RemoteInspection:
    """What a remote file is, judged from its header, and what finding out cost."""

    #: What the user named it by (a reference or URL), as the report's ``path``.
    ref: str
    target: RemoteTarget
    report: InspectReport
    #: Body bytes received, over ``requests`` Range requests.
    bytes_read: int
    requests: int

    def to_dict(self) -> dict[str, Any]:
        data = self.report.to_dict()
        data.update(
            file_name=self.target.name,
            url=self.target.url,
            source=self.target.source,
            pinned_ref=self.target.pinned_ref,
            bytes_read=self.bytes_read,
            requests=self.requests,
        )
        return data


def is_remote(text: str) -> bool:
    """True when ``text`` names a remote file: an ``http(s)://`` URL, a Civitai reference
    (``4384``, ``4384@128713``, ``@128713``, a civitai.com URL without its scheme, an AIR
    URN), ``hf:...`` or a Hub link without its scheme. A local path that exists should win
    over this (a file named 4384)."""
    raw = text.strip()
    if not raw:
        return False
    lowered = raw.lower()
    if _SCHEME.match(raw):
        return True  # ftp:// and the like are refused by name, not looked for on disk
    if lowered.startswith(("hf:", "urn:air:", "air:", "civitai:")):
        return True
    if _CIVITAI_ID.match(raw) and any(c.isdigit() for c in raw):
        return True
    from sdlib.sources.civitai import CIVITAI_HOSTS
    from sdlib.sources.hf import HUB_HOSTS

    hosts = (*CIVITAI_HOSTS, *HUB_HOSTS)
    return lowered.startswith(tuple(f"{h}/" for h in hosts) + tuple(f"www.{h}/" for h in hosts))


def resolve_target(ctx: Context, ref: str) -> RemoteTarget:
    """The file ``ref`` names: a Civitai reference through the API (the file its download
    endpoint would serve), a Hub one through the Hub's resolver, any other ``http(s)://``
    URL as it is."""
    from sdlib.errors import UsageError
    from sdlib.services.remote import source_of

    raw = ref.strip()
    if source_of(ctx, raw) == "huggingface":
        return _hub_target(ctx, raw)
    if _SCHEME.match(raw):
        if not raw.lower().startswith(("http://", "https://")):
            raise UsageError(f"only http:// and https:// URLs can be inspected, not {raw!r}")
        if not _is_civitai_url(raw, ctx.settings.civitai.base_url):
            return RemoteTarget(url=raw, name=_url_name(raw))
    return _civitai_target(ctx, raw)


def inspect_remote(
    ctx: Context,
    target: str | RemoteTarget,
    *,
    on_step: Callable[[str], None] | None = None,
) -> RemoteInspection:
    """What the remote file ``target`` is, from its header alone (see the module docstring).

    Raises ``SdlibError``: ``UsageError`` for a reference sdlib cannot read, the source's
    errors (not found 5, login or access 6, network 7), ``FormatError`` for a file that is
    not a model, and ``SdlibError`` (exit 1) for a server that ignores Range requests.
    """
    from sdlib.hashing import MAX_HEADER
    from sdlib.http import FIRST_READ, open_ranged
    from sdlib.inspect import inspect_header

    step = on_step or (lambda _text: None)
    if isinstance(target, str):
        shown = target.strip()
        step(f"resolving {shown}")
        target = resolve_target(ctx, shown)
    else:
        shown = target.url
    step(f"reading the header of {target.name}")
    raw = open_ranged(
        ctx.http,
        target.url,
        headers=target.headers,
        raise_for_status=target.raise_for_status,
        # The local readers' cap on a header, plus the reads that straddle it.
        budget=MAX_HEADER + 2 * FIRST_READ,
    )
    with raw:
        report = inspect_header(cast("BinaryIO", raw), raw.size, shown)
    return RemoteInspection(shown, target, report, raw.bytes_read, raw.requests)


def _civitai_target(ctx: Context, ref: str) -> RemoteTarget:
    from sdlib.errors import SourceError
    from sdlib.sources.civitai import raise_for_status

    civitai = ctx.civitai
    parsed = civitai.parse_ref(ref)
    try:
        model, version = civitai.lookup(parsed)
        target = civitai.resolve_download(version, file_id=parsed.file_id)
    except SourceError as exc:
        archived = _archived_target(ctx, ref, parsed.file_id, exc)
        if archived is None:
            raise
        return archived
    return RemoteTarget(
        url=target.url,
        name=target.file_name,
        raise_for_status=raise_for_status,
        source="civitai",
        pinned_ref=f"{model.id}@{version.id}",
    )


def _archived_target(
    ctx: Context, ref: str, file_id: int | None, exc: SourceError
) -> RemoteTarget | None:
    """The file a reference Civitai calls gone names, from where a download would take it
    (Civitai's other host, a live CivArchive mirror), or None (Civitai's error stands)."""
    from sdlib.services.fallback import elsewhere

    found = elsewhere(ctx, ref, exc, file_id=file_id)
    if found is None:
        return None
    return RemoteTarget(
        url=found.url,
        name=found.file_name,
        raise_for_status=found.raise_for_status,
        source=found.source,
        pinned_ref=found.pinned_ref,
    )


def _hub_target(ctx: Context, ref: str) -> RemoteTarget:
    from sdlib.services.remote import hub_resolve
    from sdlib.sources.hf import HubTarget, raise_for_hub

    hub = ctx.settings.huggingface
    found = hub_resolve(ctx, ref)  # a gated or missing file fails here, before any byte
    about = HubTarget(hub.endpoint, found.repo, found.commit or found.revision, found.path,
                      token=bool(hub.token))  # fmt: skip

    def raise_for_status(response: httpx2.Response) -> None:
        raise_for_hub(response, about)

    return RemoteTarget(
        # The resolve URL (the Hub's token goes there, by the client's scoping); its redirect
        # to the CDN is followed for the bytes without it.
        url=found.url,
        name=found.file_name,
        raise_for_status=raise_for_status,
        source="huggingface",
        pinned_ref=f"hf:{found.repo}@{found.commit}/{found.path}" if found.commit else None,
    )


def _is_civitai_url(url: str, base_url: str) -> bool:
    """A civitai.com/.red/.green URL, or one on the configured Civitai server (same port)."""
    from urllib.parse import urlsplit

    from sdlib.sources.civitai import CIVITAI_HOSTS

    parts, base = urlsplit(url), urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if (host[4:] if host.startswith("www.") else host) in CIVITAI_HOSTS:
        return True
    return (host, _port(parts)) == ((base.hostname or "").lower(), _port(base))


def _port(parts: Any) -> int | None:
    try:
        port: int | None = parts.port
    except ValueError:  # a port that is not a number: not the configured server
        return -1
    return port or {"http": 80, "https": 443}.get(parts.scheme.lower())


def _url_name(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    path = urlsplit(url).path
    return unquote(path.rstrip("/").rsplit("/", 1)[-1]) or url
