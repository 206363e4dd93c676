"""Library: the webUI's models from the index, filterable, with evidence and actions.

The table comes from ``sdlib.library.scan`` (incremental: unchanged files are not read
again), so it shows exactly what ``sdlib scan`` reports. Every action (verify, identify,
convert, organize, trash, updates) runs in a worker and ends in a notification or a
report dialog; files that changed trigger a rescan.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Select, Static
from textual.widgets.data_table import CellDoesNotExist

from sdlib.formatting import ellipsize, human_size, terminal_safe, tilde
from sdlib.tui.library_text import (
    PROBLEMS,
    civitai_text,
    report_matches,
    short_name,
)
from sdlib.tui.messages import (
    LibraryChanged,
    LibraryEvidence,
    LibraryProgress,
    LibraryScanned,
    LibraryTaskDone,
    SettingsChanged,
)
from sdlib.tui.screens import library_actions as actions
from sdlib.tui.screens import library_extras as extras
from sdlib.tui.screens._base import LEAVE_FIELD, SdlibScreen, error_text
from sdlib.tui.screens.library_actions import plural
from sdlib.tui.widgets.library_detail import LibraryDetail
from sdlib.tui.widgets.thumbs import Thumb, ThumbGrid

if TYPE_CHECKING:
    from textual.events import Resize
    from textual.widget import Widget

    from sdlib.library.scan import FileReport, ScanResult

#: (key, label, width, shown from this screen width); the file column takes the rest.
_COLUMNS = (
    ("kind", "kind", 12, 0),
    ("base", "base", 7, 0),
    ("size", "size", 9, 100),
    ("status", "status", 16, 0),  # a minimum: see LibraryScreen._setup
    ("civitai", "civitai", 24, 100),
)
_STATUS_MIN = 16


class LibraryScreen(SdlibScreen):
    MODE = "library"
    AUTO_FOCUS = "#library-table"
    HOME = "#library-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", tooltip="Filter by name; kind/base/status"),
        Binding("r", "rescan", "Rescan", tooltip="Scan the webUI folders again"),
        Binding("v", "verify", "Verify", tooltip="Hash the file and compare with Civitai"),
        Binding("i", "identify", "Identify", tooltip="Find the file on Civitai by its hash"),
        Binding("u", "updates", "Updates", tooltip="Newer versions of identified models"),
        Binding("g", "toggle_grid", "Grid", tooltip="Thumbnails of the previews, or the table"),
        Binding(
            "c",
            "copy_tag",
            "Copy <lora:…>",
            show=False,
            tooltip="Copy <lora:name:weight> with the recommended weight (LoRA, LyCORIS)",
        ),
        Binding(
            "p",
            "open_page",
            "Civitai page",
            show=False,
            tooltip="Open the identified model's Civitai page in the browser",
        ),
        Binding(
            "o",
            "organize",
            "Organize",
            show=False,
            tooltip="Show the plan that fixes misplaced files, then apply it",
        ),
        Binding(
            "s",
            "convert",
            "To safetensors",
            show=False,
            tooltip="Convert a pickle (.ckpt/.pt) to .safetensors beside it",
        ),
        Binding(
            "t,delete",
            "trash",
            "Move to trash",
            show=False,
            tooltip="Move the file and its sidecars to the trash",
        ),
        Binding(
            "I",
            "identify_all",
            "Identify all",
            show=False,
            tooltip="Identify every file not identified yet",
        ),
        Binding(
            "ctrl+z",
            "undo_organize",
            "Undo organize",
            show=False,
            tooltip="Put back what the last organize moved",
        ),
        LEAVE_FIELD,
    ]

    def __init__(self) -> None:
        super().__init__()
        self._result: ScanResult | None = None
        self._reports: dict[str, FileReport] = {}
        self._width = 0
        self._name_width = 24
        self._status_width = _STATUS_MIN
        self._columns = list(_COLUMNS)
        self._busy = False

    def compose(self) -> ComposeResult:
        yield self.nav()
        with Horizontal(id="library-controls"):
            yield Input(placeholder="filter by name (/)", id="library-filter", compact=True)
            yield Select([], prompt="any kind", id="lib-kind", compact=True)
            yield Select([], prompt="any base", id="lib-base", compact=True)
            yield Select([], prompt="any status", id="lib-status", compact=True)
        with Container(id="library-body"):
            yield DataTable(id="library-table", cursor_type="row", zebra_stripes=True)
            yield ThumbGrid(self.services.options.previews, id="thumb-grid")
            yield LibraryDetail(self.services.options.previews, id="library-detail")
        yield Static("", id="library-status")
        yield Footer()

    def on_mount(self) -> None:
        self._setup(self.app.size.width)
        self.set_class(self.app.size.height < 32, "-compact")
        self.rescan()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.height < 32, "-compact")
        if event.size.width != self._width:
            selected = self._selected_path()
            self._setup(event.size.width)
            self._fill(selected)

    def on_settings_changed(self, message: SettingsChanged) -> None:
        self.rescan()

    @on(LibraryChanged)
    def _changed(self, message: LibraryChanged) -> None:
        self.rescan()

    def _setup(self, width: int) -> None:  # (clears the table: _fill after it)
        """Columns for a table ``width`` cells wide: the file name and the status share
        what the fixed columns leave; the status takes what its longest text needs (up to
        half), so "misplaced, duplicate" is not cut while there is room for it."""
        self._width = width
        self._columns = [c for c in _COLUMNS if width >= c[3]]
        table = self.query_one("#library-table", DataTable)
        fixed = sum(c[2] + 2 for c in self._columns if c[0] != "status")
        spare = width - fixed - 2 - 2 - 2  # file and status cell padding, the scrollbar
        longest = max((len(", ".join(f.status)) for f in self._reports.values()), default=0)
        self._status_width = max(_STATUS_MIN, min(longest, spare // 2))
        self._name_width = max(16, spare - self._status_width)
        table.clear(columns=True)
        table.add_column("file", key="file", width=self._name_width)
        for key, label, w, _min in self._columns:
            table.add_column(label, key=key, width=self._status_width if key == "status" else w)

    def _status(self, text: str) -> None:
        self.query_one("#library-status", Static).update(Content(text))

    # -- scanning -----------------------------------------------------------------------------
    def rescan(self) -> None:
        self._status("scanning…")
        self._scan(self.sdlib.take_downloaded())

    @work(thread=True, exclusive=True, group="library-scan", exit_on_error=False)
    def _scan(self, downloaded: list[str]) -> None:
        """Scan; files that were just downloaded are identified (one request each), so the
        table shows their Civitai names at once."""
        from sdlib.errors import SdlibError
        from sdlib.services.library import identify, scan

        def progress(event: Any) -> None:
            if event.stage != "walk":
                total = f"/{event.total}" if event.total else ""
                self.post_message(LibraryProgress(f"{event.stage} {event.done}{total}"))

        try:
            root, layout = self.services.library_root()
            result = scan(self.services, root, layout=layout, on_progress=progress, workers=1)
            fresh = [f for f in result.models if f.path in set(downloaded)]
            if fresh:
                self.post_message(LibraryProgress(f"identifying {plural(len(fresh), 'file')}"))
                with contextlib.suppress(SdlibError):  # i identifies later; the scan is good
                    identify(self.services, fresh, root=root, layout=layout)
                result = scan(self.services, root, layout=layout, on_progress=progress, workers=1)
        except SdlibError as exc:
            self.post_message(LibraryScanned(None, str(exc)))
            return
        self.post_message(LibraryScanned(result))

    @on(LibraryProgress)
    def _progress(self, message: LibraryProgress) -> None:
        self._status(message.text)

    @on(LibraryScanned)
    def _scanned(self, message: LibraryScanned) -> None:
        if message.result is None:
            self._result = None
            self._reports = {}
            self._fill()
            self._status(message.error or "scan failed")
            return
        result: ScanResult = message.result
        self._result = result
        shown = [f for f in result.files if f.role != "sidecar" or f.status != ["ok"]]
        self._reports = {f.path: f for f in shown}
        self._set_filter_options(shown)
        selected = self._selected_path()
        self._setup(self._width)  # the status column fits the statuses found
        self._fill(selected)
        s = result.summary()
        problems = f", {s['problems']} with problems" if s["problems"] else ""
        self._status(
            f"{plural(s['models'], 'model')} ({human_size(s['bytes'])}){problems} in "
            f"{result.layout.title} at {tilde(result.root)}"
        )

    def _set_filter_options(self, reports: list[FileReport]) -> None:
        kinds = sorted({f.kind for f in reports if f.kind})
        bases = sorted({f.base for f in reports if f.base})
        statuses = sorted({s for f in reports for s in f.status})
        for select_id, values in (("#lib-kind", kinds), ("#lib-base", bases)):
            select = self.query_one(select_id, Select)
            current = select.value
            select.set_options([(v, v) for v in values])
            if current in values:
                select.value = current
        select = self.query_one("#lib-status", Select)
        current = select.value
        select.set_options([("problems", PROBLEMS)] + [(s, s) for s in statuses])
        if current in statuses or current == PROBLEMS:
            select.value = current

    def _fill(self, selected: str | None = None) -> None:
        """(Re)fill the table with the reports that pass the filter; keep the selection."""
        table = self.query_one("#library-table", DataTable)
        selected = selected or self._selected_path()
        table.clear()
        text = self.query_one("#library-filter", Input).value.strip()
        kind = self.query_one("#lib-kind", Select).value
        base = self.query_one("#lib-base", Select).value
        status = self.query_one("#lib-status", Select).value
        for f in self._reports.values():
            if not report_matches(f, text, kind, base, status):
                continue
            cells = {
                "kind": Text(f.kind or f.role),
                "base": Text(f.base or ""),
                "size": Text(human_size(f.size) if f.size is not None else "", justify="right"),
                "status": Text(
                    ellipsize(", ".join(f.status), self._status_width),
                    style="" if f.status == ["ok"] else "bold",
                ),
                "civitai": Text(ellipsize(terminal_safe(civitai_text(f), newlines=False), 24)),
            }
            table.add_row(
                Text(ellipsize(short_name(f), self._name_width)),
                *(cells[c[0]] for c in self._columns),
                key=f.path,
            )
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected))
        self.set_class(table.row_count > 0, "-has-detail")
        if not table.row_count:
            self._show_detail(None)
        if self.has_class("-grid"):
            self.call_later(self._fill_grid)

    # -- the thumbnail grid -------------------------------------------------------------------
    def grid_shown(self) -> bool:
        return self.has_class("-grid")

    async def action_toggle_grid(self) -> None:
        """Table <-> thumbnails; both show the same models, filtered alike, one selected."""
        grid = not self.grid_shown()
        self.set_class(grid, "-grid")
        if grid:
            await self._fill_grid(take_focus=True)
        else:
            table = self.query_one("#library-table", DataTable)
            table.focus()
            self._show_detail(self.selected())
        self.refresh_bindings()

    async def _fill_grid(self, take_focus: bool = False) -> None:
        table = self.query_one("#library-table", DataTable)
        shown = [self._reports[str(key.value)] for key in table.rows]
        await self.query_one(ThumbGrid).set_items(
            extras.thumb_items(shown), self._selected_path(), take_focus=take_focus
        )

    @on(ThumbGrid.Highlighted)
    def _tile_highlighted(self, message: ThumbGrid.Highlighted) -> None:
        table = self.query_one("#library-table", DataTable)
        if self.grid_shown() and message.path in table.rows:  # (not a tile losing its view)
            table.move_cursor(row=table.get_row_index(message.path))

    def home(self) -> Widget | None:
        if self.grid_shown():
            tiles = self.query(Thumb)
            selected = self._selected_path()
            return next((t for t in tiles if t.item.path == selected), tiles.first(Thumb))
        return super().home()

    @on(Input.Changed, "#library-filter")
    @on(Select.Changed, "#lib-kind, #lib-base, #lib-status")
    def _filter_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#library-filter")
    def _filter_submitted(self) -> None:
        self.leave_field()  # enter, like esc: the filter is set, the keys are hotkeys again

    # -- detail -------------------------------------------------------------------------------
    def _selected_path(self) -> str | None:
        table = self.query_one("#library-table", DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        except CellDoesNotExist:
            return None

    def selected(self) -> FileReport | None:
        path = self._selected_path()
        return self._reports.get(path) if path else None

    @on(DataTable.RowHighlighted, "#library-table")
    def _highlighted(self) -> None:
        if not self.grid_shown():  # the grid has no detail pane: nothing to read
            self._show_detail(self.selected())

    def _show_detail(self, f: FileReport | None) -> None:
        self.query_one(LibraryDetail).show(f)
        if f is not None and f.role == "model":
            self._evidence(f)

    @work(thread=True, exclusive=True, group="library-evidence", exit_on_error=False)
    def _evidence(self, f: FileReport) -> None:
        from sdlib.services.library import evidence

        self.post_message(LibraryEvidence(evidence(self.services, f)))

    @on(LibraryEvidence)
    def _evidence_ready(self, message: LibraryEvidence) -> None:
        ev = message.evidence
        if ev.path != self._selected_path():
            return
        row = self._reports[ev.path].row if ev.path in self._reports else None
        self.query_one(LibraryDetail).show_evidence(ev, row.sha256 if row is not None else None)

    # -- actions ------------------------------------------------------------------------------
    def _need(self, *, model: bool = True) -> FileReport | None:
        f = self.selected()
        if f is None or (model and f.role != "model"):
            self.notify("select a model file first", timeout=3)
            return None
        return f

    def run_task(self, label: str, fn: Callable[[], LibraryTaskDone]) -> None:
        """Run ``fn`` in a worker; its LibraryTaskDone (or error) comes back as a message."""
        if self._busy:
            self.notify("another library task is running", timeout=3)
            return
        self._busy = True
        self._status(label + "…")
        self._run_task(label, fn)

    @work(thread=True, exclusive=True, group="library-task", exit_on_error=False)
    def _run_task(self, label: str, fn: Callable[[], LibraryTaskDone]) -> None:
        from sdlib.errors import SdlibError

        try:
            done = fn()
        except SdlibError as exc:
            done = LibraryTaskDone(f"{label} failed", error_text(exc), ok=False)
        except OSError as exc:
            done = LibraryTaskDone(f"{label} failed", f"{exc.strerror or exc}", ok=False)
        self.post_message(done)

    @on(LibraryTaskDone)
    def _task_done(self, message: LibraryTaskDone) -> None:
        from sdlib.tui.screens.dialogs import MessageDialog

        self._busy = False
        self._status(message.title)
        if message.plan is not None:
            actions.show_plan(self, message.plan)
            return
        if message.dialog:
            self.app.push_screen(MessageDialog(message.title, message.text))
        else:
            self.notify(
                message.text,
                title=message.title,
                markup=False,
                severity="information" if message.ok else "error",
                timeout=8,
            )
        if message.changed:
            self.rescan()
        else:
            self._show_detail(self.selected())

    def action_focus_filter(self) -> None:
        self.query_one("#library-filter", Input).focus()

    def action_rescan(self) -> None:
        self.rescan()

    def action_verify(self) -> None:
        f = self._need()
        if f is not None:
            self.run_task("verifying " + f.rel, lambda: actions.verify_task(f, self))

    def action_identify(self) -> None:
        f = self._need()
        if f is not None:
            self.run_task("identifying " + f.rel, lambda: actions.identify_task([f], self))

    def action_identify_all(self) -> None:
        todo = [
            f for f in self._reports.values() if f.role == "model" and f.row.identify_state is None
        ]
        if not todo:
            self.notify("every model was looked up already", timeout=3)
            return
        self.run_task(
            f"identifying {plural(len(todo), 'file')}", lambda: actions.identify_task(todo, self)
        )

    def action_updates(self) -> None:
        models = [f for f in self._reports.values() if f.role == "model"]
        self.run_task("checking for updates", lambda: actions.updates_task(models, self))

    def action_convert(self) -> None:
        from sdlib.tui.screens.dialogs import ConfirmDialog

        f = self._need()
        if f is None:
            return
        if not (f.row.container or "").startswith("pickle"):
            self.notify(
                f"{f.rel} is {f.row.container or 'not a pickle'}: nothing to convert", timeout=4
            )
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.run_task("converting " + f.rel, lambda: actions.convert_task(f))

        self.app.push_screen(
            ConfirmDialog(
                "Convert to safetensors",
                f"Write a .safetensors copy of {f.rel} beside it?\n"
                "The pickle is read without running any of its code; the original is kept.",
                yes="Convert",
            ),
            go,
        )

    def action_organize(self) -> None:
        if self._result is not None:
            actions.start_organize(self, self._result)
        else:
            self.notify("scan first (r)", timeout=3)

    def action_undo_organize(self) -> None:
        actions.start_undo(self)

    def action_copy_tag(self) -> None:
        f = self._need()
        if f is not None:
            self._reach(lambda: extras.copy_tag(f))

    def action_open_page(self) -> None:
        f = self._need()
        if f is not None:
            site = self.services.settings.civitai.base_url
            self._reach(lambda: extras.open_page(f, site))

    @work(thread=True, group="library-reach", exit_on_error=False)
    def _reach(self, fn: Callable[[], extras.Outcome]) -> None:
        self.app.call_from_thread(self._reached, fn())

    def _reached(self, outcome: extras.Outcome) -> None:
        if outcome.clipboard is not None:
            self.app.copy_to_clipboard(outcome.clipboard)
        self.notify(
            outcome.message,
            title=outcome.title,
            severity="information" if outcome.ok else "warning",
            markup=False,
        )

    def action_trash(self) -> None:
        f = self._need(model=False)
        if f is not None:
            actions.start_trash(self, f)
