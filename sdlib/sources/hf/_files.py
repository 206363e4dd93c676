"""Hub references as :class:`~sdlib.sources.protocol.RemoteFile` records, and the user's own
Hugging Face cache as a place the bytes may already be.

``resolve_file`` turns ``hf:ORG/REPO[@REV][/PATH]`` (or a pasted Hub link) into the facts
the install path needs: the ``/resolve/`` URL pinned to the commit, size and LFS SHA256
(verified while the bytes stream), the Hub's error mapping for that file, and where the
same bytes sit in ``HF_HUB_CACHE`` if a Hub tool fetched them before.

The cache is huggingface_hub's content-addressed layout: ``models--ORG--NAME/blobs/<sha256>``
for LFS files (``snapshots/<commit>/<path>`` link to them). Its root is ``HF_HUB_CACHE``,
else ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else
``~/.cache/huggingface/hub``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sdlib.sources.protocol import RemoteFile
from sdlib.taxonomy import Container

if TYPE_CHECKING:
    from sdlib.sources.hf._client import HubClient
    from sdlib.sources.hf._models import HubDownload

__all__ = ["cached_blob", "hub_cache_dir", "remote_file", "resolve_file"]

_CONTAINERS = {".safetensors": Container.SAFETENSORS, ".sft": Container.SAFETENSORS,
               ".gguf": Container.GGUF, ".ckpt": Container.PICKLE_ZIP,
               ".pt": Container.PICKLE_ZIP, ".pth": Container.PICKLE_ZIP,
               ".bin": Container.PICKLE_ZIP}  # fmt: skip


def hub_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where Hugging Face tools keep their download cache on this machine."""
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = (
        Path(env["XDG_CACHE_HOME"]).expanduser()
        if env.get("XDG_CACHE_HOME")
        else (Path("~").expanduser() / ".cache")
    )
    return base / "huggingface" / "hub"


def cached_blob(
    repo: str, sha256: str | None, size: int | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The cache's blob of ``repo`` named by ``sha256`` when it exists with ``size`` bytes
    (a size that differs is an incomplete or foreign file: not offered). The caller still
    verifies the bytes: the name is only a claim."""
    if not sha256 or "/" not in repo:
        return None
    folder = "models--" + repo.replace("/", "--")
    blob = hub_cache_dir(environ) / folder / "blobs" / sha256.lower()
    try:
        st = blob.stat()
    except OSError:
        return None
    if not blob.is_file() or (size is not None and st.st_size != size):
        return None
    return blob


def resolve_file(hub: HubClient, ref: str) -> RemoteFile:
    """The exact Hub file ``ref`` names, with its facts (see the module docstring)."""
    return remote_file(hub, hub.resolve(ref))


def remote_file(hub: HubClient, target: HubDownload) -> RemoteFile:
    from sdlib.formatting import human_size

    revision = target.commit or target.revision
    pinned = f"hf:{target.repo}@{revision}/{target.path}"
    suffix = Path(target.path).suffix.lower()
    picked = f"{target.path} ({human_size(target.size)}) from {target.repo}@{revision[:12]}"
    if target.renamed_from:
        picked += f" (the repo moved from {target.renamed_from})"
    if target.guess.kind.value != "unknown":
        picked += f"; looks like a {target.guess.kind.value} ({target.guess.reason})"
    hashes = {"SHA256": target.sha256.upper()} if target.sha256 else {}
    page = f"{hub.endpoint}/{target.repo}/blob/{revision}/{target.path}"
    return RemoteFile(
        source="hf",
        pinned_ref=pinned,
        url=target.url,
        file_name=target.file_name,
        size=target.size,
        hashes=hashes,
        container=_CONTAINERS.get(suffix),
        kind=target.guess.kind,
        base=target.base,
        base_label=None,
        title=f"{target.repo}/{target.path}",
        picked=picked,
        page_url=page,
        # A clash with another repo's file of the same name gets the repo's name.
        tags=(target.repo.rsplit("/", 1)[-1], target.repo.replace("/", "-"), revision[:8]),
        revision=target.commit,
        model_name=target.repo,
        model_tags=tuple(target.tags),
        author=target.repo.split("/", 1)[0],
        raise_for_status=hub.raise_for_download(target),
        cached_path=cached_blob(target.repo, target.sha256, target.size),
    )
