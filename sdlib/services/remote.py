"""Operations that ask a source (Civitai, the Hugging Face Hub): search, show, resolve, install.

Each takes a :class:`~sdlib.services.Context`; the Context owns the client, so faces never
build one. Results are the source layer's typed values.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.download import DownloadEvent
    from sdlib.install import FileChoice, InstallResult
    from sdlib.services._context import Context
    from sdlib.sources.civitai import CivitaiModel, CivitaiVersion, RecommendedSettings
    from sdlib.sources.hf import HubClient, HubDownload, HubModel, HubRepo
    from sdlib.sources.protocol import RemoteFile

__all__ = [
    "PEEK_LIMIT",
    "Peek",
    "hub_client",
    "hub_peek",
    "hub_resolve",
    "hub_search",
    "hub_show",
    "install",
    "recommended",
    "record_install",
    "resolve",
    "search",
    "show",
    "source_of",
]


def search(
    ctx: Context,
    query: str | None = None,
    *,
    types: Sequence[str] = (),
    base_models: Sequence[str] = (),
    sort: str | None = None,
    period: str | None = None,
    limit: int | None = 20,
    nsfw: bool | None = None,
    on_stop: Callable[[str], None] | None = None,
) -> Iterator[CivitaiModel]:
    """Models matching the filters, lazily across pages (NSFW as the settings say).

    ``types`` and ``base_models`` take Civitai's names (``LORA``, ``SDXL 1.0``). A source
    that pages forever is stopped by the paging guard; ``on_stop`` gets its reason.
    ``nsfw``: None follows the settings.
    """
    return ctx.civitai.search(
        query, types=types, base_models=base_models, sort=sort, period=period, limit=limit,
        nsfw=nsfw, on_stop=on_stop,
    )  # fmt: skip


def show(ctx: Context, ref: str) -> tuple[CivitaiModel, CivitaiVersion]:
    """A model and one version of it: ``4384`` (its newest published version, early
    access or not), ``4384@128713``, or a civitai.com / civitai.red URL. A Hub reference
    is a ``UsageError`` naming :func:`hub_show`, which shows Hub repos."""
    if source_of(ctx, ref) == "huggingface":
        from sdlib.errors import UsageError

        raise UsageError(f"{ref.strip()} is a Hugging Face reference: show it with "
                         "sdlib.services.remote.hub_show (show is Civitai's)")  # fmt: skip
    return ctx.civitai.lookup(ctx.civitai.parse_ref(ref), available=False)


def source_of(ctx: Context, ref: str) -> str:
    """Which source a reference names: ``"huggingface"`` for ``hf:...`` and links to
    huggingface.co, hf.co or the configured Hub endpoint; ``"civitai"`` otherwise."""
    return "huggingface" if ctx.hub.claims(ref) else "civitai"


def hub_client(ctx: Context) -> HubClient:
    """The Hub's client over the context's HTTP client (which sends the Hub token to the
    configured endpoint only)."""
    return ctx.hub


def hub_search(
    ctx: Context,
    query: str | None = None,
    *,
    types: Sequence[str] = (),
    bases: Sequence[str] = (),
    sort: str | None = None,
    limit: int | None = 20,
    on_stop: Callable[[str], None] | None = None,
) -> Iterator[HubModel]:
    """Model repos on the Hub, lazily across ``Link`` pages. ``types`` (lora, checkpoint,
    vae, controlnet, embedding), ``bases`` (sd1, sdxl, flux... or a base repo id) and
    ``sort`` (downloads, likes, trending, updated, created) are sdlib's words."""
    return hub_client(ctx).search(query, types=types, bases=bases, sort=sort, limit=limit,
                                  on_stop=on_stop)  # fmt: skip


def hub_show(ctx: Context, ref: str) -> HubRepo:
    """A Hub repo (``hf:ORG/REPO[@REV]`` or a link): info, card summary, gated state, files
    with sizes and sha256 and what each likely is."""
    return hub_client(ctx).repo(ref)


@dataclass(frozen=True)
class Peek:
    """What a Hub file is, read from its header before any download (or why not)."""

    path: str
    kind: str | None = None
    base: str | None = None
    precision: str | None = None
    weights: str | None = None
    bytes_read: int = 0
    error: str | None = None

    def summary(self) -> str:
        if self.error:
            return f"could not read the header: {self.error}"
        bits = [b for b in (self.kind, self.base, self.precision, self.weights)
                if b and b not in ("unknown", "n/a")]  # fmt: skip
        return ", ".join(bits) + f" (read from the header: {self.bytes_read:,} bytes)"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: Header reads ``show`` makes at most (each is one or two Range requests of a few KiB).
PEEK_LIMIT = 6


def hub_peek(ctx: Context, repo: HubRepo, *, limit: int = PEEK_LIMIT) -> list[Peek]:
    """Read the header of each single-file safetensors/GGUF model of ``repo`` (up to
    ``limit``) to tell its kind, base and precision: the Hub only lets sdlib guess those
    from names. A file that cannot be read gets its error; nothing is raised."""
    from sdlib.errors import SdlibError
    from sdlib.services.peek import RemoteTarget, inspect_remote
    from sdlib.sources.hf import HubTarget, raise_for_hub, resolve_url

    revision = repo.model.sha or repo.revision or "main"
    token = bool(ctx.settings.huggingface.token)
    singles = [f for f, g in repo.guesses() if g.layout == "single-file"]
    readable = [f for f in singles if f.path.lower().endswith((".safetensors", ".sft", ".gguf"))]
    out: list[Peek] = []
    for f in readable[:limit]:
        # The Hub's answers mapped as for a download (a gated file: where to ask for access).
        about = HubTarget(ctx.hub.endpoint, repo.model.id, revision, f.path, token=token)
        target = RemoteTarget(
            url=resolve_url(ctx.hub.endpoint, repo.model.id, revision, f.path),
            name=f.path.rsplit("/", 1)[-1], source="huggingface",
            pinned_ref=f"hf:{repo.model.id}@{revision}/{f.path}",
            raise_for_status=functools.partial(raise_for_hub, target=about),
        )  # fmt: skip
        try:
            seen = inspect_remote(ctx, target)
        except SdlibError as exc:
            out.append(Peek(f.path, error=exc.message))
            continue
        cls = seen.report.classification
        if cls is None:
            out.append(Peek(f.path, bytes_read=seen.bytes_read,
                            error=seen.report.note or "not a model file"))  # fmt: skip
            continue
        out.append(Peek(
            f.path, kind=cls.kind.value, base=cls.base.value,
            precision=cls.precision.value if cls.precision is not None else cls.quantization,
            weights=cls.weights.value, bytes_read=seen.bytes_read,
        ))  # fmt: skip
    return out


def hub_resolve(ctx: Context, ref: str) -> HubDownload:
    """What downloading ``ref`` would fetch: URL pinned to a commit, name, size, sha256,
    gated state (``hf:ORG/REPO`` picks the repo's one single-file model)."""
    return hub_client(ctx).resolve(ref)


def recommended(ctx: Context, version: CivitaiVersion) -> RecommendedSettings:
    """Generation settings for ``version``: the creator's, else what its example images used."""
    return ctx.civitai.recommended_settings(version)


def resolve(
    ctx: Context,
    ref: str,
    *,
    choice: FileChoice | None = None,
    on_note: Callable[[str], None] | None = None,
) -> RemoteFile:
    """The exact file ``ref`` names and ``choice`` picks, with its facts (URL, size,
    published hashes, container, kind and base, previews, NSFW), downloading nothing: the
    file :func:`install` would fetch for the same arguments (Civitai, a ``hf:`` reference,
    or CivArchive for a model gone from Civitai). Needs no webUI folder."""
    from sdlib.install import FileChoice
    from sdlib.library.placement import Destination

    # The installer's own resolve, so both pick the same file; it places nothing, so a
    # plain folder stands in for a webUI folder the settings may not name.
    installer = ctx.installer(
        on_note=on_note, destination=Destination.folder(Path.cwd()), previews=False
    )
    return installer.resolve(ref, choice or FileChoice())


def install(
    ctx: Context,
    ref: str,
    *,
    root: str | Path | None = None,
    ui: str | None = None,
    choice: FileChoice | None = None,
    on_event: Callable[[DownloadEvent], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    accept_mismatch: bool = False,
) -> InstallResult:
    """Download one file of ``ref`` (verified while it streams) into the folder its content
    belongs in under ``root`` (default: the configured webUI folder), with sidecars.

    A file whose deciding hash (SHA256, else BLAKE3, else AutoV2) or size differs from what
    the source publishes is discarded (``HashMismatch``, exit code 4); with
    ``accept_mismatch=True`` it is kept and marked unverified (the CLI's
    ``--accept-mismatch``). ``result.verification`` says what was checked and what
    disagreed; ``result.warnings`` holds the one-line warnings."""
    from sdlib.install import FileChoice

    if root is not None:
        Path(root).expanduser().mkdir(parents=True, exist_ok=True)  # a new webUI folder
    destination = ctx.destination(root, ui)
    installer = ctx.installer(
        on_event=on_event, on_note=on_note, cancel=cancel, destination=destination,
        overrides={"accept_mismatch": True} if accept_mismatch else None,
    )  # fmt: skip
    return installer.install(ref, choice or FileChoice())


def record_install(ctx: Context, result: InstallResult) -> None:
    """Remember a finished install in the library index: the file with its identity
    (model, version and file ids, names, base model), its SHA256 and what verifying it
    found (a published secondary hash that disagreed is kept there), so ``updates`` and the
    Library know it before any scan; a file with no Civitai identity (from the Hub) with
    its content, SHA256 and verification, for ``identify`` to look up by hash. Every
    installer :meth:`Context.installer` builds calls this. Never fails the install: if
    the index cannot be written, the next scan finds the file and its sidecar."""
    from sdlib.errors import SdlibError
    from sdlib.library.installed import record_download

    verification = result.verification.to_dict() if result.verification is not None else None
    # A Hub file's history names the revision its bytes came from.
    ref = result.ref if result.version_id is not None else result.pinned_ref or result.ref
    try:
        row_id = record_download(
            ctx.index, result.path, ref=ref, model_id=result.model_id,
            version_id=result.version_id, file_id=result.file_id, sha256=result.sha256,
            verification=verification,
        )  # fmt: skip
        if result.version_id is not None:
            # Which source identified it (a CivArchive mirror's file says so); None: Civitai.
            source = None if result.source == "civitai" else result.source
            ctx.index.update(row_id, identified_source=source)
    except (SdlibError, OSError):
        return
