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

from sdlib.formatting import ellipsize, human_size, plural, terminal_safe, tilde
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
from sdlib.tui.screens._base import LEAVE_FIELD, error_text
from sdlib.tui.screens.library_grid import ThumbView
from sdlib.tui.screens.library_store import StoreViews
from sdlib.tui.widgets.library_detail import LibraryDetail
from sdlib.tui.widgets.thumbs import ThumbGrid

if TYPE_CHECKING:
    from textual.events import Resize

    from sdlib.library.scan import FileReport, ScanResult

#: (key, label, width, shown from this screen width); the file column takes the rest.
_COLUMNS = (
    ("kind", "kind", 12, 0),
    ("base", "base", 7, 0),
    ("size", "size", 9, 100),
    ("status", "status", 16, 0),  # a minimum: see LibraryScreen._setup
    ("seen", "seen by", 24, 110),  # a maximum, and only once another webUI sees a file
    ("civitai", "civitai", 24, 100),
)
_STATUS_MIN = 16


class LibraryScreen(StoreViews, ThumbView, extras.Reach):
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
            "d",
            "dedupe",
            "Dedupe",
            tooltip="Link identical copies across the known webUI folders (asks first)",
        ),
        Binding(
            "D",
            "undo_dedupe",
            "Undo dedupe",
            show=False,
            tooltip="Give every name the last dedupe linked its own bytes back",
        ),
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
        self._widths: dict[str, int] = {}
        self._busy = False
        self._store_init()

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
        seen = self.seen_width(24) if width >= 110 else 0
        self._columns = [c for c in _COLUMNS if width >= c[3] and (c[0] != "seen" or seen)]
        self._widths = {c[0]: c[2] for c in self._columns}
        if seen:  # the Civitai name gives way to who sees the file
            self._widths.update(seen=seen, civitai=16)
        table = self.query_one("#library-table", DataTable)
        fixed = sum(self._widths[c[0]] + 2 for c in self._columns if c[0] != "status")
        spare = width - fixed - 2 - 2 - 2  # file and status cell padding, the scrollbar
        longest = max((len(", ".join(f.status)) for f in self._reports.values()), default=0)
        self._status_width = max(_STATUS_MIN, min(longest, spare // 2))
        self._name_width = max(16, spare - self._status_width)
        table.clear(columns=True)
        table.add_column("file", key="file", width=self._name_width)
        self._widths["status"] = self._status_width
        for key, label, _w, _min in self._columns:
            table.add_column(label, key=key, width=self._widths[key])

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
            self._seen = {}
            self._fill()
            self._status(message.error or "scan failed")
            return
        result: ScanResult = message.result
        self._result = result
        # A sidecar or a folder link (a shared store's, say) is a row only when something
        # is wrong with it: what a link leads to is listed file by file.
        shown = [f for f in result.files if f.role == "model" or f.status != ["ok"]]
        self._reports = {f.path: f for f in shown}
        self._set_filter_options(shown)
        selected = self._selected_path()
        self._setup(self._width)  # the status column fits the statuses found
        self._fill(selected)
        self.find_seen(result)  # fills its column when it arrives: the table is drawn now
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
                "civitai": Text(ellipsize(terminal_safe(civitai_text(f), newlines=False),
                                          self._widths.get("civitai", 24))),
                "seen": Text(ellipsize(self.seen_text(f.path), self._widths.get("seen", 24))),
            }  # fmt: skip
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
        self.query_one(LibraryDetail).show(f, self.seen_detail(f.path) if f else "")
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
            actions.show_plan(self, message.plan, message.interrupted)
            return
        if message.dedupe is not None:
            self.show_dedupe(message.dedupe)
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
        f = self._need()
        if f is not None:
            actions.start_convert(self, f)

    def action_organize(self) -> None:
        if self._result is not None:
            actions.start_organize(self, self._result)
        else:
            self.notify("scan first (r)", timeout=3)

    def action_undo_organize(self) -> None:
        actions.start_undo(self)

    def action_trash(self) -> None:
        f = self._need(model=False)
        if f is not None:
            actions.start_trash(self, f)
