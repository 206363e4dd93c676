"""Parse the ways users name a Civitai model: URLs, ids, ``model@version`` and AIR URNs.

Accepted (hosts: civitai.com, civitai.red, civitai.green, www. forms, plus any host the
caller names, such as a configured or demo server)::

    4384                                            model 4384
    4384@128713                                     model 4384, version 128713
    @128713                                         version 128713
    https://civitai.com/models/4384/dreamshaper     model
    https://civitai.red/models/4384?modelVersionId=128713
    https://civitai.com/model-versions/128713       version
    https://civitai.com/api/download/models/128713?fileId=9   version (and file)
    https://civitai.com/api/v1/models/4384, /api/v1/model-versions/128713
    urn:air:sd1:checkpoint:civitai:4384@128713+9.safetensor
        (urn:, air:, ecosystem and type are optional)

Anything else raises ``UsageError`` with the accepted forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from sdlib.errors import UsageError

__all__ = ["CIVITAI_HOSTS", "CivitaiRef", "download_url", "parse_ref"]

#: Host names that serve Civitai (the .red/.green "colour" hosts share one deployment).
CIVITAI_HOSTS = frozenset({"civitai.com", "civitai.red", "civitai.green"})


def download_url(base_url: str, version_id: int, file_id: int | None = None) -> str:
    """Civitai's download endpoint for a version (and one of its files): what it redirects
    to a signed URL for the bytes (civitai-api.md 2.9); the one place this path is built."""
    url = f"{base_url.rstrip('/')}/api/download/models/{int(version_id)}"
    return url if file_id is None else f"{url}?fileId={int(file_id)}"


_FORMS = (
    "4384, 4384@128713, @128713, a civitai.com/civitai.red model or download URL, "
    "or an AIR like urn:air:sd1:checkpoint:civitai:4384@128713"
)

_ID = r"[0-9]{1,10}"
_AT_RE = re.compile(rf"^(?P<model>{_ID})?@(?P<version>{_ID})$")
# @civitai/client's lenient grammar: [urn:][air:][ecosystem:][type:]source:id[@version][+file][.fmt]
_AIR_RE = re.compile(
    r"^(?:urn:)?(?:air:)?"
    r"(?:(?P<ecosystem>[a-z0-9_\-/]+):)??(?:(?P<type>[a-z0-9_\-/]+):)??"
    r"(?P<source>[a-z0-9_\-/]+):(?P<id>[a-z0-9_\-/.]+?)"
    r"(?:@(?P<version>[a-z0-9_\-/.]+?))?(?:\+(?P<file>[0-9]+))?(?:\.(?P<format>[a-z0-9_]+))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CivitaiRef:
    """What a reference names. At least one of ``model_id`` and ``version_id`` is set."""

    model_id: int | None = None
    version_id: int | None = None
    #: A specific file of the version (AIR ``+fileId`` or ``?fileId=``).
    file_id: int | None = None
    #: The host of a URL reference (e.g. civitai.red), None for ids and AIRs.
    host: str | None = None
    #: From an AIR: ecosystem (sd1, sdxl...), type (checkpoint, lora...), format (safetensor).
    ecosystem: str | None = None
    air_type: str | None = None
    format: str | None = None

    def __str__(self) -> str:
        text = "" if self.model_id is None else str(self.model_id)
        if self.version_id is not None:
            text += f"@{self.version_id}"
        if self.file_id is not None:
            text += f"+{self.file_id}"
        return text


def parse_ref(text: str, *, extra_hosts: Iterable[str] = ()) -> CivitaiRef:
    """Parse a model reference; ``extra_hosts`` (host or host:port) are accepted in URLs."""
    raw = text.strip()
    if not raw:
        raise UsageError(f"empty model reference; expected {_FORMS}")
    if raw.isdigit():
        return CivitaiRef(model_id=_to_id(raw, raw))
    m = _AT_RE.match(raw)
    if m:
        model = m.group("model")
        return CivitaiRef(
            model_id=_to_id(model, raw) if model else None,
            version_id=_to_id(m.group("version"), raw),
        )
    if re.match(r"^[a-z][a-z0-9+.\-]*://", raw, re.IGNORECASE) or raw.lower().startswith(
        tuple(f"{h}/" for h in CIVITAI_HOSTS) + tuple(f"www.{h}/" for h in CIVITAI_HOSTS)
    ):
        return _parse_url(raw, extra_hosts)
    m = _AIR_RE.match(raw)
    if m and ":" in raw:
        return _parse_air(m, raw)
    raise UsageError(f"not a Civitai model reference: {raw!r}; expected {_FORMS}")


def _to_id(value: str, raw: str) -> int:
    number = int(value)
    if not 1 <= number <= 2_147_483_647:
        raise UsageError(f"id out of range in {raw!r}")
    return number


def _parse_url(raw: str, extra_hosts: Iterable[str]) -> CivitaiRef:
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme.lower() not in {"http", "https"}:
        raise UsageError(f"not a Civitai URL: {raw!r}; expected {_FORMS}")
    host = (parts.hostname or "").lower()
    bare = host[4:] if host.startswith("www.") else host
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    allowed = {h.lower() for h in extra_hosts}
    if bare not in CIVITAI_HOSTS and host not in allowed and netloc not in allowed:
        raise UsageError(f"not a Civitai URL (host {host or '?'}): {raw!r}; expected {_FORMS}")
    segments = [s for s in parts.path.split("/") if s]
    query = parse_qs(parts.query)

    def q_int(name: str) -> int | None:
        values = query.get(name)
        if not values:
            return None
        value = values[0].strip()
        if not value.isdigit():
            raise UsageError(f"{name} must be a number in {raw!r}")
        return _to_id(value, raw)

    version_q = q_int("modelVersionId")
    file_q = q_int("fileId")
    if segments[:1] == ["api"]:
        segments = segments[1:]
        if segments[:1] == ["v1"]:
            segments = segments[1:]
    model_id = version_id = None
    if len(segments) >= 2 and segments[0] == "models" and segments[1].isdigit():
        # /models/<id>[/slug] (site) and /api/v1/models/<id>
        model_id = _to_id(segments[1], raw)
        version_id = version_q
    elif len(segments) >= 3 and segments[:2] == ["download", "models"] and segments[2].isdigit():
        version_id = _to_id(segments[2], raw)  # /api/download/models/<versionId>
    elif len(segments) >= 2 and segments[0] == "model-versions" and segments[1].isdigit():
        version_id = _to_id(segments[1], raw)
    else:
        raise UsageError(f"this Civitai URL names no model or version: {raw!r}; expected {_FORMS}")
    return CivitaiRef(model_id=model_id, version_id=version_id, file_id=file_q, host=netloc or None)


def _parse_air(m: re.Match[str], raw: str) -> CivitaiRef:
    source = m.group("source").lower()
    if source != "civitai":
        raise UsageError(f"AIR source {source!r} is not Civitai in {raw!r}; expected {_FORMS}")
    model, version, file = m.group("id"), m.group("version"), m.group("file")
    if not model.isdigit() or (version is not None and not version.isdigit()):
        raise UsageError(f"a Civitai AIR needs numeric ids: {raw!r}")
    return CivitaiRef(
        model_id=_to_id(model, raw),
        version_id=_to_id(version, raw) if version else None,
        file_id=_to_id(file, raw) if file else None,
        ecosystem=(m.group("ecosystem") or "").lower() or None,
        air_type=(m.group("type") or "").lower() or None,
        format=(m.group("format") or "").lower() or None,
    )
