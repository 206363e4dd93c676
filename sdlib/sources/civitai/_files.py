"""Civitai references as :class:`~sdlib.sources.protocol.RemoteFile` records.

``resolve_file`` takes every reference form (ids, ``model@version``, site and API URLs,
AIR URNs, ``sha256:<hex>``) and a file choice, asks the API, picks the file as Civitai's
download endpoint would, and returns the facts the install path needs. A bare model
reference gets the newest version anyone can download; newer early-access versions it
skipped are named through ``on_note``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sdlib.lookup import Preview
from sdlib.sources.civitai._http import raise_for_status
from sdlib.sources.protocol import ANY_FILE, FileChoice, RemoteFile
from sdlib.taxonomy import CIVITAI_TYPE_TO_KIND, Container, Kind, base_from_civitai

if TYPE_CHECKING:
    from sdlib.sources.civitai._choice import DownloadTarget
    from sdlib.sources.civitai._client import CivitaiClient
    from sdlib.sources.civitai._models import CivitaiModel, CivitaiVersion

__all__ = ["resolve_file"]

#: Civitai file types that say more than the model type does.
_FILE_TYPE_KIND = {"VAE": Kind.VAE, "Text Encoder": Kind.TEXT_ENCODER, "UNet": Kind.UNET,
                   "Diffusion Model": Kind.UNET, "CLIPVision": Kind.CLIP_VISION,
                   "Vision Encoder": Kind.CLIP_VISION}  # fmt: skip
_FORMAT_CONTAINER = {"SafeTensor": Container.SAFETENSORS, "PickleTensor": Container.PICKLE_ZIP,
                     "GGUF": Container.GGUF}  # fmt: skip


def resolve_file(
    client: CivitaiClient,
    ref: str,
    choice: FileChoice = ANY_FILE,
    *,
    on_note: Callable[[str], None] = lambda _m: None,
) -> RemoteFile:
    """The exact file ``ref`` and ``choice`` name, with its facts."""
    file_id = choice.file_id
    if ref.lower().startswith("sha256:"):
        wanted = ref.split(":", 1)[1].upper()
        version = client.version_by_hash(wanted)
        match = next((f for f in version.files if f.hashes.get("SHA256", "").upper() == wanted),
                     None)  # fmt: skip
        file_id = match.id if match is not None else file_id
        model, version = client.lookup(f"{version.model_id}@{version.id}")
    else:
        parsed = client.parse_ref(ref)
        model, version = client.lookup(parsed)
        file_id = file_id if file_id is not None else parsed.file_id
        if parsed.version_id is None:
            _say_early_access(model, version, on_note)
    target = client.resolve_download(
        version, type=choice.type, format=choice.format, size=choice.size, fp=choice.fp,
        file_id=file_id,
    )  # fmt: skip

    def refresh() -> str:
        """A signed storage URL expires: ask for the same file again."""
        return client.resolve_download(client.version(target.version_id),
                                       file_id=target.file_id).url  # fmt: skip

    return remote_file(client.base_url, model, version, target, refresh=refresh)


def remote_file(
    site: str,
    model: CivitaiModel,
    version: CivitaiVersion,
    target: DownloadTarget,
    *,
    refresh: Callable[[], str] | None = None,
) -> RemoteFile:
    """A resolved Civitai file as the install path's record."""
    title = " ".join(n for n in (target.model_name or model.name, target.version_name) if n)
    return RemoteFile(
        source="civitai",
        pinned_ref=f"{target.model_id}@{target.version_id}" if target.model_id
        else f"@{target.version_id}",
        url=target.url,
        file_name=target.file_name,
        size=target.size,
        hashes=dict(target.hashes),
        container=_FORMAT_CONTAINER.get(target.format or ""),
        kind=_kind(target),
        base=base_from_civitai(target.base_model),
        base_label=target.base_model,
        title=title,
        picked=_describe_pick(target),
        page_url=f"{site.rstrip('/')}/models/{model.id}?modelVersionId={version.id}",
        tags=(str(target.version_id), str(target.file_id)),
        model_id=target.model_id,
        version_id=target.version_id,
        file_id=target.file_id,
        model_name=model.name,
        model_type=model.type,
        description=model.description,
        version_description=version.description,
        trained_words=tuple(version.trained_words),
        nsfw=model.nsfw,
        model_tags=tuple(model.tags),
        author=model.creator,
        file_metadata={"fp": target.fp, "size": target.weights, "format": target.format},
        previews=tuple(
            Preview(image.url, image.nsfw)
            for image in version.images
            if image.url and getattr(image, "type", "image") in (None, "image")
        ),
        record=dict(version.raw) if version.raw else version.to_dict(),
        raise_for_status=raise_for_status,
        refresh=refresh,
    )  # fmt: skip


def _say_early_access(
    model: CivitaiModel, version: CivitaiVersion, on_note: Callable[[str], None]
) -> None:
    """Name the newer versions a bare model reference skipped (early access)."""
    for newer in model.early_access_newer(version):
        until = (newer.early_access_ends or "")[:10]
        on_note(
            f"{model.name}: version {newer.name} ({newer.id}) is in early access until "
            f"{until}; installing {version.name} ({version.id}), the newest you can "
            f"download (ask for {model.id}@{newer.id} to try the early-access one)"
        )


def _kind(target: DownloadTarget) -> Kind:
    if target.file_type in _FILE_TYPE_KIND:
        return _FILE_TYPE_KIND[target.file_type]
    return CIVITAI_TYPE_TO_KIND.get(target.model_type or "", Kind.UNKNOWN)


def _describe_pick(target: DownloadTarget) -> str:
    bits = [target.file_name]
    details = [d for d in (target.format, target.fp, target.weights) if d]
    if details:
        bits.append(f"({', '.join(details)})")
    bits.append(f"from {target.model_name or 'model'} {target.version_name}")
    if not target.primary:
        bits.append("[not the primary file]")
    return " ".join(bits)
