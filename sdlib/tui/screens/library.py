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
from textual.containers import Container, Horizontal, VerticalScroll
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Select, Static
from textual.widgets.data_table import CellDoesNotExist

from sdlib.formatting import ellipsize, human_size, terminal_safe, tilde
from sdlib.tui.messages import (
    LibraryChanged,
    LibraryEvidence,
    LibraryProgress,
    LibraryScanned,
    LibraryTaskDone,
    SettingsChanged,
)
from sdlib.tui.screens import library_actions as actions
from sdlib.tui.screens._base import SdlibScreen, error_text
from sdlib.tui.widgets.preview import LocalPreview

if TYPE_CHECKING:
    from textual.events import Resize

    from sdlib.library.scan import FileReport, ScanResult

#: (key, label, width, shown from this screen width); the file column takes the rest.
_COLUMNS = (
    ("kind", "kind", 12, 0),
    ("base", "base", 7, 0),
    ("size", "size", 9, 100),
    ("status", "status", 16, 0),
    ("civitai", "civitai", 24, 100),
)
_PROBLEMS = "problems"


def report_matches(f: FileReport, text: str, kind: Any, base: Any, status: Any) -> bool:
    """Does ``f`` pass the filter row (text in name/Civitai name; kind; base; status)?"""
    if kind is not Select.NULL and f.kind != kind:
        return False
    if base is not Select.NULL and f.base != base:
        return False
    if status is not Select.NULL:
        if status == _PROBLEMS:
            if f.status == ["ok"]:
                return False
        elif status not in f.status:
            return False
    if text:
        hay = f"{f.rel} {f.row.civitai_model_name or ''}".lower()
        return all(word in hay for word in text.lower().split())
    return True


def short_name(f: FileReport) -> str:
    """The path inside its model folder (the folder is what ``kind`` says)."""
    prefix = f.folder.rstrip("/") + "/"
    rel = f.rel[len(prefix) :] if f.folder and f.rel.startswith(prefix) else f.rel
    return terminal_safe(rel, newlines=False)  # a file name: never raw to the terminal


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def civitai_text(f: FileReport) -> str:
    r = f.row
    if r.civitai_model_name:
        return f"{r.civitai_model_name} {r.civitai_version_name or ''}".strip()
    return {"unidentified": "not on Civitai"}.get(r.identify_state or "", "—")


class LibraryScreen(SdlibScreen):
    MODE = "library"
    AUTO_FOCUS = "#library-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", tooltip="Filter by name; kind/base/status"),
        Binding("r", "rescan", "Rescan", tooltip="Scan the webUI folders again"),
        Binding("v", "verify", "Verify", tooltip="Hash the file and compare with Civitai"),
        Binding("i", "identify", "Identify", tooltip="Find the file on Civitai by its hash"),
        Binding("u", "updates", "Updates", tooltip="Newer versions of identified models"),
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
    ]

    def __init__(self) -> None:
        super().__init__()
        self._result: ScanResult | None = None
        self._reports: dict[str, FileReport] = {}
        self._width = 0
        self._name_width = 24
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
            with Horizontal(id="library-detail"):
                with VerticalScroll(id="library-info"):
                    yield Static("", id="lib-summary")
                    yield Static("", id="lib-status-text")
                    yield Static("", id="lib-civitai")
                    yield Static("", id="lib-hashes")
                    yield Static("", id="lib-evidence")
                    yield Static("", id="lib-sidecars")
                yield LocalPreview(self.services.options.previews, id="library-preview")
        yield Static("", id="library-status")
        yield Footer()

    def on_mount(self) -> None:
        self._setup(self.app.size.width)
        self.set_class(self.app.size.height < 32, "-compact")
        self.rescan()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.height < 32, "-compact")
        if event.size.width != self._width:
            self._setup(event.size.width)
            self._fill()

    def on_settings_changed(self, message: SettingsChanged) -> None:
        self.rescan()

    @on(LibraryChanged)
    def _changed(self, message: LibraryChanged) -> None:
        self.rescan()

    def _setup(self, width: int) -> None:
        self._width = width
        self._columns = [c for c in _COLUMNS if width >= c[3]]
        table = self.query_one("#library-table", DataTable)
        fixed = sum(c[2] + 2 for c in self._columns) + 4
        self._name_width = max(16, width - fixed)
        table.clear(columns=True)
        table.add_column("file", key="file", width=self._name_width)
        for key, label, w, _min in self._columns:
            table.add_column(label, key=key, width=w)

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
        self._fill()
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
        select.set_options([("problems", _PROBLEMS)] + [(s, s) for s in statuses])
        if current in statuses or current == _PROBLEMS:
            select.value = current

    def _fill(self) -> None:
        table = self.query_one("#library-table", DataTable)
        selected = self._selected_path()
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
                    ellipsize(", ".join(f.status), 16), style="" if f.status == ["ok"] else "bold"
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

    @on(Input.Changed, "#library-filter")
    @on(Select.Changed, "#lib-kind, #lib-base, #lib-status")
    def _filter_changed(self) -> None:
        self._fill()

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
        self._show_detail(self.selected())

    def _show_detail(self, f: FileReport | None) -> None:
        ids = (
            "#lib-summary",
            "#lib-status-text",
            "#lib-civitai",
            "#lib-hashes",
            "#lib-evidence",
            "#lib-sidecars",
        )
        if f is None:
            for widget_id in ids:
                self.query_one(widget_id, Static).update("")
            self.query_one(LocalPreview).show_path(None)
            return
        self.query_one("#lib-summary", Static).update(
            Content.from_markup(
                "[b]$rel[/b]\n$what",
                rel=terminal_safe(f.rel, newlines=False),
                what=f"{f.role} · {human_size(f.size)}",
            )
        )
        status = ", ".join(f.status)
        lines = [f"status: {status}"] + [f"  {n}" for n in f.notes]
        if f.target:
            lines.append(f"  belongs in: {tilde(f.target)}")
        lines += [f"  same file: {tilde(d)}" for d in f.duplicates]
        self.query_one("#lib-status-text", Static).update(Content(terminal_safe("\n".join(lines))))
        r = f.row
        if r.civitai_version_id is not None:
            civ = (
                f"Civitai: {r.civitai_model_name} / {r.civitai_version_name} "
                f"(model {r.civitai_model_id}, version {r.civitai_version_id}, file "
                f"{r.civitai_file_id}) · {r.civitai_base_model or '?'} · by {r.matched_by}"
            )
        elif r.identify_state == "unidentified":
            civ = "Civitai: not found by hash (a private, deleted or local model)"
        else:
            civ = "Civitai: not identified yet (i: identify)"
        self.query_one("#lib-civitai", Static).update(Content(terminal_safe(civ)))
        self.query_one("#lib-hashes", Static).update(
            Content(f"SHA256 {r.sha256}" if r.sha256 else "hashes: loading…")
        )
        self.query_one("#lib-evidence", Static).update(Content("classification: loading…"))
        sidecars = ", ".join(s.rsplit("/", 1)[-1] for s in f.sidecars) or "none"
        sidecars = terminal_safe(sidecars, newlines=False)
        self.query_one("#lib-sidecars", Static).update(Content(f"sidecars: {sidecars}"))
        self.query_one(LocalPreview).show_path(None)
        if f.role == "model":
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
        lines = [f"classification: {ev.summary}"] + [f"  · {line}" for line in ev.lines]
        self.query_one("#lib-evidence", Static).update(Content(terminal_safe("\n".join(lines))))
        if ev.hashes is not None:
            h = ev.hashes
            text = (
                f"SHA256 {h.sha256}\nAutoV1 {h.autov1 or '-'} · AutoV2 {h.autov2} · "
                f"AutoV3 {h.autov3 or '-'} · CRC32 {h.crc32}\nBLAKE3 {h.blake3}"
            )
        else:
            row = self._reports[ev.path].row if ev.path in self._reports else None
            sha = row.sha256 if row is not None else None
            text = (f"SHA256 {sha}" if sha else "hashes: not computed yet") + " (v: verify)"
        self.query_one("#lib-hashes", Static).update(Content(text))
        self.query_one(LocalPreview).show_path(ev.preview)

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
        self.run_task(f"identifying {len(todo)} files", lambda: actions.identify_task(todo, self))

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

    def action_trash(self) -> None:
        f = self._need(model=False)
        if f is not None:
            actions.start_trash(self, f)
