"""What a user types or pastes to name a file or repo on the Hugging Face Hub.

Forms (the grammar of huggingface_hub's ``hf://`` URIs, docs ``hf_uris.md``):

* ``hf:ORG/REPO``, ``hf:ORG/REPO@REV``, ``hf:ORG/REPO/PATH``, ``hf:ORG/REPO@REV/PATH``
  (``hf://`` works too). A revision is a branch, a tag or a commit; the special refs
  ``refs/pr/N`` and ``refs/convert/NAME`` hold slashes and are matched first, any other
  revision with a slash is written URL-encoded (``feature%2Fx``). An ``@`` after the repo
  id's two parts is part of a file name.
* Every URL the Hub's pages give: the repo page, ``/blob/REV/PATH``, ``/resolve/REV/PATH``
  (with ``?download=true``), ``/raw/``, ``/blame/``, ``/tree/REV[/FOLDER]``, on
  huggingface.co, hf.co or the configured endpoint's host, with or without the scheme.
  A pasted URL only names the repo, revision and file: sdlib fetches them through the
  configured endpoint, so a mirror (``HF_ENDPOINT``) serves pasted links too.

Pure and bounded: no IO, inputs over ``MAX_REF`` characters are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from sdlib.errors import UsageError
from sdlib.names import safe_filename

__all__ = [
    "HUB_HOSTS",
    "MAX_REF",
    "HubRef",
    "is_hub_ref",
    "local_name",
    "parse_hub_ref",
    "quote_revision",
    "repo_page_url",
    "resolve_url",
]

#: Hosts whose links name Hub files (besides the configured endpoint's).
HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})
#: Longer references are refused before any parsing (a path on the Hub is far shorter).
MAX_REF = 2048

#: Revisions that contain '/' and are matched before the revision/path split.
_SPECIAL_REVISION = re.compile(r"^refs/(?:convert/[\w.-]+|pr/\d+)")
#: One part of a repo id: letters, digits, '-', '_', '.'; at most 96 characters (the Hub's
#: ``REPO_ID_REGEX``), neither starting nor ending with '-' or '.', no '--' or '..'.
_NAME = re.compile(r"[A-Za-z0-9_][\w.-]{0,94}[A-Za-z0-9_]|[A-Za-z0-9_]", re.ASCII)
#: URL routes that name a location in a repo (other routes, e.g. /discussions, do not).
_ROUTES = frozenset({"blob", "resolve", "raw", "blame", "tree"})
_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space", "models": "model"}


@dataclass(frozen=True)
class HubRef:
    """A repo on the Hub, optionally a revision and a file (or folder) in it."""

    repo: str
    #: None: the repo's default branch (``main``).
    revision: str | None = None
    #: A file's path in the repo ("" or None: the repo itself).
    path: str | None = None
    #: The ref came from a URL whose route names a folder (``/tree/REV/unet``).
    folder: bool = False

    @property
    def rev(self) -> str:
        return self.revision or "main"

    def __str__(self) -> str:
        text = "hf:" + self.repo
        if self.revision is not None:
            rev = self.revision
            if "/" in rev and not _SPECIAL_REVISION.fullmatch(rev):
                rev = quote(rev, safe="")
            text += "@" + rev
        if self.path:
            text += "/" + self.path
        return text


def is_hub_ref(text: str) -> bool:
    """Whether ``text`` is meant for the Hub (``hf:`` or a huggingface.co / hf.co link)."""
    stripped = text.strip()
    if stripped[:3].lower() == "hf:":
        return True
    if len(stripped) > MAX_REF:
        return False
    host = urlsplit(stripped if "://" in stripped else "//" + stripped).hostname or ""
    return host.lower() in HUB_HOSTS


def parse_hub_ref(text: str, *, endpoint: str | None = None) -> HubRef:
    """The repo, revision and path ``text`` names; ``UsageError`` (exit 2) saying what is
    wrong otherwise. ``endpoint``: links on its host are Hub links too (a mirror's)."""
    raw = text.strip()
    if len(raw) > MAX_REF:
        raise UsageError(f"a Hugging Face reference is at most {MAX_REF} characters")
    if not raw:
        raise UsageError("empty Hugging Face reference")
    if raw[:3].lower() == "hf:":
        body = raw[3:]
        if body.startswith("//"):
            body = body[2:]
        return _parse_body(body, raw, folder=False)
    return _parse_url(raw, endpoint)


def _hosts(endpoint: str | None) -> tuple[frozenset[str], str]:
    """Recognised hosts, and the endpoint's path prefix (a mirror at ``host/hf``)."""
    if not endpoint:
        return HUB_HOSTS, ""
    parts = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
    host = (parts.hostname or "").lower()
    hosts = HUB_HOSTS | {host} if host else HUB_HOSTS
    return hosts, parts.path.strip("/")


def _parse_url(raw: str, endpoint: str | None) -> HubRef:
    lowered = raw.lower()
    if not lowered.startswith(("http://", "https://")) and "://" in raw:
        raise UsageError(f"not a Hugging Face link: {_clip(raw)}")
    parts = urlsplit(raw if "://" in raw else "//" + raw)
    host = (parts.hostname or "").lower()
    hosts, prefix = _hosts(endpoint)
    if host not in hosts:
        raise UsageError(
            f"not a Hugging Face reference: {_clip(raw)} (use hf:ORG/REPO[@REV][/PATH] or a "
            "huggingface.co link)"
        )
    path = parts.path
    if (
        prefix
        and host not in HUB_HOSTS
        and (path == "/" + prefix or path.startswith("/" + prefix + "/"))
    ):
        path = path[len(prefix) + 1 :]  # a mirror served under a path: drop it
    segments = [s for s in path.split("/") if s]
    if segments and segments[0] in _TYPE_PREFIXES:
        kind = _TYPE_PREFIXES[segments[0]]
        if kind != "model":
            raise UsageError(
                f"{_clip(raw)} is a {kind} repo; sdlib fetches models (hf:ORG/REPO/FILE)"
            )
        segments = segments[1:]
    if len(segments) < 2:
        raise UsageError(
            f"{_clip(raw)} names no repository (a link to ORG/REPO, or a file in it, is needed)"
        )
    repo = f"{unquote(segments[0])}/{unquote(segments[1])}"
    rest = segments[2:]
    if not rest:
        return _parse_body(repo, raw, folder=False)
    route, *tail = rest
    if route not in _ROUTES:
        raise UsageError(
            f"{_clip(raw)}: a /{route}/ page names no file (copy a file's link, or the repo's)"
        )
    if not tail:
        return _parse_body(repo, raw, folder=False)
    # Each segment percent-decoded; a decoded '/' (an encoded revision) stays encoded so the
    # revision/path split below keeps it in one piece.
    decoded = "/".join(unquote(s).replace("/", "%2F") for s in tail)
    return _parse_body(f"{repo}@{decoded}", raw, folder=route == "tree")


def _parse_body(location: str, raw: str, *, folder: bool) -> HubRef:
    """``ORG/REPO[@REV][/PATH]`` (the part after ``hf:``)."""
    location = location.strip("/")
    if not location:
        raise UsageError("a Hugging Face reference needs ORG/REPO")
    at = location.find("@")
    revision: str | None
    if at == -1 or location[:at].count("/") > 1:  # an '@' in a file name is literal
        parts = location.split("/", 2)
        if len(parts) < 2:
            raise UsageError(
                f"{_clip(raw)}: a Hub repo is named ORG/REPO (e.g. hf:stabilityai/sdxl-vae)"
            )
        repo = f"{parts[0]}/{parts[1]}"
        path = parts[2] if len(parts) > 2 else ""
        revision = None
    else:
        repo = location[:at]
        rest = location[at + 1 :]
        if repo.count("/") != 1:
            raise UsageError(f"{_clip(raw)}: a Hub repo is named ORG/REPO before the '@'")
        match = _SPECIAL_REVISION.search(rest)
        if match is not None:
            revision = match.group()
            path = rest[len(revision) :].removeprefix("/")
        else:
            rev, _, path = rest.partition("/")
            revision = unquote(rev)
        if not revision:
            raise UsageError(f"{_clip(raw)}: empty revision after '@'")
        _check_revision(revision, raw)
    _check_repo(repo, raw)
    path = _check_path(path, raw)
    return HubRef(repo=repo, revision=revision, path=path or None, folder=folder and bool(path))


def _check_repo(repo: str, raw: str) -> None:
    for part in repo.split("/"):
        if not _NAME.fullmatch(part) or "--" in part or ".." in part:
            raise UsageError(
                f"{_clip(raw)}: {part!r} is not a valid Hub name (letters, digits, '-', '_', "
                "'.'; at most 96; no '--' or '..'; not starting or ending with '-' or '.')"
            )


def _check_revision(revision: str, raw: str) -> None:
    bad = [c for c in revision if ord(c) < 33 or c in "~^:?*[\\\x7f"]
    if bad or revision.startswith(("/", ".")) or revision.endswith(("/", ".lock")):
        raise UsageError(f"{_clip(raw)}: {revision!r} is not a valid revision")
    if ".." in revision or "//" in revision or len(revision) > 255:
        raise UsageError(f"{_clip(raw)}: {revision!r} is not a valid revision")


def _check_path(path: str, raw: str) -> str:
    """A path in the repo: '/'-separated, no empty, '.' or '..' parts, no backslashes or
    control characters (a repo path never has them; they would mean something on disk)."""
    path = path.strip("/")
    if not path:
        return ""
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UsageError(f"{_clip(raw)}: {path!r} is not a path in a repo")
    if any(ord(c) < 32 or c in "\\\x7f" for c in path):
        raise UsageError(f"{_clip(raw)}: {path!r} is not a path in a repo")
    return path


def _clip(text: str, limit: int = 120) -> str:
    """A user's input inside a one-line message: no control characters, bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def quote_revision(revision: str) -> str:
    """A revision as one URL path segment (``refs/pr/1`` -> ``refs%2Fpr%2F1``), as the
    Hub's own client sends it."""
    return quote(revision, safe="")


def resolve_url(endpoint: str, repo: str, revision: str, path: str) -> str:
    """``{endpoint}/{repo}/resolve/{revision}/{path}``, each part URL-encoded (huggingface_hub
    ``hf_hub_url``)."""
    return (
        f"{endpoint.rstrip('/')}/{repo}/resolve/{quote_revision(revision)}/{quote(path, safe='/')}"
    )


def repo_page_url(endpoint: str, repo: str) -> str:
    """The repo's page, where a user requests access to a gated repo."""
    return f"{endpoint.rstrip('/')}/{repo}"


def local_name(path: str) -> str:
    """The file name a repo path gets on disk: its last part, made safe on every OS
    (Windows' reserved names and characters included; ``sdlib.names.safe_filename``)."""
    return safe_filename(path.rsplit("/", 1)[-1], fallback="model.safetensors")
