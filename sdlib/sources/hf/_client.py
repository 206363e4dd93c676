"""The Hugging Face Hub's REST API over an injected ``httpx2.Client`` (no huggingface_hub).

    with HubClient.from_settings(load_settings()) as hub:
        for model in hub.search("sdxl vae", limit=10):
            print(model.id, model.downloads)
        repo = hub.repo(hub.parse_ref("hf:stabilityai/sdxl-vae"))
        target = hub.resolve(hub.parse_ref("hf:stabilityai/sdxl-vae/sdxl_vae.safetensors"))

Requests go to the configured endpoint only (``HF_ENDPOINT``, a mirror, the demo server):
a pasted huggingface.co link names a repo and file, never a host to talk to. The token is
the client's business (``sdlib.http`` signs requests to the endpoint's origin and nothing
else); statuses become sdlib errors in ``_http``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx2

from sdlib.errors import BadResponse, NotFound, SdlibError, UsageError
from sdlib.formatting import human_size
from sdlib.http import build_client, origin_of, read_capped
from sdlib.sources.hf._guess import CANDIDATE_EXTENSIONS
from sdlib.sources.hf._http import HubTarget, open_hub, raise_for_hub, read_json
from sdlib.sources.hf._models import HubDownload, HubFile, HubModel, HubRepo, _sha256
from sdlib.sources.hf._refs import (
    HubRef,
    is_hub_ref,
    local_name,
    parse_hub_ref,
    quote_revision,
    resolve_url,
)
from sdlib.sources.hf._search import hub_query
from sdlib.sources.paging import PageGuard

if TYPE_CHECKING:
    from sdlib.config import Settings

__all__ = ["DEFAULT_ENDPOINT", "HubClient"]

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Fields asked for in searches (``expand`` cannot be combined with ``full``).
_SEARCH_FIELDS = ("downloads", "likes", "tags", "gated", "lastModified", "createdAt",
                  "pipeline_tag", "library_name", "trendingScore", "private")  # fmt: skip
#: Pages of a tree listing or search followed at most (1,000 entries a page on the Hub).
_MAX_PAGES = 50
_MAX_CARD = 64 << 10
_COMMIT = re.compile(r"[0-9a-f]{40}")


class HubClient:
    """The Hub's API over ``client`` (owned by the caller unless built by ``from_settings``).

    ``endpoint`` is the Hub or a mirror; ``token`` says whether the client signs requests
    to it (only for messages: "log in" vs "not approved").
    """

    def __init__(
        self, client: httpx2.Client, *, endpoint: str = DEFAULT_ENDPOINT, token: bool = False
    ) -> None:
        self._client = client
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self._owns_client = False

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx2.BaseTransport | None = None
    ) -> HubClient:
        """A client with its own ``httpx2.Client`` (closed by ``close``)."""
        hub = settings.huggingface
        client = cls(build_client(settings, transport), endpoint=hub.endpoint,
                     token=bool(hub.token))  # fmt: skip
        client._owns_client = True
        return client

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def claims(self, text: str) -> bool:
        """Whether ``text`` names a Hub file: ``hf:...``, a huggingface.co / hf.co link, or
        a link on this client's own endpoint (a mirror, or the demo Hub)."""
        from urllib.parse import urlsplit

        if is_hub_ref(text):
            return True
        stripped = text.strip()
        if "://" not in stripped:
            return False
        try:
            return urlsplit(stripped).netloc.lower() == urlsplit(self.endpoint).netloc.lower()
        except ValueError:
            return False

    def parse_ref(self, text: str) -> HubRef:
        """``parse_hub_ref`` that also knows links on this client's own endpoint."""
        return parse_hub_ref(text, endpoint=self.endpoint)

    # -- search -------------------------------------------------------------------------------

    def search(
        self,
        query: str | None = None,
        *,
        types: Sequence[str] = (),
        bases: Sequence[str] = (),
        sort: str | None = None,
        author: str | None = None,
        limit: int | None = 20,
        on_stop: Callable[[str], None] | None = None,
    ) -> Iterator[HubModel]:
        """Model repos matching, lazily across ``Link: rel="next"`` pages (a repeated or
        foreign next link, a run of empty pages or a page budget ends the walk; ``on_stop``
        hears why). ``types``/``bases``/``sort`` take sdlib's words (``_search``)."""
        if limit is not None and limit <= 0:
            return
        hq = hub_query(list(types), list(bases), sort)
        page_size = 100 if limit is None or hq.keep is not None else max(1, min(100, limit))
        params: list[tuple[str, str]] = []
        if query:
            params.append(("search", query))
        if author:
            params.append(("author", author))
        params += [("filter", f) for f in hq.filters]
        if hq.sort:
            params += [("sort", hq.sort), ("direction", "-1")]
        params.append(("limit", str(page_size)))
        params += [("expand", f) for f in _SEARCH_FIELDS]
        target = HubTarget(self.endpoint, "the model search", token=self.token)
        count = 0
        seen: set[str] = set()
        for items in self._pages(self.endpoint + "/api/models", params, target, on_stop):
            for item in items:
                if not isinstance(item, dict):
                    continue
                model = HubModel.from_api(item)
                if model.id in seen or not hq.accepts(model):
                    continue
                seen.add(model.id)
                yield model
                count += 1
                if limit is not None and count >= limit:
                    return

    def _pages(
        self,
        url: str,
        params: Sequence[tuple[str, str]],
        target: HubTarget,
        on_stop: Callable[[str], None] | None = None,
    ) -> Iterator[list[Any]]:
        """Every page of a Link-paged listing, with the paging guard's limits."""
        guard = PageGuard(max_pages=_MAX_PAGES)
        sent: str | None = None
        current, current_params = url, list(params)
        while True:
            with open_hub(self._client, "GET", current, params=current_params) as answer:
                raise_for_hub(answer.response, target)
                data = read_json(answer.response)
                next_url = answer.response.links.get("next", {}).get("url")
            if not isinstance(data, list):
                raise BadResponse(f"the Hub answered {target.repo} with something not a list",
                                  url=current)  # fmt: skip
            if next_url is not None:
                joined = httpx2.URL(current).join(next_url)
                if origin_of(joined) != origin_of(self.endpoint):
                    next_url = None  # paging never leaves the configured Hub
                    if on_stop is not None:
                        on_stop("stopped paging: the next page was on another host")
                else:
                    next_url = str(joined)
            follow = guard.follow(next_url, len(data), sent=sent)
            yield data
            if follow is None:
                if guard.stopped and on_stop is not None:
                    on_stop(guard.stopped)
                return
            sent = current = follow
            current_params = []

    # -- one repo -----------------------------------------------------------------------------

    def model_info(
        self, repo: str, revision: str | None = None, *, blobs: bool = False
    ) -> tuple[HubModel, str | None]:
        """The repo's info at ``revision`` (default branch if None) and, when the Hub
        redirected a renamed repo, the name asked for (else None)."""
        path = f"/api/models/{repo}"
        if revision is not None:
            path += f"/revision/{quote_revision(revision)}"
        params = [("blobs", "true")] if blobs else []
        target = HubTarget(self.endpoint, repo, revision, token=self.token)
        with open_hub(self._client, "GET", self.endpoint + path, params=params) as answer:
            raise_for_hub(answer.response, target)
            data = read_json(answer.response)
        if not isinstance(data, dict):
            raise BadResponse(f"the Hub described {repo} with something not an object")
        model = HubModel.from_api(data)
        renamed = repo if model.id != "?" and model.id.lower() != repo.lower() else None
        return model, renamed

    def files(self, repo: str, revision: str | None = None) -> list[HubFile]:
        """Every file in the repo (recursive tree listing, all pages): path, size, LFS
        sha256."""
        url = f"{self.endpoint}/api/models/{repo}/tree/{quote_revision(revision or 'main')}"
        params = [("recursive", "true"), ("expand", "false")]
        target = HubTarget(self.endpoint, repo, revision, token=self.token)
        out: list[HubFile] = []

        def cut_short(reason: str) -> None:  # a partial listing would pick the wrong file
            raise BadResponse(f"the Hub's file listing of {repo} is incomplete: {reason}")

        for items in self._pages(url, params, target, cut_short):
            out += [f for f in (HubFile.from_api(i) for i in items if isinstance(i, dict)) if f]
        return out

    def repo(self, ref: HubRef | str) -> HubRepo:
        """What ``show`` prints: info, files with sizes and sha256, the card's summary."""
        if isinstance(ref, str):
            ref = self.parse_ref(ref)
        model, renamed = self.model_info(ref.repo, ref.revision)
        files = self.files(model.id, model.sha or ref.revision)
        summary = None
        if any(f.path == "README.md" for f in files):
            summary = self._card_summary(model.id, model.sha or ref.rev)
        return HubRepo(model, tuple(files), ref.revision, summary, renamed, ref.path)

    def _card_summary(self, repo: str, revision: str) -> str | None:
        """The README's first paragraph of prose (front matter, headings, images and HTML
        skipped), at most 300 characters; None if it cannot be read (it is decoration)."""
        url = resolve_url(self.endpoint, repo, revision, "README.md")
        try:
            with open_hub(self._client, "GET", url) as answer:
                if answer.response.status_code != 200:
                    return None
                body, _ = read_capped(answer.response, _MAX_CARD)
        except SdlibError:
            return None
        return card_summary(body.decode("utf-8", "replace"))

    # -- resolving a file ---------------------------------------------------------------------

    def resolve(self, ref: HubRef | str) -> HubDownload:
        """Everything a download of the file ``ref`` names needs (see ``HubDownload``).

        Without a path the repo's one single-file model is chosen (``pick``). The URL is
        pinned to the commit the revision resolved to.
        """
        if isinstance(ref, str):
            ref = self.parse_ref(ref)
        model, renamed = self.model_info(ref.repo, ref.revision)
        repo = model.id if model.id != "?" else ref.repo
        listed: HubFile | None = None
        folder = ref.folder or _names_a_folder(model, ref.path)
        if ref.path is None or folder:
            files = self.files(repo, model.sha or ref.revision)
            listed = pick(files, repo, folder=ref.path if folder else None)
            path = listed.path
        else:
            path = ref.path
        # At the commit the info resolved: the file picked from its listing is the one asked
        # about, even if the branch moves meanwhile.
        head = self._head(repo, model.sha or ref.rev, path, asked=ref.rev)
        commit = head.get("commit") or model.sha
        sha256 = head.get("sha256") or (listed.sha256 if listed else None)
        size = head.get("size") if head.get("size") is not None else (
            listed.size if listed else None
        )  # fmt: skip
        diffusers = model.is_diffusers
        return HubDownload(
            url=resolve_url(self.endpoint, repo, commit or ref.rev, path),
            repo=repo, revision=ref.rev, commit=commit, path=path,
            file_name=local_name(path), size=size, sha256=sha256, gated=model.gated,
            guess=HubFile(path).guess(model.tags, diffusers, repo), location=head.get("location"),
            renamed_from=renamed or head.get("renamed_from"), base=model.base, tags=model.tags,
        )  # fmt: skip

    def raise_for_download(self, target: HubDownload) -> Callable[[httpx2.Response], None]:
        """The error mapper to hand the download engine for ``target`` (its URL answers
        from the Hub, then from the CDN it redirects to)."""
        where = HubTarget(self.endpoint, target.repo, target.revision, target.path,
                          token=self.token)  # fmt: skip

        def raise_for_status(response: httpx2.Response) -> None:
            raise_for_hub(response, where)

        return raise_for_status

    def _head(self, repo: str, revision: str, path: str, *, asked: str) -> dict[str, Any]:
        """``HEAD /resolve/``: no redirect to another host followed (its ``Location`` is the
        CDN URL), renames (same host) followed; commit, sha256 and size from the
        ``X-Repo-Commit``, ``X-Linked-Etag`` and ``X-Linked-Size`` headers."""
        url = resolve_url(self.endpoint, repo, revision, path)
        target = HubTarget(self.endpoint, repo, asked, path, token=self.token)
        headers = {"Accept-Encoding": "identity"}
        with open_hub(self._client, "HEAD", url, headers=headers, cross_origin=False) as answer:
            response = answer.response
            raise_for_hub(response, target)
            h = response.headers
        commit = (h.get("X-Repo-Commit") or "").strip().lower()
        linked = _sha256(h.get("X-Linked-Etag"))
        size_text = h.get("X-Linked-Size") or (
            h.get("Content-Length") if response.status_code == 200 else None
        )  # fmt: skip
        out: dict[str, Any] = {
            "commit": commit if _COMMIT.fullmatch(commit) else None,
            "sha256": linked,
            "size": int(size_text) if size_text and size_text.strip().isdigit() else None,
            "location": None,
        }
        if response.status_code in (301, 302, 303, 307, 308) and h.get("Location"):
            out["location"] = str(response.request.url.join(h["Location"]))
        elif response.status_code != 200:
            raise BadResponse(f"the Hub answered HTTP {response.status_code} for {path} in "
                              f"{repo} without a file", url=url)  # fmt: skip
        if answer.redirects:
            moved = httpx2.URL(answer.redirects[-1]).path.split("/resolve/")[0].strip("/")
            if moved and moved.lower() != repo.lower():
                out["renamed_from"] = repo
        return out


def _names_a_folder(model: HubModel, path: str | None) -> bool:
    """Whether ``path`` is a folder of the repo (``hf:ORG/REPO/unet``), by its siblings."""
    if not path or not model.siblings:
        return False
    prefix = path.strip("/") + "/"
    paths = [f.path for f in model.siblings]
    return path not in paths and any(p.startswith(prefix) for p in paths)


def pick(files: Sequence[HubFile], repo: str, *, folder: str | None = None) -> HubFile:
    """The repo's one single-file model: a top-level ``.safetensors``/``.sft``/``.ckpt``/
    ``.gguf`` (diffusers weights skipped), a pickle dropped when a safetensors file of the
    same stem is there, files with the same sha256 counted once. None or several:
    ``UsageError`` (exit 2) listing them with sizes."""
    if folder is not None:
        prefix = folder.strip("/") + "/"
        pool = [f for f in files if f.path.startswith(prefix) and "/" not in f.path[len(prefix):]
                and f.path.lower().endswith(CANDIDATE_EXTENSIONS)]  # fmt: skip
    else:
        pool = [f for f in files if f.candidate]
    stems = {
        f.path.rsplit(".", 1)[0] for f in pool if f.path.lower().endswith((".safetensors", ".sft"))
    }
    pool = [f for f in pool if f.path.lower().endswith((".safetensors", ".sft", ".gguf"))
            or f.path.rsplit(".", 1)[0] not in stems]  # fmt: skip
    # The same bytes under two names (madebyollin's sdxl_vae / sdxl.vae) are one choice.
    by_sha: dict[str, HubFile] = {}
    for f in sorted(pool, key=lambda f: (len(f.path), f.path)):
        if f.sha256 is None or f.sha256 not in by_sha:
            by_sha[f.sha256 or f.path] = f
    pool = list(by_sha.values())
    if len(pool) == 1:
        return pool[0]
    where = f"hf:{repo}" + (f" (folder {folder})" if folder else "")
    if not pool:
        raise NotFound(
            f"{where} has no single-file model (.safetensors, .ckpt, .gguf) at its top level"
            + (
                " (only diffusers folders, which webUIs do not load file by file)"
                if any("/" in f.path for f in files)
                else ""
            )
        )
    listing = "; ".join(
        f"hf:{repo}/{f.path} ({human_size(f.size)})"
        for f in sorted(pool, key=lambda f: f.path)[:20]
    )
    more = f" and {len(pool) - 20} more" if len(pool) > 20 else ""
    raise UsageError(f"{where} has {len(pool)} model files; name one: {listing}{more}")


def card_summary(text: str) -> str | None:
    """The first paragraph of prose of a model card (pure; for ``show``)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].strip() == "---":  # YAML front matter
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
        lines = lines[end + 1 :] if end is not None else []
    para: list[str] = []
    for line in lines:
        stripped = line.strip()
        skip = stripped.startswith(("#", "!", "<", "|", "```", "---", "[!")) or not stripped
        if skip:
            if para:
                break
            continue
        para.append(stripped)
    if not para:
        return None
    summary = " ".join(para)
    summary = "".join(c for c in summary if c.isprintable())
    return summary if len(summary) <= 300 else summary[:297] + "..."
