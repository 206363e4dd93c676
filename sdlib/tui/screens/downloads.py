"""Downloads: the queue with per-file progress, speed, ETA, and why a file failed.

The queue itself (``app.downloads``) outlives this screen; the app calls ``show_job`` when
a job changes while the screen is visible, and ``on_screen_resume`` redraws everything.
When the screen first mounts it asks the service layer for the downloads earlier sessions
(or the CLI) left unfinished and adds them as paused jobs: p resumes one, x forgets it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import CellDoesNotExist

from sdlib.formatting import bar, duration, ellipsize, human_size, rate, terminal_safe, tilde
from sdlib.tui.downloads import FINISHED, DownloadJob, JobState
from sdlib.tui.screens._base import SdlibScreen

if TYPE_CHECKING:
    from textual.events import Resize

    from sdlib.download import UnfinishedDownload

#: (key, label, width, shown from this screen width); the file column takes the rest.
_COLUMNS = (
    ("state", "status", 16, 0),
    ("bar", "progress", 14, 0),
    ("size", "size", 19, 110),
    ("speed", "speed", 10, 0),
    ("eta", "eta", 6, 0),
)
_BAR = 9
_STATE_STYLE = {
    JobState.DONE: "bold",
    JobState.FAILED: "bold reverse",
    JobState.CANCELLED: "dim",
    JobState.PAUSED: "italic",
    JobState.QUEUED: "dim",
}


def status_text(job: DownloadJob) -> str:
    if job.state is JobState.FAILED and job.reason:
        return f"✗ {job.reason}"
    if job.state is JobState.DONE:
        return "✓ done"
    if job.state is JobState.PAUSED and job.entry_id is not None:
        return "unfinished"
    return str(job.state.value)


class DownloadsScreen(SdlibScreen):
    MODE = "downloads"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "p",
            "pause",
            "Pause/resume",
            tooltip="Pause a download (keeps the part file) or resume it",
        ),
        Binding("x", "cancel", "Cancel", tooltip="Stop, delete the partial file, forget it"),
        Binding("r", "retry", "Retry", tooltip="Run a failed or cancelled download again"),
        Binding(
            "k",
            "keep_anyway",
            "Keep anyway",
            show=False,
            tooltip="Download a file discarded for a hash mismatch again and keep it, unverified",
        ),
        Binding("delete", "remove", "Remove", show=False, tooltip="Remove a finished row"),
        Binding("C", "clear", "Clear finished", show=False, tooltip="Remove all finished rows"),
        Binding("enter", "details", "Details", show=False, tooltip="The whole message"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._name_width = 24
        self._width = 0
        self._columns = list(_COLUMNS)

    def compose(self) -> ComposeResult:
        yield self.nav()
        with Vertical(id="downloads-body"):
            yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
            yield Static("", id="job-detail")
        yield Footer()

    def on_mount(self) -> None:
        self._setup(self.app.size.width)
        self.sync()
        self._load_unfinished()

    @work(thread=True, exclusive=True, group="downloads-unfinished", exit_on_error=False)
    def _load_unfinished(self) -> None:
        """The downloads earlier sessions left unfinished (read from the cache dir)."""
        from sdlib.errors import SdlibError
        from sdlib.services.downloads import unfinished_downloads

        try:
            entries = unfinished_downloads(self.services)
        except (SdlibError, OSError) as exc:
            self.app.call_from_thread(self.report_error, exc, "Unfinished downloads")
            return
        if entries:
            self.app.call_from_thread(self._restore, entries)

    def _restore(self, entries: list[UnfinishedDownload]) -> None:
        if self.sdlib.downloads.restore(entries):
            self.sync()

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._width:
            self._setup(event.size.width)
            self.sync()

    def _setup(self, width: int) -> None:
        self._width = width
        self._columns = [c for c in _COLUMNS if width >= c[3]]
        table = self.query_one("#jobs", DataTable)
        fixed = sum(c[2] + 2 for c in self._columns) + 4
        self._name_width = max(14, width - fixed)
        table.clear(columns=True)
        table.add_column("file", key="file", width=self._name_width)
        for key, label, width_, _min in self._columns:
            table.add_column(label, key=key, width=width_)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.sync()

    # -- drawing ------------------------------------------------------------------------------
    def sync(self) -> None:
        """Redraw every row from the queue (rows of forgotten jobs go away)."""
        table = self.query_one("#jobs", DataTable)
        keep = {str(job.id) for job in self.sdlib.downloads}
        for key in [k for k in table.rows if k.value not in keep]:
            table.remove_row(key)
        for job in self.sdlib.downloads:
            self.show_job(job)
        if not len(self.sdlib.downloads):
            self.query_one("#job-detail", Static).update(
                Content("No downloads yet. In Browse, open a model and press d to pick a file.")
            )
        else:
            self._show_detail()

    def _cells(self, job: DownloadJob) -> list[Text]:
        style = _STATE_STYLE.get(job.state, "")
        if job.total and job.state not in (JobState.CANCELLED,):
            size = f"{human_size(job.done)} / {human_size(job.total)}"
        else:
            size = human_size(job.total or job.size)
        show_bar = job.done > 0 or job.state in (JobState.DOWNLOADING, JobState.VERIFYING)
        cells = {
            "file": Text(ellipsize(terminal_safe(job.file_name, newlines=False), self._name_width)),
            "state": Text(ellipsize(status_text(job), 16), style=style),
            "bar": Text(bar(job.done, job.total or job.size, _BAR) if show_bar else ""),
            "size": Text(size, justify="right"),
            "speed": Text(
                rate(job.speed) if job.state is JobState.DOWNLOADING else "", justify="right"
            ),
            "eta": Text(duration(job.eta), justify="right"),
        }
        return [cells["file"]] + [cells[c[0]] for c in self._columns]

    def download_changed(self, job: DownloadJob) -> None:
        self.show_job(job)

    def show_job(self, job: DownloadJob) -> None:
        """Update (or add) the row of one job."""
        table = self.query_one("#jobs", DataTable)
        key = str(job.id)
        cells = self._cells(job)
        if key not in table.rows:
            table.add_row(*cells, key=key)
        else:
            for column, cell in zip(["file"] + [c[0] for c in self._columns], cells, strict=True):
                table.update_cell(key, column, cell)
        if self._highlighted() is job:
            self._show_detail()
        self.update_activity()

    def _highlighted(self) -> DownloadJob | None:
        table = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        except CellDoesNotExist:
            return None
        return self.sdlib.downloads.get(int(key)) if key else None

    def _show_detail(self) -> None:
        job = self._highlighted()
        widget = self.query_one("#job-detail", Static)
        if job is None:
            widget.update("")
            return
        widget.update(Content(detail_text(job)))

    @on(DataTable.RowHighlighted, "#jobs")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    # -- actions ------------------------------------------------------------------------------
    def _act(self, verb: str) -> None:
        job = self._highlighted()
        if job is None:
            self.notify("no download selected", timeout=3)
            return
        queue = self.sdlib.downloads
        done: Any
        if verb == "pause":
            done = queue.resume(job.id) if job.state is JobState.PAUSED else queue.pause(job.id)
        elif verb == "cancel":
            done = queue.cancel(job.id)
        elif verb == "retry":
            done = queue.resume(job.id)
        else:
            done = queue.remove(job.id)
            if done:
                self.sync()
                return
        if not done:
            self.notify(f"cannot {verb} a download that is {job.state.value}", timeout=4)
        self.show_job(job)

    def action_pause(self) -> None:
        self._act("pause")

    def action_cancel(self) -> None:
        self._act("cancel")

    def action_retry(self) -> None:
        self._act("retry")

    def action_keep_anyway(self) -> None:
        from sdlib.tui.screens.dialogs import ConfirmDialog

        job = self._highlighted()
        if job is None or job.state is not JobState.FAILED or job.reason != "hash mismatch":
            self.notify("only a download discarded for a hash mismatch can be kept", timeout=4)
            return
        body = (
            f"{job.file_name} did not match what the source publishes:\n{job.message or ''}\n\n"
            "Download it again and keep the bytes the source serves? The file is marked "
            "unverified (as sdlib download --accept-mismatch does)."
        )

        def answered(yes: bool | None) -> None:
            if yes and self.sdlib.downloads.keep_anyway(job.id):
                self.show_job(job)

        self.app.push_screen(
            ConfirmDialog("Keep a file that does not match?", body, yes="Keep", danger=True),
            answered,
        )

    def action_remove(self) -> None:
        self._act("remove")

    def action_clear(self) -> None:
        n = self.sdlib.downloads.clear_finished()
        self.sync()
        self.notify(f"cleared {n} finished download{'s' if n != 1 else ''}", timeout=3)

    def action_details(self) -> None:
        from sdlib.tui.screens.dialogs import MessageDialog

        job = self._highlighted()
        if job is not None:
            self.app.push_screen(MessageDialog(job.file_name, detail_text(job, full=True)))


def detail_text(job: DownloadJob, *, full: bool = False) -> str:
    """The lines under the table for the highlighted job."""
    lines = [f"{job.title} · {job.file_name} · {job.ref}"]
    if job.state is JobState.FAILED:
        lines.append(f"failed: {job.message or job.reason}")
        lines.append(
            "r: try again"
            + (" (set a token in Settings first)" if job.reason == "login needed" else "")
            + ("; k: download again and keep what the source serves, unverified"
               f" ({_keep_anyway(job)})" if job.reason == "hash mismatch" else "")
        )  # fmt: skip
    elif job.state is JobState.DONE and job.result is not None:
        r = job.result
        lines.append(f"placed: {tilde(r.path)}  ({r.kind}, {r.base})")
        lines.append(f"SHA256 {r.sha256} verified" if r.verified else "not verified")
        lines += [f"warning: {w}" for w in r.warnings]
    elif job.state is JobState.PAUSED:
        if job.earlier:
            lines.append(job.earlier)
        lines.append("paused: p resumes from the partial file, x deletes it")
    elif job.note:
        lines.append(job.note)
    if not full:
        return terminal_safe("\n".join(lines[:3]))  # names and messages from the server
    if job.state in FINISHED and job.result is not None:
        lines += [f"sidecar: {tilde(s)}" for s in job.result.sidecars]
    lines += [f"note: {n}" for n in job.notes]
    return terminal_safe("\n".join(lines))


def _keep_anyway(job: DownloadJob) -> str:
    """The CLI command that downloads ``job``'s file and keeps it although its bytes differ
    from what the source publishes (what ``k`` does here)."""
    import os
    import shlex
    import subprocess

    ref = subprocess.list2cmdline([job.ref]) if os.name == "nt" else shlex.quote(job.ref)
    file_id = f" --file-id {job.choice.file_id}" if job.choice.file_id is not None else ""
    return f"sdlib download {ref}{file_id} --accept-mismatch"
