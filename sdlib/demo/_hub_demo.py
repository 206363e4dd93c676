"""The demo Hub's state: its catalogue, faults, signed CDN URLs and two HTTP servers.

``HubDemo`` belongs to a ``DemoServer`` (``server.hub``); its request handler, which speaks
the Hub's API, lives in ``_hub_api``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sdlib.demo._base import _HTTPServer
from sdlib.demo._hub_api import CDN_FAULT_KINDS, HUB_FAULT_KINDS, _HubHandler
from sdlib.demo.hub_catalogue import (
    GATED_TOKENS,
    HUB_CATALOGUE,
    HUB_LARGE_REPO,
    HUB_RENAMES,
    HUB_TOKENS,
    HubRepoSpec,
    HubServedFile,
    build_hub_files,
    commit_of,
    hub_large_repo,
)

if TYPE_CHECKING:
    from sdlib.demo.server import DemoServer

__all__ = ["HUB_FAULT_KINDS", "HubDemo", "HubFault"]


@dataclass
class HubFault:
    kind: str
    match: str = "/api/"
    times: int | None = None
    retry_after: float = 1.0
    hits: int = 0
    #: ``drop``: body bytes sent before the connection closes.
    after_bytes: int = 0


class HubDemo:
    """The Hub host and its CDN host, serving ``catalogue`` from files under ``files_dir``."""

    def __init__(
        self,
        demo: DemoServer,
        files_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        catalogue: Sequence[HubRepoSpec] = HUB_CATALOGUE,
        renames: Mapping[str, str] = HUB_RENAMES,
    ) -> None:
        self.demo = demo
        self.host = host
        self._files_dir = Path(files_dir)
        self._catalogue = tuple(catalogue)
        self._files: dict[tuple[str, str], HubServedFile] | None = None
        self.repos = {r.id: r for r in catalogue}
        self.renames = dict(renames)
        self.tokens = set(HUB_TOKENS)
        self.gated_tokens = set(GATED_TOKENS)
        #: Entries per tree page (the Hub sends 1,000; small here so paging is exercised).
        self.tree_page_size = 5
        self.url_ttl = 3600.0
        self._by_sha: dict[str, HubServedFile] = {}
        self._secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._faults: list[HubFault] = []
        self.servers = [self._make(port, "hub"), self._make(cdn_port, "hub-cdn")]

    def _make(self, port: int, role: str) -> _HTTPServer:
        server = _HTTPServer((self.host, port), _HubHandler)
        server.demo = self.demo
        server.role = role
        return server

    @property
    def url(self) -> str:
        """The Hub's origin: what ``HF_ENDPOINT`` should be."""
        return f"http://{self.host}:{self.servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://{self.host}:{self.servers[1].server_address[1]}"

    # -- faults -------------------------------------------------------------------------------

    def add_fault(
        self, kind: str, *, match: str | None = None, times: int | str | None = None,
        retry_after: float | str | None = None, after_bytes: int | str = 0,
    ) -> HubFault:  # fmt: skip
        if kind not in HUB_FAULT_KINDS:
            raise ValueError(f"unknown hub fault {kind!r}; one of: {', '.join(HUB_FAULT_KINDS)}")
        fault = HubFault(kind, match or ("/repos/" if kind in CDN_FAULT_KINDS else "/api/"))
        fault.after_bytes = int(after_bytes)
        fault.times = None if times in (None, "", "none") else int(times)
        if retry_after not in (None, ""):
            fault.retry_after = float(retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take_fault(self, path: str, kinds: set[str]) -> HubFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and path.startswith(fault.match):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def reset(self) -> None:
        """Clear faults and settings, and drop a large file ``add_large_file`` added (a
        server shared between tests then serves its own catalogue again)."""
        with self._lock:
            self._faults.clear()
            if HUB_LARGE_REPO in self.repos:
                self._catalogue = tuple(r for r in self._catalogue if r.id != HUB_LARGE_REPO)
                self.repos.pop(HUB_LARGE_REPO, None)
                self._files = None  # rebuilt on next use; the others' bytes are reused
        self.tree_page_size = 5
        self.url_ttl = 3600.0

    # -- catalogue ----------------------------------------------------------------------------

    @property
    def files(self) -> dict[tuple[str, str], HubServedFile]:
        """Every repo file by (repo, path), written on first use: a DemoServer whose Hub is
        never asked costs no disk and no time."""
        with self._lock:
            if self._files is None:
                self._files = build_hub_files(self._files_dir, self._catalogue)
                self._by_sha = {f.sha256: f for f in self._files.values() if f.lfs}
            return self._files

    def add_large_file(self, size: int) -> str:
        """Serve a generated ``size``-byte safetensors file (``HUB_LARGE_REPO`` /
        ``HUB_LARGE_PATH``, header then zeros, never stored) for download benchmarks, through
        the same resolve -> CDN path as every LFS file; return its ``hf:`` reference. Its
        sha256 is computed when the Hub's files are next built (first use), then cached."""
        if size < 1024:  # below that the header would not fit
            raise ValueError("the large file must be at least 1 KiB")
        repo = hub_large_repo(size)
        with self._lock:
            self._catalogue = (*(r for r in self._catalogue if r.id != repo.id), repo)
            self.repos[repo.id] = repo
            self._files = None  # rebuilt on next use; the others' bytes are reused
        return f"hf:{repo.id}/{repo.files[0].path}"

    def by_sha256(self, sha256: str) -> HubServedFile | None:
        """The LFS file with this sha256 (what a CDN URL names)."""
        self.files  # noqa: B018 - built on first use
        return self._by_sha.get(sha256)

    def commit(self, repo: HubRepoSpec, revision: str) -> str | None:
        """The commit ``revision`` (a branch, tag, ref or commit id) resolves to."""
        names = ("main", *repo.revisions)
        if revision in names:
            return commit_of(repo.id, revision)
        commits = {commit_of(repo.id, n) for n in names}
        return revision.lower() if revision.lower() in commits else None

    def repo_files(self, repo: HubRepoSpec) -> list[HubServedFile]:
        return [self.files[(repo.id, f.path)] for f in repo.files]

    # -- signed CDN URLs ----------------------------------------------------------------------

    def signed_url(self, served: HubServedFile, name: str) -> str:
        expires = int(time.time() + self.url_ttl)
        query = urlencode({
            "expires": expires, "signature": self._sign(served.sha256, expires),
            "response-content-disposition": f'inline; filename="{name}";',
        })  # fmt: skip
        sha = served.sha256
        return f"{self.cdn_url}/repos/{sha[:2]}/{sha[2:4]}/{sha}?{query}"

    def _sign(self, sha256: str, expires: int) -> str:
        return hmac.new(self._secret, f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()

    def check(self, sha256: str, expires: str, signature: str) -> str | None:
        if not expires.isdigit():
            return "missing expiry"
        if not hmac.compare_digest(self._sign(sha256, int(expires)), signature):
            return "signature does not match"
        if int(expires) < time.time():
            return "request has expired"
        return None
