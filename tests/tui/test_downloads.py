"""Downloads from the TUI: the same installer as the CLI, progress, pause/resume/cancel,
and readable reasons for failures (login, early access, size mismatch)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from sdlib.demo.server import DemoServer
from sdlib.hashing import hash_file
from sdlib.install import FileChoice
from sdlib.tui.downloads import DownloadQueue, JobState
from sdlib.tui.messages import DownloadDone, DownloadPhase, DownloadProgress, DownloadStopped
from sdlib.tui.screens.dialogs import DownloadDialog
from sdlib.tui.screens.downloads import DownloadsScreen
from sdlib.tui.screens.library import LibraryScreen

pytestmark = pytest.mark.anyio


async def queue_from_browse(pilot: Pilot[Any], ui: Any, query: str, skip: int = 0) -> None:
    """Search, open the first result, press d, pick the file ``skip`` rows below the
    preselected (primary) one, and confirm."""
    app = pilot.app
    app.screen.query_one("#query", Input).value = query
    await pilot.press("slash", "enter")
    await ui.settle(pilot)
    await pilot.press("enter")
    await ui.settle(pilot)
    await pilot.press("d")
    await ui.until(pilot, lambda: isinstance(app.screen, DownloadDialog), what="dialog")
    await ui.settle(pilot)
    for _ in range(skip):
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()


def state(job: Any) -> JobState:
    """The job's state now (a call, so type checkers do not narrow it across awaits)."""
    return job.state  # type: ignore[no-any-return]


def only_job(app: Any) -> Any:
    [job] = list(app.downloads)
    return job


def job_ended(app: Any) -> bool:
    return bool(list(app.downloads)) and only_job(app).state in (
        JobState.DONE,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.PAUSED,
    )


async def test_search_open_download_and_find_it_in_the_library(
    make_app: Any, webui: Path, civitai: DemoServer, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "dreamshaper")
        await ui.until(pilot, lambda: job_ended(app), what="the download")
        job = only_job(app)
        assert job.state is JobState.DONE, job.message
        placed = webui / "models" / "Stable-diffusion" / "dreamshaper_8.safetensors"
        assert job.result.path == placed and placed.is_file()
        assert hash_file(placed).sha256 == job.result.sha256
        assert (placed.with_name("dreamshaper_8.civitai.info")).is_file()
        assert any("Downloaded" in n for n in ui.notifications(app))

        await pilot.press("2")
        assert isinstance(app.screen, DownloadsScreen)
        text = ui.text(app)
        assert "dreamshaper_8.safetensors" in text and "✓ done" in text
        assert "placed: ~/webui/models/Stable-diffusion/dreamshaper_8.safetensors" in text

        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, LibraryScreen)
        table = screen.query_one("#library-table", DataTable)
        await ui.until(pilot, lambda: table.row_count == 1, what="the library row")
        await ui.settle(pilot)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[:3] == ["dreamshaper_8.safetensors", "checkpoint", "sd1"]
        assert "DreamShaper 8" in row  # identified on Civitai after the download
        detail = ui.text(app)
        assert "classification: checkpoint · sd1" in detail
        assert "Civitai: DreamShaper / 8 (model 4384, version 128713" in detail


async def test_login_needed_is_the_reason_shown(
    make_app: Any, settings_for: Any, webui: Path, ui: Any
) -> None:
    app = make_app(settings_for(nsfw=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "chilloutmix")
        await ui.until(pilot, lambda: job_ended(app), what="the failure")
        job = only_job(app)
        assert job.state is JobState.FAILED and job.reason == "login needed"
        assert "needs a logged-in Civitai account" in (job.message or "")
        assert any("Download failed: login needed" in n for n in ui.notifications(app))
        await pilot.press("2")
        text = ui.text(app)
        assert "✗ login needed" in text and "set a token in Settings" in text
        assert not list((webui / "models").rglob("*.part")) if (webui / "models").exists() else True


async def test_early_access_reason_names_the_date(make_app: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "realistic vision")
        await ui.until(pilot, lambda: job_ended(app), what="the failure")
        job = only_job(app)
        assert job.state is JobState.FAILED
        assert job.reason == "early access until 2030-01-01"
        assert "Early Access until 2030-01-01" in (job.message or "")


async def test_size_mismatch_is_refused_with_its_reason(
    make_app: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    civitai.add_fault("wrong-length", delta=-1024)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "easynegative")
        await ui.until(pilot, lambda: job_ended(app), what="the failure")
        job = only_job(app)
        assert job.state is JobState.FAILED and job.reason == "hash mismatch"
        assert not (webui / "embeddings" / "easynegative.safetensors").exists()


async def test_pause_keeps_the_part_file_resume_finishes_cancel_deletes(
    make_app: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    civitai.rate_limit = 2 << 20  # ~5 s for the 9.6 MiB full checkpoint
    folder = webui / "models" / "Stable-diffusion"
    part = folder / "dreamshaper_8_full.safetensors.part"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "dreamshaper", skip=2)  # the full fp32 file
        job = only_job(app)
        assert job.file_name == "dreamshaper_8_full.safetensors"
        await pilot.press("2")
        # Reads start small and grow (a stalled server is noticed early), so progress comes
        # in pieces smaller than 1 MiB at first: wait for the bytes, not for two events.
        await ui.until(pilot, lambda: job.speed > 0 and job.done >= 1 << 20, what="1 MiB")
        assert job.eta is not None
        await ui.until(pilot, lambda: "iB/s" in ui.text(app), what="the speed on screen")

        await pilot.press("p")  # pause
        await ui.until(pilot, lambda: job.state is JobState.PAUSED, what="paused")
        kept = part.stat().st_size
        assert kept >= 1 << 20 and job.part == str(part)

        civitai.rate_limit = None
        civitai.clear_requests()
        await pilot.press("p")  # resume: the same install again, from the part file
        await ui.until(pilot, lambda: job.state is JobState.DONE, what="done", timeout=30)
        ranges = [r.header("Range") for r in civitai.requests if r.server == "storage"]
        assert f"bytes={kept}-" in ranges
        assert (folder / "dreamshaper_8_full.safetensors").is_file() and not part.exists()

        # cancel: a second file, stopped mid-way, leaves nothing behind. Slow enough (~16 s
        # for the 4.1 MiB .ckpt) that it cannot finish on a loaded machine before x lands.
        civitai.rate_limit = 256 << 10
        await pilot.press("1")
        await pilot.press("d")
        await ui.until(pilot, lambda: isinstance(app.screen, DownloadDialog), what="dialog")
        await pilot.press("down", "enter")  # the .ckpt
        await pilot.press("2")
        second = next(j for j in app.downloads if j is not job)
        await ui.until(pilot, lambda: second.done > 0, what="bytes of the second")
        table = app.screen.query_one("#jobs", DataTable)
        table.move_cursor(row=1)
        await pilot.press("x")
        await ui.until(pilot, lambda: second.state is JobState.CANCELLED, what="cancelled")
        await ui.settle(pilot)
        assert not (folder / "dreamshaper_8.ckpt.part").exists()
        assert not (folder / "dreamshaper_8.ckpt").exists()


# --- the queue model without an app ------------------------------------------------------------


def test_queue_runs_at_most_parallel_jobs_and_starts_the_next() -> None:
    started: list[int] = []
    queue = DownloadQueue(start=lambda j: started.append(j.id), discard=lambda p: None, parallel=2)
    jobs = [
        queue.add(f"1@{i}", FileChoice(file_id=i), title="t", file_name=f"f{i}", size=10)
        for i in range(3)
    ]
    assert started == [1, 2] and jobs[2].state is JobState.QUEUED
    queue.apply(DownloadPhase(1, "downloading", total=10))
    queue.apply(DownloadProgress(1, 5, 10, time.monotonic()))
    assert jobs[0].done == 5 and state(jobs[0]) is JobState.DOWNLOADING
    queue.apply(DownloadDone(1, result=_result()))
    assert started == [1, 2, 3] and state(jobs[0]) is JobState.DONE


def test_pause_then_cancel_discards_the_part_file() -> None:
    discarded: list[str] = []
    queue = DownloadQueue(start=lambda j: None, discard=discarded.append)
    job = queue.add("1@1", FileChoice(file_id=1), title="t", file_name="f", size=10)
    assert queue.pause(job.id) and state(job) is JobState.PAUSING
    assert job.cancel.is_set()
    queue.apply(DownloadStopped(job.id, "/x/f.part"))
    assert state(job) is JobState.PAUSED and job.part == "/x/f.part"
    assert queue.resume(job.id) and state(job) is JobState.RESOLVING
    assert not job.cancel.is_set()  # a fresh event for the new run
    queue.pause(job.id)
    queue.apply(DownloadStopped(job.id, "/x/f.part"))
    assert queue.cancel(job.id) and job.state is JobState.CANCELLED
    assert discarded == ["/x/f.part"]
    assert queue.remove(job.id) and len(queue) == 0


def test_progress_messages_coalesce_per_job() -> None:
    a1, a2 = DownloadProgress(1, 1, 10, 0.0), DownloadProgress(1, 2, 10, 0.1)
    b = DownloadProgress(2, 1, 10, 0.1)
    assert a2.can_replace(a1) and not b.can_replace(a1)
    assert not DownloadPhase(1, "verifying").can_replace(a1)


def test_speed_is_smoothed_and_eta_follows() -> None:
    queue = DownloadQueue(start=lambda j: None, discard=lambda p: None)
    job = queue.add("1@1", FileChoice(file_id=1), title="t", file_name="f", size=1000)
    queue.apply(DownloadPhase(job.id, "downloading", total=1000))
    queue.apply(DownloadProgress(job.id, 0, 1000, 10.0))
    queue.apply(DownloadProgress(job.id, 100, 1000, 11.0))
    assert job.speed == pytest.approx(100.0)
    assert job.eta == pytest.approx(9.0)


def _result() -> Any:
    from sdlib.install import InstallResult

    return InstallResult(
        ref="1@1",
        model_id=1,
        version_id=1,
        file_id=1,
        path=Path("/x/f"),
        size=10,
        sha256="0" * 64,
        kind="lora",
        base="sd1",
        verified=True,
        status="downloaded",
        picked="f",
    )


def test_cancel_hook_stops_the_downloader_and_keeps_the_part_file(
    civitai: DemoServer, settings: Any, tmp_path: Path
) -> None:
    """The one sdlib.download change: DownloadOptions.cancel, checked on every write."""
    from dataclasses import replace

    from sdlib.download import DownloadOptions, DownloadSpec, Progress, download, part_path
    from sdlib.errors import Interrupted
    from sdlib.http import build_client
    from sdlib.sources.civitai import CivitaiClient

    civitai.rate_limit = 2 << 20
    stop = threading.Event()
    with build_client(settings) as http:
        target = CivitaiClient(http, base_url=civitai.url).resolve_download(128713, size="full")
        spec = DownloadSpec(
            url=target.url, dest=tmp_path / target.file_name, size=target.size, hashes=target.hashes
        )
        options = replace(DownloadOptions(), cancel=stop)

        def on_event(event: Any) -> None:
            if isinstance(event, Progress) and event.done > 200_000:
                stop.set()

        with pytest.raises(Interrupted) as caught:
            download(http, spec, options, on_event)
    part = part_path(spec.dest)
    assert caught.value.path == str(part)
    assert part.stat().st_size > 200_000 and not spec.dest.exists()


# --- unfinished downloads of earlier sessions ---------------------------------------------------


def _interrupt_earlier_session(settings: Any, civitai: DemoServer) -> Path:
    """An earlier process's download of DreamShaper 7, stopped after its first bytes (as a
    pause, a quit or a Ctrl-C stops it); returns its part file."""
    from sdlib import download as d
    from sdlib.errors import Interrupted
    from sdlib.services import Context
    from sdlib.services.remote import install

    cancel = threading.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, d.Progress):
            cancel.set()

    civitai.rate_limit = 2 << 20
    with Context(settings) as ctx, pytest.raises(Interrupted):
        install(ctx, "4384@109123", on_event=on_event, cancel=cancel)
    civitai.rate_limit = None
    [part] = list(Path(settings.library.root).expanduser().rglob("*.part"))
    [served] = [f for f in civitai.files.values() if f.spec.name == part.name[: -len(".part")]]
    assert 0 < part.stat().st_size < served.size
    return part


def _served_sha256(civitai: DemoServer, name: str) -> str:
    import hashlib

    [served] = [f for f in civitai.files.values() if f.spec.name == name]
    with served.open() as fh:
        return hashlib.sha256(fh.read(served.size)).hexdigest().upper()


async def test_an_earlier_sessions_unfinished_download_is_shown_and_resumed(
    make_app: Any, settings: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    part = _interrupt_earlier_session(settings, civitai)
    kept = part.stat().st_size
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("2")
        assert isinstance(app.screen, DownloadsScreen)
        await ui.until(pilot, lambda: len(app.downloads) == 1, what="the unfinished download")
        await ui.settle(pilot)
        job = only_job(app)
        assert job.state is JobState.PAUSED and job.done == kept
        text = ui.text(app)
        assert "dreamshaper_7.safetensors" in text and "unfinished" in text
        assert "unfinished from an earlier session (interrupted" in text
        assert "p resumes from the partial file" in text

        await pilot.press("p")
        await ui.until(pilot, lambda: state(job) in (JobState.DONE, JobState.FAILED),
                       what="the resumed download")  # fmt: skip
        assert job.state is JobState.DONE, job.message
    placed = webui / "models" / "Stable-diffusion" / "dreamshaper_7.safetensors"
    assert job.result.path == placed and not part.exists()
    assert hash_file(placed).sha256 == _served_sha256(civitai, placed.name)


async def test_cancel_forgets_an_earlier_sessions_download(
    make_app: Any, settings: Any, civitai: DemoServer, ui: Any
) -> None:
    from sdlib.services import Context
    from sdlib.services.downloads import unfinished_downloads

    part = _interrupt_earlier_session(settings, civitai)
    neighbours = sorted(p.name for p in part.parent.iterdir() if p != part)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("2")
        await ui.until(pilot, lambda: len(app.downloads) == 1, what="the unfinished download")
        await pilot.press("x")
        assert only_job(app).state is JobState.CANCELLED

        def forgotten() -> bool:
            with Context(settings) as ctx:
                return not part.exists() and unfinished_downloads(ctx) == []

        await ui.until(pilot, forgotten, what="the part file and its record deleted")
    assert sorted(p.name for p in part.parent.iterdir()) == neighbours


async def test_the_quit_dialog_says_how_to_resume(make_app: Any, civitai: Any, ui: Any) -> None:
    import asyncio

    from sdlib.tui.screens.dialogs import ConfirmDialog

    civitai.rate_limit = 256 << 10
    app: Any = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        model, version = await asyncio.to_thread(app.services.civitai.lookup, "4384@128713")
        app.queue_download(model, version, version.files[2].id)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmDialog)
        text = ui.text(app)  # the dialog's lines sit among the screen's
        assert "partial files are kept and can be" in text and "resumed: here next" in text
        assert "with sdlib downloads --resume" in text
        assert "download the same files again" not in text
        await pilot.press("n")


def test_the_install_notes_are_in_the_full_detail_and_cleared_on_retry() -> None:
    """run_job posts the installer's notes (a CivArchive mirror, a sidecar it could not
    write) as a 'note' phase; enter shows them, a retry starts with none."""
    from sdlib.install import FileChoice
    from sdlib.tui.downloads import DownloadQueue, JobState
    from sdlib.tui.messages import DownloadFailed, DownloadPhase
    from sdlib.tui.screens.downloads import detail_text

    queue = DownloadQueue(start=lambda j: None, discard=lambda p: None)
    job = queue.add("1@2", FileChoice(file_id=3), title="t", file_name="f", size=10)
    queue.apply(DownloadPhase(job.id, "note", detail="f: from a CivArchive mirror (m.example)"))
    queue.apply(DownloadFailed(job.id, "network", "the server closed the connection early"))
    assert job.state is JobState.FAILED
    assert "note: f: from a CivArchive mirror (m.example)" in detail_text(job, full=True)
    assert queue.resume(job.id) and job.notes == []
