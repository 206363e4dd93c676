"""Browse given a reference instead of words, and what ``d`` takes when Civitai has no file.

* A reference typed or pasted into the search box (a Civitai model or download URL on
  civitai.com, civitai.red or the configured server; ``4384@128713``, ``@128713``, an AIR
  or ``civitai:4384@128713``; ``hf:ORG/REPO[@REV][/PATH]`` or any Hub link) opens that
  model or repo directly, on the right source, instead of searching for its text. The
  sources' own parsers decide (``ctx.civitai.parse_ref``, ``ctx.hub.claims/parse_ref``,
  the ones ``sdlib show`` uses); a bare number is searched (it is as likely a name).
* A version Civitai lists without files (archived), or a model or version it answers as
  gone (404/410), is offered from where ``sdlib download`` would take it
  (:func:`sdlib.services.fallback.elsewhere`: Civitai's other host or a live CivArchive
  mirror), with the SHA256 the download is verified against; ``d`` queues that download
  under the same reference the CLI's offer prints, and the installer falls back to the
  mirror as it does for ``sdlib download``.

``RefBrowsing`` is a base of :class:`~sdlib.tui.screens.browse.BrowseScreen`; its requests
run in thread workers and come back as the messages below.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from textual import on, work
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from sdlib.formatting import human_size, terminal_safe
from sdlib.tui.screens.browse_hub import HubBrowsing
from sdlib.tui.screens.browse_query import CIVITAI, HUB
from sdlib.tui.widgets.hub_detail import HubDetail
from sdlib.tui.widgets.model_detail import ModelDetail
from sdlib.tui.widgets.results import ResultsTable

if TYPE_CHECKING:
    from sdlib.sources.civitai import CivitaiModel, CivitaiVersion
    from sdlib.sources.hf import HubRepo
    from sdlib.sources.protocol import RemoteFile
    from sdlib.tui.services import Services

__all__ = ["OfferPane", "RefBrowsing", "offer_lines", "reference_source"]


def reference_source(services: Services, text: str) -> str | None:
    """Which source ``text`` is a reference for (``CIVITAI``/``HUB``), or None when it is
    words to search for. A link on a Civitai or Hub host that names nothing, or a
    malformed ``hf:``, raises the parser's ``UsageError`` (said, not searched)."""
    from sdlib.errors import UsageError

    text = text.strip()
    if not text or text.isdigit() or any(c.isspace() for c in text):
        return None
    if services.hub.claims(text):
        services.hub.parse_ref(text)
        return HUB
    try:
        services.civitai.parse_ref(text)
    except UsageError:
        if _on_civitai_host(services, text):
            raise
        return None
    return CIVITAI


def _on_civitai_host(services: Services, text: str) -> bool:
    from sdlib.sources.civitai import CIVITAI_HOSTS

    try:
        parts = urlsplit(text if "://" in text else "//" + text)
        host = (parts.hostname or "").lower().removeprefix("www.")
        netloc = parts.netloc.lower()
    except ValueError:
        return False
    own = urlsplit(services.settings.civitai.base_url).netloc.lower()
    return host in CIVITAI_HOSTS or netloc == own


def offer_lines(found: RemoteFile) -> list[str]:
    """The offer in the CLI's words (``sdlib show``'s): where the bytes come from, what
    they are verified against."""
    host = urlsplit(found.url).netloc
    label = f"CivArchive mirror ({host})" if found.source == "civarchive" else host
    size = f"  {human_size(found.size)}" if found.size is not None else ""
    lines = [f"source: {label}  {found.title}", f"  {found.file_name}{size}"]
    if found.sha256:
        lines.append(f"  SHA256 {found.sha256} (the download is verified against it)")
    if found.page_url:
        lines.append(f"  page: {found.page_url}")
    return lines


@dataclass(frozen=True)
class Offer:
    """Where ``d`` takes the file of ``version_id`` (None: a model gone from Civitai)."""

    ref: str
    found: RemoteFile
    version_id: int | None


class OfferPane(Static):
    """The offer, under the results (and the model, when Civitai still lists it)."""

    DEFAULT_CSS = """
    OfferPane {
        height: auto;
        max-height: 8;
        padding: 0 1;
        border-top: solid $warning;
    }
    """


# -- messages from the workers -----------------------------------------------------------------


@dataclass
class RefOpened(Message):
    generation: int
    ref: str
    model: CivitaiModel
    version: CivitaiVersion
    offer: RemoteFile | None


@dataclass
class RefGone(Message):
    generation: int
    ref: str
    gone: str
    offer: RemoteFile


@dataclass
class RefFailed(Message):
    generation: int
    ref: str
    message: str


@dataclass
class HubRefOpened(Message):
    generation: int
    ref: str
    repo: HubRepo


@dataclass
class OfferLooked(Message):
    ref: str
    version_id: int
    offer: RemoteFile | None


class RefBrowsing(HubBrowsing):
    """References in the search box and offers from elsewhere (see the module docstring)."""

    _offer: Offer | None = None
    #: Versions looked up elsewhere that nothing else had (d says so without asking again).
    _nowhere: frozenset[int] = frozenset()

    if TYPE_CHECKING:  # BrowseScreen defines them
        _detail_lock: asyncio.Lock

        def _detail(self) -> ModelDetail | None: ...

        def _load_version(self, model: CivitaiModel, version_id: int) -> object: ...

    # -- opening a reference --------------------------------------------------------------------
    def open_reference(self, text: str) -> bool:
        """Open ``text`` if it is a reference (True), else leave it to the search (False)."""
        from sdlib.errors import SdlibError

        try:
            source = reference_source(self.services, text)
        except SdlibError as exc:
            self._status(f"not a reference: {exc.message}")
            self.report_error(exc.message, title="Not a reference")
            return True
        if source is None:
            return False
        text = text.strip()
        if source != self._source:
            self.use_source(source)
        self._generation += 1  # a search still answering is stale now
        self._loading = False
        self._clear_results()
        where = "the Hugging Face Hub" if source == HUB else "Civitai"
        self._status(f"opening {text} on {where}…")
        if source == HUB:
            self._open_hub_ref(text, self._generation)
        else:
            self._open_civitai_ref(text, self._generation)
        return True

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _open_civitai_ref(self, ref: str, generation: int) -> None:
        from sdlib.errors import Gone, SdlibError, SourceError
        from sdlib.services import remote
        from sdlib.services.fallback import elsewhere

        services = self.services
        try:
            file_id = services.civitai.parse_ref(ref).file_id
            try:
                model, version = remote.show(services, ref)
            except SourceError as exc:  # gone from Civitai: what a download would take
                found = elsewhere(services, ref, exc, file_id=file_id)
                if found is None:
                    raise
                self.post_message(RefGone(generation, ref, exc.message, found))
                return
            found = None
            if not version.files:  # archived: its file may live on elsewhere
                found = elsewhere(services, ref, Gone("no downloadable files"), file_id=file_id)
        except SdlibError as exc:
            self.post_message(RefFailed(generation, ref, exc.message))
            return
        self.post_message(RefOpened(generation, ref, model, version, found))

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _open_hub_ref(self, ref: str, generation: int) -> None:
        from sdlib.errors import SdlibError
        from sdlib.services import remote
        from sdlib.tui.messages import HubRepoLoaded

        try:
            repo = remote.hub_show(self.services, ref)
        except SdlibError as exc:
            self.post_message(RefFailed(generation, ref, exc.message))
            return
        self.post_message(HubRefOpened(generation, ref, repo))
        from textual.worker import get_current_worker

        if get_current_worker().is_cancelled:
            return
        peeks = remote.hub_peek(self.services, repo)  # errors are per file, never raised
        self.post_message(HubRepoLoaded(repo.model.id, repo, peeks))

    @on(RefOpened)
    async def _ref_opened(self, message: RefOpened) -> None:
        if message.generation != self._generation or self._source != CIVITAI:
            return
        model, version = message.model, message.version
        self._models = {model.id: model}
        self._showing = model.id  # before the row: its highlight must not reopen the model
        self.query_one(ResultsTable).add_models([model])
        async with self._detail_lock:  # the pane is mounted once (see _show_highlighted)
            detail = self._detail()
            if detail is None:
                detail = ModelDetail(self.services, id="detail")
                await self.query_one("#browse-body").mount(detail)
        if message.generation != self._generation:
            return  # another reference or search arrived while the pane was mounted
        self.add_class("-has-detail", "-detail-open")
        detail.show(model, version)
        self._load_version(model, version.id)
        offer = Offer(message.ref, message.offer, version.id) if message.offer else None
        self._show_offer(offer)
        state = " · no downloadable files on Civitai" if not version.files else ""
        self._status(f"{model.name} {version.name} (from {message.ref}){state}")
        self.refresh_bindings()

    @on(RefGone)
    async def _ref_gone(self, message: RefGone) -> None:
        if message.generation != self._generation or self._source != CIVITAI:
            return
        self._show_offer(Offer(message.ref, message.offer, None))
        self._status(f"{message.ref}: gone from Civitai ({message.gone}) · d downloads it "
                     "from where the offer below says")  # fmt: skip

    @on(RefFailed)
    def _ref_failed(self, message: RefFailed) -> None:
        if message.generation != self._generation:
            return
        self._status(f"{message.ref}: {message.message}")
        self.report_error(message.message, title="Could not open the reference")

    @on(HubRefOpened)
    async def _hub_ref_opened(self, message: HubRefOpened) -> None:
        if message.generation != self._generation or self._source != HUB:
            return
        repo = message.repo
        self._hub_models = {repo.model.id: repo.model}
        self._showing = f"hf:{repo.model.id}"
        self.query_one(ResultsTable).add_hub_models([repo.model])
        async with self._detail_lock:
            detail = self.hub_detail()
            if detail is None:
                detail = HubDetail(self.services.settings.huggingface.endpoint, id="hub-detail")
                await self.query_one("#browse-body").mount(detail)
        if message.generation != self._generation:
            return  # another reference or search arrived while the pane was mounted
        self.add_class("-has-detail", "-detail-open")
        detail.show_model(repo.model)
        detail.show_repo(repo, None)
        named = f" · file {repo.selected}" if repo.selected else ""
        self._status(f"hf:{repo.model.id} (from {message.ref}){named}")
        self.refresh_bindings()

    # -- offers from elsewhere ------------------------------------------------------------------
    def _offer_pane(self) -> OfferPane | None:
        return self.body_pane("offer", OfferPane)

    def _show_offer(self, offer: Offer | None) -> None:
        self._offer = offer
        pane = self._offer_pane()
        if offer is None:
            if pane is not None:
                pane.remove()
            return
        lines = offer_lines(offer.found)
        lines.append("d downloads it from there")
        text = Content(terminal_safe("\n".join(lines)))
        if pane is None:
            self.query_one("#browse-body").mount(OfferPane(text, id="offer"))
        else:
            pane.update(text)

    def clear_offer(self) -> None:
        """The results were replaced: the offer belonged to them."""
        self._show_offer(None)

    def take_offer(self, version_id: int | None) -> bool:
        """``d`` on a model gone from Civitai (``version_id`` None) or a version it lists
        without files: queue the offered download (True), if there is one for it."""
        offer = self._offer
        if offer is None or offer.version_id != version_id:
            return False
        found = offer.found
        self.notify("\n".join(offer_lines(found)), title="Downloading from elsewhere",
                    markup=False, timeout=8)  # fmt: skip
        # The CLI's offer says `sdlib download REF`: the installer falls back the same way.
        self.sdlib.queue_file(offer.ref, title=found.title, file_name=found.file_name,
                              size=found.size)  # fmt: skip
        return True

    def download_elsewhere(self, model: CivitaiModel, version: CivitaiVersion | None) -> None:
        """``d`` on a version without files: its offer, else ask where a download would
        take it (the offer is shown; ``d`` again queues it)."""
        if version is None or version.id in self._nowhere:
            self.notify("this version has no downloadable files", severity="warning")
            return
        if self.take_offer(version.id):
            return
        self._status(f"{model.name} {version.name}: no files on Civitai · looking elsewhere…")
        self._look_elsewhere(f"{model.id}@{version.id}", version.id)

    @work(thread=True, exclusive=True, group="elsewhere", exit_on_error=False)
    def _look_elsewhere(self, ref: str, version_id: int) -> None:
        from sdlib.errors import Gone, SdlibError
        from sdlib.services.fallback import elsewhere

        try:
            found = elsewhere(self.services, ref, Gone("no downloadable files"))
        except SdlibError:
            found = None
        self.post_message(OfferLooked(ref, version_id, found))

    @on(OfferLooked)
    def _offer_looked(self, message: OfferLooked) -> None:
        detail = self._detail()
        version = detail.version if detail is not None else None
        if version is None or version.id != message.version_id or self._source != CIVITAI:
            return  # the user moved on
        if message.offer is None:
            self._nowhere = self._nowhere | {message.version_id}
            self._status("no downloadable files: not on Civitai's other host or a CivArchive "
                         "mirror either")  # fmt: skip
            self.notify("this version has no downloadable files", severity="warning")
            return
        self._show_offer(Offer(message.ref, message.offer, message.version_id))
        self._status("no files on Civitai · d downloads the file offered below")
