"""Browse's source switch and its Hugging Face side: search the Hub, read a repo, queue one
of its single files.

``HubBrowsing`` is the base of :class:`~sdlib.tui.screens.browse.BrowseScreen`; it holds
what only the Hub needs (its query, its lazily paged results, the repo detail pane) so the
screen itself stays about switching and the parts both sources share (the results table,
the generation rule that drops stale answers, the status line). Every request runs in a
thread worker through :mod:`sdlib.services.remote` and comes back as a message.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Select, Static

from sdlib.tui.messages import (
    HubDownloadChecked,
    HubRepoFailed,
    HubRepoLoaded,
    HubResults,
    SearchFailed,
)
from sdlib.tui.screens._base import SdlibScreen
from sdlib.tui.screens.browse_query import (
    CIVITAI,
    HUB,
    HUB_BASE_OPTIONS,
    HUB_SORT_OPTIONS,
    HUB_TYPE_OPTIONS,
    PLACEHOLDERS,
    SOURCE_NAMES,
    HubQuery,
    Query,
    with_changes,
)
from sdlib.tui.widgets.hub_detail import HubDetail
from sdlib.tui.widgets.results import ResultsTable

if TYPE_CHECKING:
    from sdlib.sources.hf import HubModel, HubRepo

__all__ = ["HubBrowsing", "HubPages", "SourceSwitch"]

PaneT = TypeVar("PaneT", bound=Widget)


class SourceSwitch(Static):
    """The source label left of the search box; a click switches, as ``s`` does."""

    class Toggled(Message):
        pass

    def on_click(self) -> None:
        self.post_message(self.Toggled())


class HubPages:
    """One Hub search's results, pulled ``n`` at a time. The Hub pages by ``Link`` headers
    inside the (lazy) iterator; a lock keeps two workers from advancing it at once."""

    def __init__(self, start: Callable[[Callable[[str], None]], Iterator[HubModel]]) -> None:
        self._start = start
        self._results: Iterator[HubModel] | None = None
        self._lock = threading.Lock()
        self.done = False
        #: Why paging stopped early (the paging guard's reason), if it did.
        self.stopped: str | None = None

    def take(self, n: int) -> list[HubModel]:
        with self._lock:
            if self.done:
                return []
            if self._results is None:
                self._results = self._start(self._stop)
            page = list(itertools.islice(self._results, n))
            if len(page) < n:
                self.done = True
            return page

    def _stop(self, reason: str) -> None:
        self.stopped = reason


class HubBrowsing(SdlibScreen):
    """The Hub half of Browse (see the module docstring)."""

    _generation: int
    _showing: int | str | None
    _loading: bool
    _source: str
    _query: Query
    _last_width: int

    def _hub_init(self) -> None:
        self._hub_query = HubQuery()
        self._hub_pages = HubPages(lambda stop: iter(()))
        self._hub_models: dict[str, HubModel] = {}

    if TYPE_CHECKING:  # shared with the Civitai side: BrowseScreen defines them

        def _clear_results(self, *, keep_pane: bool = False) -> None: ...

        def _status(self, text: str) -> None: ...

        def _schedule_detail(self) -> None: ...

        def search(self, query: Query | None = None) -> None: ...

    # -- the switch ---------------------------------------------------------------------------
    def compose_hub_filters(self) -> ComposeResult:
        """The row of the Hub's filters, shown instead of Civitai's (and NSFW) while it is
        the source. Its selects are mounted when the Hub is first chosen (mount_hub_filters):
        they were a third of Browse's widgets, styled and laid out before the first frame of
        every session, most of which never switch."""
        yield Horizontal(id="hub-filters")

    def mount_hub_filters(self) -> None:
        row = self.query_one("#hub-filters", Horizontal)
        if row.children:
            return
        row.mount(
            Select(HUB_TYPE_OPTIONS, prompt="Any type", id="hub-type", compact=True),
            Select(HUB_BASE_OPTIONS, prompt="Any base", id="hub-base", compact=True),
            Select(HUB_SORT_OPTIONS, value=self._hub_query.sort, allow_blank=False,
                   id="hub-sort", compact=True),
        )  # fmt: skip

    def action_switch_source(self) -> None:
        """Civitai <-> Hugging Face: the other source's filters, columns and results (the
        words in the search box are searched there)."""
        text = self.query_one("#query", Input).value.strip()
        self.use_source(HUB if self._source == CIVITAI else CIVITAI)
        if self._source == HUB:
            self.hub_search(with_changes(self._hub_query, text=text))
        else:
            self.search(with_changes(self._query, text=text))

    def use_source(self, source: str) -> None:
        """Make ``source`` Browse's: its filters, columns and an empty table (no search)."""
        self._source = source
        if source == HUB:
            self.mount_hub_filters()
        self.set_class(self._source == HUB, "-hub")
        self.query_one(SourceSwitch).update(Content(SOURCE_NAMES[self._source]))
        self.query_one("#query", Input).placeholder = PLACEHOLDERS[self._source]
        self._generation += 1  # what the other source still answers is stale now
        self._loading = False
        self._clear_results()
        self.query_one(ResultsTable).setup_columns(self._last_width, self._source)

    @on(SourceSwitch.Toggled)
    def _source_clicked(self) -> None:
        self.action_switch_source()

    # -- searching ----------------------------------------------------------------------------
    def hub_search(self, query: HubQuery | None = None) -> None:
        """Start a new Hub search (the table is cleared when its first answer arrives)."""
        from sdlib.services import remote

        if query is not None:
            self._hub_query = query
        q = self._hub_query
        services = self.services
        self._generation += 1
        self._loading = True
        self._hub_pages = HubPages(
            lambda stop: remote.hub_search(
                services,
                q.text or None,
                types=[q.type] if q.type else [],
                bases=[q.base] if q.base else [],
                sort=q.sort,
                limit=None,
                on_stop=stop,
            )
        )
        self._status("searching the Hugging Face Hub…")
        self._fetch_hub_page(self._hub_pages, self._generation, False)

    def hub_load_more(self) -> None:
        if self._loading or self._hub_pages.done:
            return
        self._loading = True
        n = len(self._hub_models)
        self._status(f"{n} repo{'s' if n != 1 else ''} · loading more…")
        self._fetch_hub_page(self._hub_pages, self._generation, True)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _fetch_hub_page(self, pages: HubPages, generation: int, append: bool) -> None:
        from sdlib.errors import SdlibError

        try:
            found = pages.take(self.services.options.page_size)
        except SdlibError as exc:
            self.post_message(SearchFailed(generation, str(exc), append))
            return
        self.post_message(HubResults(generation, found, append, not pages.done, pages.stopped))

    @on(HubResults)
    def _hub_results(self, message: HubResults) -> None:
        if message.generation != self._generation or self._source != HUB:
            return  # an answer to a search the user has since replaced
        table = self.query_one(ResultsTable)
        if not message.append:
            self._clear_results(keep_pane=bool(message.models))  # as Civitai's results
        fresh = [m for m in message.models if m.id not in self._hub_models]
        for model in fresh:
            self._hub_models[model.id] = model
        table.add_hub_models(fresh)
        self._loading = False
        self.hub_status()
        if not message.append and table.row_count:
            self._schedule_detail()
        if message.more and table.row_count < table.size.height:
            self.hub_load_more()

    def hub_status(self) -> None:
        n = len(self._hub_models)
        stopped = f" · {self._hub_pages.stopped}" if self._hub_pages.stopped else ""
        if n == 0:
            self._status("no repos found on the Hugging Face Hub" + stopped)
            return
        more = "" if self._hub_pages.done else " · more below"
        self._status(f"{n} repo{'s' if n != 1 else ''} on the Hugging Face Hub{more}{stopped}")

    @on(Select.Changed, "#hub-type, #hub-base, #hub-sort")
    def _hub_filter_changed(self, event: Select.Changed) -> None:
        value = None if event.value is Select.NULL else str(event.value)
        field = (event.select.id or "").removeprefix("hub-")
        if value is None and field == "sort":
            return
        if getattr(self._hub_query, field) != value:
            self.hub_search(with_changes(self._hub_query, **{field: value}))

    # -- the detail pane ----------------------------------------------------------------------
    def hub_detail(self) -> HubDetail | None:
        return self.body_pane("hub-detail", HubDetail)

    def body_pane(self, pane_id: str, kind: type[PaneT]) -> PaneT | None:
        """The pane mounted under the results with this id (the model or repo detail, an
        offer), if there is one. Looked for among ``#browse-body``'s few children: a query
        of the screen walks every widget of a mounted detail pane, and each new page of
        results asks for all three panes."""
        body = self.query_one("#browse-body")
        return next((c for c in body.children if c.id == pane_id and isinstance(c, kind)), None)

    def highlighted_repo(self) -> HubModel | None:
        table = self.query_one(ResultsTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self._hub_models.get(key.removeprefix("hf:")) if key else None

    async def show_highlighted_repo(self) -> None:
        """Show the highlighted repo (the caller holds the detail lock)."""
        model = self.highlighted_repo()
        if model is None or f"hf:{model.id}" == self._showing:
            return
        detail = self.hub_detail()
        if detail is None:
            detail = HubDetail(self.services.settings.huggingface.endpoint, id="hub-detail")
            await self.query_one("#browse-body").mount(detail)
            model = self.highlighted_repo()  # the results may have changed meanwhile
            if model is None:
                return
        self._showing = f"hf:{model.id}"
        self.add_class("-has-detail")
        detail.show_model(model)
        self._load_repo(model.id)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_repo(self, repo_id: str) -> None:
        """The repo's info and files, then what its single files' headers say."""
        from sdlib.errors import SdlibError
        from sdlib.services import remote

        try:
            repo = remote.hub_show(self.services, f"hf:{repo_id}")
        except SdlibError as exc:
            self.post_message(HubRepoFailed(repo_id, str(exc)))
            return
        self.post_message(HubRepoLoaded(repo_id, repo, None))
        from textual.worker import get_current_worker

        if get_current_worker().is_cancelled:
            return  # another repo was highlighted meanwhile: its headers are not wanted
        peeks = remote.hub_peek(self.services, repo)  # errors are per file, never raised
        self.post_message(HubRepoLoaded(repo_id, repo, peeks))

    @on(HubRepoLoaded)
    def _repo_loaded(self, message: HubRepoLoaded) -> None:
        detail = self.hub_detail()
        if detail is not None and detail.model is not None and detail.model.id == message.repo_id:
            detail.show_repo(message.repo, message.peeks)

    @on(HubRepoFailed)
    def _repo_failed(self, message: HubRepoFailed) -> None:
        detail = self.hub_detail()
        if detail is not None and detail.model is not None and detail.model.id == message.repo_id:
            detail.show_error(message.message)

    # -- downloading --------------------------------------------------------------------------
    def hub_download(self) -> None:
        """``d``: queue the repo's single-file model (a picker when it has several)."""
        from sdlib.tui.hub_text import single_files
        from sdlib.tui.screens.dialogs import HubFileDialog

        detail = self.hub_detail()
        if detail is None or detail.model is None:
            self.notify("nothing selected", timeout=3)
            return
        repo = detail.repo
        if repo is None:
            self.notify("the repo's files are still loading", timeout=3)
            return
        singles = single_files(repo)
        if not singles:
            self.notify("no single-file model in this repo (a webUI cannot load diffusers "
                        "folders file by file)", severity="warning")  # fmt: skip
            return
        if len(singles) == 1:
            self._hub_chosen(repo, singles[0][0].path)
            return
        named = repo.selected  # the file a pasted reference named
        if named is not None and named in {f.path for f, _ in singles}:
            self._hub_chosen(repo, named)
            return

        def chosen(path: str | None) -> None:
            if path is not None:
                self._hub_chosen(repo, path)

        self.app.push_screen(HubFileDialog(self.services, repo, detail.peeks), chosen)

    def _hub_chosen(self, repo: HubRepo, path: str) -> None:
        if repo.model.gated:
            self._check_access(repo, path)  # ask first: say why now, not as a failed job
            return
        size = next((f.size for f in repo.files if f.path == path), None)
        self._queue_hub_file(repo.model.id, path, size)

    @work(thread=True, exclusive=True, group="hub-access", exit_on_error=False)
    def _check_access(self, repo: HubRepo, path: str) -> None:
        from sdlib.errors import SdlibError
        from sdlib.services import remote

        revision = repo.model.sha or repo.revision or "main"
        try:
            target = remote.hub_resolve(self.services, f"hf:{repo.model.id}@{revision}/{path}")
        except SdlibError as exc:
            self.post_message(HubDownloadChecked(repo.model.id, path, None, exc.message))
            return
        self.post_message(HubDownloadChecked(repo.model.id, path, target.size))

    @on(HubDownloadChecked)
    def _access_checked(self, message: HubDownloadChecked) -> None:
        if message.message is not None:
            detail = self.hub_detail()
            if (
                detail is not None
                and detail.model is not None
                and (detail.model.id == message.repo_id)
            ):
                detail.show_access(message.message)
            self.notify(message.message, title="No access", severity="error", timeout=12,
                        markup=False)  # fmt: skip
            return
        self._queue_hub_file(message.repo_id, message.path, message.size)

    def _queue_hub_file(self, repo_id: str, path: str, size: int | None) -> None:
        detail = self.hub_detail()
        repo = detail.repo if detail is not None else None
        sha = repo.model.sha if repo is not None and repo.model.id == repo_id else None
        # Pinned to the commit the detail showed: the bytes are the ones described.
        ref = f"hf:{repo_id}@{sha}/{path}" if sha else f"hf:{repo_id}/{path}"
        self.sdlib.queue_file(ref, title=f"hf:{repo_id}", file_name=path.rsplit("/", 1)[-1],
                              size=size)  # fmt: skip
