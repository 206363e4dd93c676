"""Browse: search Civitai or the Hugging Face Hub, page through results, read a model,
queue a file. ``s`` (or a click on the source label) switches the source; the Hub's side
lives in :mod:`sdlib.tui.screens.browse_hub`.

Search requests, version details and previews all run in thread workers; each result
comes back as a message. A search carries a generation number so that answers to an older
search (the user typed again) are dropped.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.content import Content
from textual.coordinate import Coordinate
from textual.timer import Timer
from textual.widgets import Checkbox, DataTable, Footer, Input, Select, Static

from sdlib.sources.paging import PageGuard
from sdlib.tui.messages import (
    DetailFailed,
    SearchFailed,
    SearchResults,
    SettingsChanged,
    VersionLoaded,
)
from sdlib.tui.screens.browse_hub import SourceSwitch
from sdlib.tui.screens.browse_query import (
    BASE_OPTIONS,
    CIVITAI,
    HUB,
    PLACEHOLDERS,
    SOURCE_NAMES,
    TYPE_OPTIONS,
    Query,
    with_changes,
)
from sdlib.tui.screens.browse_query import periods as _periods
from sdlib.tui.screens.browse_query import sorts as _sorts
from sdlib.tui.screens.browse_refs import RefBrowsing
from sdlib.tui.widgets.model_detail import ModelDetail
from sdlib.tui.widgets.results import ResultsTable

if TYPE_CHECKING:
    from textual.events import Resize

    from sdlib.sources.civitai import CivitaiModel

#: Below this size the detail pane replaces the results instead of sitting under them.
WIDE = (100, 32)


class BrowseScreen(RefBrowsing):
    MODE = "browse"
    HOME = "#results"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search", tooltip="Type a search; enter runs it"),
        Binding("s", "switch_source", "Source", tooltip="Search Civitai or the Hugging Face Hub"),
        Binding("d", "download", "Download", tooltip="Choose a file of this version to download"),
        Binding("c", "copy_words", "Copy words", tooltip="Copy the trained words to the clipboard"),
        Binding("right_square_bracket", "preview(1)", "Next image", show=False),
        Binding("left_square_bracket", "preview(-1)", "Previous image", show=False),
        Binding("v", "versions", "Versions", show=False, tooltip="Pick another version"),
        Binding("f", "focus_filters", "Filters", show=False, tooltip="Type, base, sort, period"),
        Binding("m", "more", "More results", show=False, tooltip="Load the next page"),
        Binding("r", "reload", "Reload", show=False, tooltip="Run the search again"),
        Binding("escape", "back", "Results", tooltip="Back to the results list"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._query = Query()
        self._generation = 0
        self._cursor: str | None = None
        #: Counts pages, empty runs and cursors of the current search (see PageGuard).
        self._guard = PageGuard()
        self._loading = False
        self._models: dict[int, CivitaiModel] = {}
        #: The model (Civitai id) or repo (``hf:ORG/REPO``) the detail pane shows.
        self._showing: int | str | None = None
        self._source = CIVITAI
        self._hub_init()
        self._detail_timer: Timer | None = None
        self._detail_lock = asyncio.Lock()
        self._last_width = 0

    def compose(self) -> ComposeResult:
        yield self.nav()
        with Vertical(id="browse-controls"):
            with Horizontal(id="searchbar"):
                yield SourceSwitch(SOURCE_NAMES[CIVITAI], id="source")
                yield Input(
                    placeholder=PLACEHOLDERS[CIVITAI],
                    id="query",
                    compact=True,
                )
                yield Checkbox("NSFW", self.services.settings.civitai.nsfw, id="nsfw", compact=True)
            with Horizontal(id="filters"):
                yield Select(TYPE_OPTIONS, prompt="Any type", id="type", compact=True)
                yield Select(BASE_OPTIONS, prompt="Any base", id="base", compact=True)
                yield Select(
                    [(s, s) for s in _sorts()],
                    value="Highest Rated",
                    allow_blank=False,
                    id="sort",
                    compact=True,
                )
                yield Select(
                    [(p, p) for p in _periods()],
                    value="AllTime",
                    allow_blank=False,
                    id="period",
                    compact=True,
                )
            yield from self.compose_hub_filters()
        with Container(id="browse-body"):
            yield ResultsTable(id="results")
            # The detail pane (and its Markdown) is mounted when first needed, after the
            # first frame.
        yield Static("", id="browse-status")
        yield Footer()

    def on_mount(self) -> None:
        self._query = Query(nsfw=self.services.settings.civitai.nsfw)
        self._layout(self.app.size.width, self.app.size.height)
        self.query_one(ResultsTable).focus()
        # After the first frame: the worker's imports (httpx2, TLS) would delay it.
        self.sdlib.after_first_frame(self.search)

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        self.set_class(width < WIDE[0] or height < WIDE[1], "-compact")
        if width != self._last_width:
            self._last_width = width
            table = self.query_one(ResultsTable)
            table.setup_columns(width)
            if self._source == HUB:
                table.add_hub_models(self._hub_models.values())
            else:
                table.add_models(self._models.values())

    def on_settings_changed(self, message: SettingsChanged) -> None:
        """Settings were saved: new services, maybe another NSFW choice."""
        for detail in self.query(ModelDetail):
            detail.use_services(self.services)
        self.query_one("#nsfw", Checkbox).value = self.services.settings.civitai.nsfw
        hub = self.hub_detail()
        if hub is not None:
            hub.endpoint = self.services.settings.huggingface.endpoint.rstrip("/")

    # -- searching ----------------------------------------------------------------------------
    def search(self, query: Query | None = None) -> None:
        """Start a new search (clears the results when its first page arrives)."""
        if self._source == HUB:
            self.hub_search()
            return
        if query is not None:
            self._query = query
        self._generation += 1
        self._cursor = None
        self._guard = PageGuard()
        self._loading = True
        self._status("searching…")
        self._fetch_page(self._query, None, self._generation, self._guard)

    def load_more(self) -> None:
        if self._source == HUB:
            self.hub_load_more()
            return
        if self._loading or self._cursor is None:
            return
        self._loading = True
        n = len(self._models)
        self._status(f"{n} model{'s' if n != 1 else ''} · loading more…")
        self._fetch_page(self._query, self._cursor, self._generation, self._guard)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _fetch_page(
        self, query: Query, cursor: str | None, generation: int, guard: PageGuard
    ) -> None:
        from sdlib.errors import SdlibError
        from sdlib.taxonomy import civitai_base_models

        started = time.perf_counter()
        try:
            pages = self.services.civitai.search_pages(
                query.text or None,
                types=[query.type] if query.type else [],
                base_models=civitai_base_models(query.base) if query.base else [],
                sort=query.sort,
                period=query.period,
                nsfw=query.nsfw,
                page_size=self.services.options.page_size,
                cursor=cursor,
                guard=guard,
            )
            page = next(iter(pages))
        except SdlibError as exc:
            self.post_message(SearchFailed(generation, str(exc), cursor is not None))
            return
        elapsed = time.perf_counter() - started
        self.post_message(SearchResults(generation, page, cursor is not None, elapsed))

    @on(SearchResults)
    def _results(self, message: SearchResults) -> None:
        if message.generation != self._generation or self._source != CIVITAI:
            return  # an answer to a search the user has since replaced
        table = self.query_one(ResultsTable)
        if not message.append:
            # Rows follow: the detail pane stays where it is (blank until the highlighted
            # model is shown), instead of closing now and opening again a moment later.
            self._clear_results(keep_pane=bool(message.page.items))
        fresh = [m for m in message.page.items if m.id not in self._models]
        for model in fresh:
            self._models[model.id] = model
        table.add_models(fresh)
        self._cursor = message.page.next_cursor
        self._loading = False
        self._status_summary()
        if not message.append and table.row_count:
            self._schedule_detail()
        # Short or empty pages (Civitai filters after paging): fill the view.
        if self._cursor is not None and table.row_count < table.size.height:
            self.load_more()

    @on(SearchFailed)
    def _failed(self, message: SearchFailed) -> None:
        if message.generation != self._generation:
            return
        self._loading = False
        if not message.append:
            # The old results answer another query: leave them and `d` would fetch a model
            # the user no longer sees as the answer to what they asked.
            self._clear_results()
            self._cursor = None
        self._status("search failed: " + message.message)
        self.report_error(message.message, title="Search failed")

    def _clear_results(self, *, keep_pane: bool = False) -> None:
        """Empty the table and the detail: nothing is selected any more. The detail pane
        closes too unless ``keep_pane`` (new results are about to fill the table)."""
        self._models = {}
        self._hub_models = {}
        self.query_one(ResultsTable).clear()
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._showing = None
        detail = self._detail()
        if detail is not None and detail.is_mounted:  # (one being mounted shows nothing yet)
            detail.clear()
        hub = self.hub_detail()
        if hub is not None and hub.is_mounted:
            hub.clear()
        # Each class change restyles every widget of the screen: only the needed one.
        self.remove_class(*(("-detail-open",) if keep_pane else ("-has-detail", "-detail-open")))
        self.clear_offer()
        self.refresh_bindings()

    def _status(self, text: str) -> None:
        self.query_one("#browse-status", Static).update(Content(text))

    def _status_summary(self) -> None:
        if self._source == HUB:
            self.hub_status()
            return
        n = len(self._models)
        stopped = f" · {self._guard.stopped}" if self._guard.stopped else ""
        if n == 0:
            hint = "" if self._query.nsfw else " (NSFW models are hidden; tick NSFW to include)"
            self._status("no models found" + (stopped or hint))
            return
        more = " · more below" if self._cursor else ""
        self._status(f"{n} model{'s' if n != 1 else ''}{more}{stopped}")

    @on(ResultsTable.NearEnd)
    def _near_end(self) -> None:
        self.load_more()

    # -- filters ------------------------------------------------------------------------------
    @on(Input.Submitted, "#query")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.open_reference(event.value):  # a pasted reference opens, not searched
            self.query_one(ResultsTable).focus()
            return
        if self._source == HUB:
            self.hub_search(with_changes(self._hub_query, text=event.value.strip()))
        else:
            self.search(with_changes(self._query, text=event.value.strip()))
        self.query_one(ResultsTable).focus()

    @on(Select.Changed, "#type, #base, #sort, #period")
    def _filter_changed(self, event: Select.Changed) -> None:
        value = None if event.value is Select.NULL else str(event.value)
        field = event.select.id or ""
        if value is None and field in ("sort", "period"):
            return
        if getattr(self._query, field) != value:
            self.search(with_changes(self._query, **{field: value}))

    @on(Checkbox.Changed, "#nsfw")
    def _nsfw_changed(self, event: Checkbox.Changed) -> None:
        if event.value != self._query.nsfw:
            self.search(with_changes(self._query, nsfw=event.value))

    # -- details ------------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#results")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one(ResultsTable)
        if table.near_end():
            self.load_more()
        if not self.has_class("-compact"):
            self._schedule_detail()

    @on(DataTable.RowSelected, "#results")
    async def _selected(self, event: DataTable.RowSelected) -> None:
        await self.open_detail()

    def _schedule_detail(self) -> None:
        if self._detail_timer is not None:
            self._detail_timer.stop()
        delay = self.services.options.detail_delay
        if delay <= 0:
            self.call_later(self._show_highlighted)
        else:
            self._detail_timer = self.set_timer(delay, self._show_highlighted)

    def _highlighted_model(self) -> CivitaiModel | None:
        table = self.query_one(ResultsTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self._models.get(int(key)) if key and key.isdigit() else None

    def _detail(self) -> ModelDetail | None:
        return self.body_pane("detail", ModelDetail)

    async def _show_highlighted(self) -> None:
        # One at a time: a second call while the first mounts the pane would find the pane
        # without its children (NoMatches, a crash), or show a model from replaced results.
        async with self._detail_lock:
            if self._source == HUB:
                await self.show_highlighted_repo()
                return
            model = self._highlighted_model()
            if model is None or model.id == self._showing:
                return
            detail = self._detail()
            if detail is None:
                detail = ModelDetail(self.services, id="detail")
                await self.query_one("#browse-body").mount(detail)
                model = self._highlighted_model()  # the results may have changed meanwhile
                if model is None:
                    return
            self._showing = model.id
            self.add_class("-has-detail")
            detail.show(model, None)
            if model.latest is not None:
                self._load_version(model, model.latest.id)

    async def open_detail(self) -> None:
        """Show the highlighted model (in compact layouts the detail replaces the table)."""
        await self._show_highlighted()
        if self._showing is None:
            return
        self.add_class("-detail-open")
        if self.has_class("-compact"):
            self.query_one("#hub-detail" if self._source == HUB else "#detail-info").focus()
        self.refresh_bindings()

    @on(ModelDetail.VersionChosen)
    def _version_chosen(self, message: ModelDetail.VersionChosen) -> None:
        detail = self._detail()
        if detail is not None and detail.model is not None:
            version = detail.model.version(message.version_id)
            if version is not None:
                detail.show_version(version, None)
            self._load_version(detail.model, message.version_id)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_version(self, model: CivitaiModel, version_id: int) -> None:
        """The full version record (AIR, image metadata) and the voted settings."""
        from sdlib.errors import NotFound, SdlibError

        civitai = self.services.civitai
        try:
            try:
                version = civitai.version(version_id)
            except NotFound:
                # Not yet rated for NSFW (minutes after publishing): the list's record will do.
                listed = model.version(version_id)
                if listed is None:
                    raise
                version = listed
        except SdlibError as exc:
            self.post_message(DetailFailed(model.id, version_id, str(exc)))
            return
        try:
            rec = civitai.recommended_settings(version)
        except SdlibError:
            rec = version.recommended  # the version's own previews still vote
        self.post_message(VersionLoaded(model, version, rec))

    @on(VersionLoaded)
    def _version_loaded(self, message: VersionLoaded) -> None:
        detail = self._detail()
        if detail is None or detail.model is None or detail.model.id != message.model.id:
            return
        current = detail.version
        if current is not None and current.id != message.version.id:
            return  # the user picked another version meanwhile
        detail.show_version(message.version, message.recommended)

    @on(DetailFailed)
    def _detail_failed(self, message: DetailFailed) -> None:
        detail = self._detail()
        if detail is not None and detail.model is not None and detail.model.id == message.model_id:
            detail.set_recommended(None)
            self.report_error(message.message, title="Could not load the version")

    # -- actions ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # Shown (and active) only where there is somewhere to go back to.
            open_ = self.has_class("-compact") and self.has_class("-detail-open")
            return open_ or self.in_field()
        if action in ("copy_words", "versions", "preview") and self._source == HUB:
            return False  # Civitai's: a Hub repo has no versions, words or previews
        return super().check_action(action, parameters)

    def action_focus_search(self) -> None:
        self.query_one("#query", Input).focus()

    def action_focus_filters(self) -> None:
        self.query_one("#hub-type" if self._source == HUB else "#type", Select).focus()

    def action_more(self) -> None:
        if self._hub_pages.done if self._source == HUB else self._cursor is None:
            self.notify("no more results", timeout=3)
        self.load_more()

    def action_reload(self) -> None:
        self.search()

    def action_back(self) -> None:
        if self.in_field():
            self.leave_field()
            return
        self.remove_class("-detail-open")
        self.query_one(ResultsTable).focus()
        self.refresh_bindings()

    def action_preview(self, delta: int) -> None:
        detail = self._detail()
        if detail is not None:
            detail.step_preview(delta)

    async def action_versions(self) -> None:
        if self._showing is None:
            await self.open_detail()
        if self._detail() is not None:
            self.query_one("#versions", Select).focus()

    def action_copy_words(self) -> None:
        detail = self._detail()
        if detail is None or detail.version is None:
            self.notify("open a model first (enter)", timeout=3)
            return
        words = detail.version.trained_words
        if not words:
            self.notify("this version has no trained words", timeout=3)
            return
        self.app.copy_to_clipboard(", ".join(words))
        self.notify(f"copied: {', '.join(words)}", title="Trained words", markup=False)

    async def action_download(self) -> None:
        from sdlib.tui.screens.dialogs import DownloadDialog

        if self._source == HUB:
            if self._showing is None:
                await self._show_highlighted()
            self.hub_download()
            return
        if self._showing is None:
            await self._show_highlighted()
        if self._showing is None and self.take_offer(None):
            return  # a model gone from Civitai, opened by its reference: its offer
        detail = self._detail()
        model = detail.model if detail is not None else None
        if detail is None or model is None:
            self.notify("nothing selected", timeout=3)
            return
        version = detail.version or model.latest
        if version is None or not version.files:
            self.download_elsewhere(model, version)  # archived: a mirror, if one has it
            return

        def queue(file_id: int | None) -> None:
            if file_id is not None:
                self.sdlib.queue_download(model, version, file_id)

        self.app.push_screen(DownloadDialog(self.services, model, version), queue)
