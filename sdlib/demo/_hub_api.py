"""The demo server's Hugging Face Hub: its API host and the CDN its ``/resolve`` redirects to.

Two more real HTTP servers on 127.0.0.1 (separate ports, so separate origins), serving
``hub_catalogue`` with the Hub's shapes and headers (reference huggingface.md section 1):

* the **Hub host**: ``GET /api/models`` (``search``, ``author``, repeated ``filter``,
  ``sort``/``direction``, ``limit``, ``expand``; ``Link: <...>; rel="next"`` paging),
  ``/api/models/{repo}[/revision/{rev}]`` (``blobs=true`` adds sizes and LFS sha256 to
  ``siblings``), ``/api/models/{repo}/tree/{rev}[/{path}]`` (``recursive``; Link-paged,
  ``tree_page_size`` entries a page), and ``GET``/``HEAD /{repo}/resolve/{rev}/{path}``:
  a 302 to a signed, expiring CDN URL for LFS files with ``X-Repo-Commit``,
  ``X-Linked-Etag`` and ``X-Linked-Size``; a 200 with the bytes for small git files.
  Errors carry ``X-Error-Code``/``X-Error-Message``: ``RepoNotFound`` (401 without a
  token, 404 with one), ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo`` (401 without
  a token, 403 for an account not approved). A renamed repo answers 301 (API) or 307
  (resolve) to its new name. Every answer has ``RateLimit`` headers.
* the **CDN host**: ``/repos/...`` files behind the signed URLs, with ``ETag``, ``Range``
  and ``If-Range`` (206, 416), never needing a token.

Faults for the Hub (``server.hub.add_fault``, or ``GET /__admin/fault?kind=...`` on the Hub
host): ``429`` (``RateLimit: "api";r=0;t=N``), ``503``, ``500``, ``link-loop`` (every
``next`` link repeats the page's own cursor); on the CDN (``match`` defaults to ``/repos/``):
``drop`` (the connection closes after ``after_bytes`` bytes of a body) and ``corrupt`` (one
byte in the middle of the file differs from the bytes the Hub's sha256 was taken of).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
from collections.abc import Mapping
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from sdlib.demo._base import RequestRecord, _HTTPServer, _parse_range
from sdlib.demo.hub_catalogue import HubRepoSpec, HubServedFile, commit_of, lfs_pointer

if TYPE_CHECKING:
    from sdlib.demo._hub_demo import HubDemo

__all__ = ["CDN_FAULT_KINDS", "HUB_FAULT_KINDS"]

HUB_FAULT_KINDS: dict[str, str] = {
    "429": 'rate limited: RateLimit "api";r=0;t=SECONDS (retry_after=SECONDS, default 1)',
    "503": "503 busy",
    "500": "500 internal error",
    "link-loop": "every next link repeats the cursor of the page it is on",
    "drop": "CDN: close the connection after after_bytes bytes of the body",
    "corrupt": "CDN: serve the file with its middle byte changed (the published sha256 stays)",
}
#: Faults of the CDN's file bodies (the others are the Hub host's answers).
CDN_FAULT_KINDS = frozenset({"drop", "corrupt"})

_SORT_KEYS = {"downloads": "downloads", "likes": "likes", "trendingScore": "trending",
              "lastModified": "last_modified", "createdAt": "created_at"}  # fmt: skip


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _error(status: int, code: str | None, message: str) -> _Reply:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return _Reply(status, {"error": message}, headers)


class _HubHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "sdlib-demo-hub"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        logger = self.server.demo.log_requests
        if logger is not None:
            logger(f"[{self.server.role}] {format % args}")

    @property
    def hub(self) -> HubDemo:
        return self.server.demo.hub

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        demo = self.server.demo
        demo._record(RequestRecord(self.server.role, self.command, self.path, dict(self.headers)))
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        segs = [unquote(s) for s in parts.path.split("/") if s]
        raw = [s for s in parts.path.split("/") if s]
        try:
            if self.server.role == "hub-cdn":
                self._cdn(segs)
            elif segs[:1] == ["__admin"]:
                self._admin(segs[1:])
            else:
                self._hub(parts.path, segs, raw)
        except _Reply as reply:
            self._json(reply.status, reply.body, reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- plumbing -----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None,
              ctype: str = "application/json; charset=utf-8") -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        limits = {"RateLimit": '"api";r=499;t=300',
                  "RateLimit-Policy": '"fixed window";"api";q=500;w=300'}  # fmt: skip
        self._send(status, json.dumps(data).encode(), {**limits, **(headers or {})})

    def _q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def origin(self) -> str:
        return f"http://{self.headers.get('Host') or self.hub.url.split('://', 1)[1]}"

    def _account(self) -> str | None:
        """The token sent, if the Hub knows it (an unknown one is a 401, as on the Hub)."""
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        token = auth.partition(" ")[2].strip()
        if token not in self.hub.tokens:
            raise _error(401, None, "Invalid credentials in Authorization header")
        return token

    # -- admin --------------------------------------------------------------------------------

    def _admin(self, action: list[str]) -> None:
        params = {k: v[0] for k, v in self.query.items()}
        name = action[0] if action else ""
        if name == "fault":
            try:
                fault = self.hub.add_fault(params.pop("kind", ""), **params)
            except (TypeError, ValueError) as exc:
                raise _Reply(400, {"error": str(exc)}) from None
            self._json(200, asdict(fault))
        elif name == "reset":
            self.hub.reset()
            self._json(200, {"ok": True})
        elif name == "tree":
            self.hub.tree_page_size = max(1, int(params.get("page_size", "5")))
            self._json(200, {"tree_page_size": self.hub.tree_page_size})
        else:
            raise _Reply(404, {"error": f"unknown admin action {name!r}",
                               "actions": ["fault", "reset", "tree"],
                               "faults": HUB_FAULT_KINDS})  # fmt: skip

    # -- Hub host -----------------------------------------------------------------------------

    def _hub(self, path: str, segs: list[str], raw: list[str]) -> None:
        fault = self.hub.take_fault(path, {"429", "503", "500"})
        if fault is not None:
            if fault.kind == "429":
                wait = int(fault.retry_after)
                raise _Reply(429, {"error": "You have been rate-limited; retry later"},
                             {"RateLimit": f'"api";r=0;t={wait}'})  # fmt: skip
            raise _Reply(int(fault.kind), {"error": "Internal Error - We're working hard to fix "
                                                    "this as soon as possible!"})  # fmt: skip
        account = self._account()
        if self.command not in ("GET", "HEAD"):
            raise _Reply(405, {"error": "Method not allowed"})
        if segs[:2] == ["api", "models"]:
            if len(segs) == 2:
                self._search()
                return
            self._api_repo(segs[2:], raw[2:], account)
            return
        if len(segs) >= 3 and segs[2] == "resolve":
            self._resolve(segs, raw, account)
            return
        if len(segs) == 2 and f"{segs[0]}/{segs[1]}" in self.hub.repos:
            page = f"<!DOCTYPE html><html><body><h1>{segs[0]}/{segs[1]}</h1></body></html>"
            self._send(200, page.encode(), ctype="text/html; charset=utf-8")
            return
        raise _Reply(404, {"error": "Sorry, we can't find the page you are looking for."})

    def _repo(self, repo_id: str, account: str | None) -> HubRepoSpec:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            raise _error(404 if account else 401, "RepoNotFound",
                         "Repository not found")  # fmt: skip
        return repo

    def _moved(self, repo_id: str, raw: list[str], status: int) -> None:
        """Answer a renamed repo with a redirect to the same path under its new name."""
        new = self.hub.renames.get(repo_id)
        if new is None:
            return
        parts = urlsplit(self.path)
        location = parts.path.replace(f"/{raw[0]}/{raw[1]}", f"/{new}", 1)
        if parts.query:
            location += "?" + parts.query
        raise _Reply(status, {"error": "Moved"}, {"Location": location})

    def _api_repo(self, segs: list[str], raw: list[str], account: str | None) -> None:
        if len(segs) < 2:
            raise _Reply(404, {"error": "Not found"})
        repo_id = f"{segs[0]}/{segs[1]}"
        self._moved(repo_id, raw, 301)
        repo = self._repo(repo_id, account)
        rest, rest_raw = segs[2:], raw[2:]
        revision = "main"
        if rest[:1] in (["revision"], ["tree"]) and len(rest) >= 2:
            revision, consumed = _revision(rest_raw[1:])
            sub = "/".join(unquote(s) for s in rest_raw[1 + consumed :])
        elif rest:
            raise _Reply(404, {"error": "Not found"})
        commit = self.hub.commit(repo, revision)
        if commit is None:
            raise _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if rest[:1] == ["tree"]:
            self._tree(repo, sub)
            return
        self._json(200, self._info(repo, commit, blobs=self._q("blobs") == "true"))

    def _info(self, repo: HubRepoSpec, commit: str, *, blobs: bool) -> dict[str, Any]:
        siblings = []
        for served in self.hub.repo_files(repo):
            entry: dict[str, Any] = {"rfilename": served.spec.path}
            if blobs:
                entry.update(size=served.size, blobId=served.blob_id)
                if served.lfs:
                    entry["lfs"] = {"sha256": served.sha256, "size": served.size,
                                    "pointerSize": _pointer_size(served)}  # fmt: skip
            siblings.append(entry)
        return {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id,
            "modelId": repo.id, "author": repo.author, "sha": commit,
            "lastModified": repo.last_modified, "private": False, "disabled": False,
            "gated": repo.gated, "downloads": repo.downloads, "likes": repo.likes,
            "library_name": repo.library_name, "tags": list(repo.tags),
            "pipeline_tag": repo.pipeline_tag, "cardData": dict(repo.card),
            "siblings": siblings, "createdAt": repo.created_at,
            "usedStorage": sum(f.size for f in self.hub.repo_files(repo)),
        }  # fmt: skip

    def _tree(self, repo: HubRepoSpec, sub: str) -> None:
        recursive = (self._q("recursive") or "").lower() in ("true", "1")
        entries: dict[str, dict[str, Any]] = {}
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        for served in self.hub.repo_files(repo):
            path = served.spec.path
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :].split("/")
            for depth in range(1, len(rel)):  # the folders on the way
                folder = prefix + "/".join(rel[:depth])
                entries.setdefault(
                    folder,
                    {
                        "type": "directory",
                        "size": 0,
                        "path": folder,
                        "oid": hashlib.sha1(folder.encode()).hexdigest(),
                    },
                )
                if not recursive:
                    break
            if len(rel) > 1 and not recursive:
                continue
            entry: dict[str, Any] = {"type": "file", "oid": served.blob_id, "size": served.size,
                                     "path": path}  # fmt: skip
            if served.lfs:
                size = _pointer_size(served)
                entry["lfs"] = {"oid": served.sha256, "size": served.size, "pointerSize": size}
            entries[path] = entry
        if prefix and not entries:
            raise _error(404, "EntryNotFound", f"{sub} does not exist on this revision")
        self._paged(sorted(entries.values(), key=lambda e: e["path"]), self.hub.tree_page_size)

    def _paged(self, items: list[dict[str, Any]], page_size: int) -> None:
        """One page of ``items`` from ``cursor``, with a Link to the next if any is left."""
        cursor = self._q("cursor")
        start = 0
        if cursor:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
            except (ValueError, KeyError, TypeError):
                raise _Reply(400, {"error": "Invalid cursor"}) from None
        page = items[start : start + page_size]
        headers: dict[str, str] = {}
        if start + page_size < len(items):
            loop = self.hub.take_fault(urlsplit(self.path).path, {"link-loop"})
            offset = start if loop is not None else start + page_size
            token = base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()
            query = [(k, v) for k, vs in self.query.items() for v in vs if k != "cursor"]
            query.append(("cursor", token))
            url = f"{self.origin}{urlsplit(self.path).path}?{urlencode(query)}"
            headers["Link"] = f'<{url}>; rel="next"'
        self._json(200, page, headers)

    def _search(self) -> None:
        repos = list(self.hub.repos.values())
        text = (self._q("search") or "").lower()
        if text:
            repos = [r for r in repos if text in r.id.lower()]
        author = self._q("author")
        if author:
            repos = [r for r in repos if r.author.lower() == author.lower()]
        for tag in self.query.get("filter", []):
            repos = [r for r in repos if tag in r.tags or tag in (r.pipeline_tag,
                                                                 r.library_name)]  # fmt: skip
        sort = self._q("sort") or "trendingScore"
        if sort not in _SORT_KEYS:
            raise _Reply(400, {"error": f'"sort" must be one of {", ".join(_SORT_KEYS)}'})
        descending = (self._q("direction") or "-1") == "-1"
        repos.sort(key=lambda r: (getattr(r, _SORT_KEYS[sort]), r.id), reverse=descending)
        try:
            limit = int(self._q("limit") or "1000")
        except ValueError:
            raise _Reply(400, {"error": '"limit" must be a number'}) from None
        expand = self.query.get("expand", []) + self.query.get("expand[]", [])
        items = [self._search_item(r, expand) for r in repos]
        self._paged(items, max(1, min(1000, limit)))

    def _search_item(self, repo: HubRepoSpec, expand: list[str]) -> dict[str, Any]:
        full = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id,
            "likes": repo.likes, "trendingScore": repo.trending, "private": False,
            "downloads": repo.downloads, "tags": list(repo.tags),
            "pipeline_tag": repo.pipeline_tag, "library_name": repo.library_name,
            "createdAt": repo.created_at, "modelId": repo.id,
        }  # fmt: skip
        if not expand:
            return full
        extra = {"gated": repo.gated, "lastModified": repo.last_modified,
                 "sha": commit_of(repo.id, "main"), "author": repo.author}  # fmt: skip
        fields = {**full, **extra}
        return {"_id": full["_id"], "id": repo.id,
                **{k: fields[k] for k in expand if k in fields}}  # fmt: skip

    def _resolve(self, segs: list[str], raw: list[str], account: str | None) -> None:
        repo_id = f"{segs[0]}/{segs[1]}"
        self._moved(repo_id, raw, 307)
        repo = self._repo(repo_id, account)
        if len(raw) < 5:
            raise _error(404, "EntryNotFound", "Entry not found")
        revision, consumed = _revision(raw[3:])
        path = "/".join(unquote(s) for s in raw[3 + consumed :])
        commit = self.hub.commit(repo, revision)
        if commit is None:
            raise _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        served = self.hub.files.get((repo.id, path))
        if served is None:
            raise _error(404, "EntryNotFound", "Entry not found")
        if repo.gated:
            if account is None:
                raise _error(401, "GatedRepo", f"Access to model {repo.id} is restricted. You "
                             "must have access to it and be authenticated to access it. "
                             "Please log in.")  # fmt: skip
            if account not in self.hub.gated_tokens:
                raise _error(403, "GatedRepo", f"Access to model {repo.id} is restricted and "
                             "you are not in the authorized list. Visit "
                             f"{self.origin}/{repo.id} to ask for access.")  # fmt: skip
        headers = {"X-Repo-Commit": commit, "Access-Control-Expose-Headers": "X-Repo-Commit",
                   "RateLimit": '"resolvers";r=2999;t=300'}  # fmt: skip
        if not served.lfs:
            headers["ETag"] = f'"{served.blob_id}"'
            self._send(200, served.read(), headers, ctype="text/plain; charset=utf-8")
            return
        location = self.hub.signed_url(served, path.rsplit("/", 1)[-1])
        headers.update({
            "ETag": f'"{served.sha256}"', "X-Linked-Etag": f'"{served.sha256}"',
            "X-Linked-Size": str(served.size), "Location": location,
        })  # fmt: skip
        self._send(302, f"Found. Redirecting to {location}".encode(), headers,
                   ctype="text/plain; charset=utf-8")  # fmt: skip

    # -- CDN host -----------------------------------------------------------------------------

    def _cdn(self, segs: list[str]) -> None:
        served = self.hub.by_sha256(segs[-1]) if len(segs) == 4 and segs[0] == "repos" else None
        if served is None:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", ctype="application/xml")
            return
        reason = self.hub.check(served.sha256, self._q("expires") or "",
                                self._q("signature") or "")  # fmt: skip
        if reason is not None:
            body = f"<Error><Code>AccessDenied</Code><Message>{reason}</Message></Error>"
            self._send(403, body.encode(), ctype="application/xml")
            return
        etag = f'"{served.sha256}"'
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Cache-Control": "public, max-age=3600",
            "Content-Disposition": self._q("response-content-disposition") or "inline",
        }
        start, end, status = 0, served.size, 200
        path = urlsplit(self.path).path
        cut = self.hub.take_fault(path, {"drop"})
        flip = served.size // 2 if self.hub.take_fault(path, {"corrupt"}) else None
        if cut is not None:
            headers["Connection"] = "close"
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and (if_range is None or if_range.strip() == etag):
            parsed = _parse_range(wanted, served.size)
            if parsed == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{served.size}"
                self._send(416, b"", headers, ctype="application/octet-stream")
                return
            if isinstance(parsed, tuple):
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{served.size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        with served.open() as fh:
            fh.seek(start)
            at, stop = start, end if cut is None else min(end, start + cut.after_bytes)
            while at < stop:
                chunk = fh.read(min(stop - at, 64 << 10))
                if not chunk:
                    break
                if flip is not None and at <= flip < at + len(chunk):
                    i = flip - at
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                self.wfile.write(chunk)
                at += len(chunk)
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


def _revision(raw: list[str]) -> tuple[str, int]:
    """The revision at the start of raw path segments and how many it used: ``refs/pr/N``
    and ``refs/convert/NAME`` unencoded take three, anything else one (percent-decoded)."""
    if len(raw) >= 3 and raw[0] == "refs" and raw[1] in ("pr", "convert"):
        return "/".join(raw[:3]), 3
    return (unquote(raw[0]) if raw else "main"), (1 if raw else 0)


def _pointer_size(served: HubServedFile) -> int:
    return len(lfs_pointer(served.sha256, served.size))
