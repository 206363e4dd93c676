"""Unfinished downloads are recorded in the cache dir, listed with the bytes their part file
keeps and why they stopped, and forgotten only with their own part file; progress pacing."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from sdlib._filelock import try_lock, unlock
from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.download import (
    PROGRESS_EVERY_BYTES,
    DownloadEvent,
    DownloadOptions,
    DownloadSpec,
    Progress,
    download,
    find_unfinished,
    forget_unfinished,
    list_unfinished,
    progress_due,
)
from sdlib.download._unfinished import entry_from_state, stop_reason
from sdlib.errors import DownloadError, HashMismatch, Interrupted, NotFound, SdlibError
from sdlib.http import build_client
from sdlib.sources.civitai import CivitaiClient, raise_for_status

VERSION = 109123  # DreamShaper 7: one 4 MiB safetensors file


@pytest.fixture
def http(civitai_settings: Settings) -> Iterator[httpx2.Client]:
    with build_client(civitai_settings) as client:
        yield client


@pytest.fixture
def civ(http: httpx2.Client, civitai: DemoServer) -> CivitaiClient:
    return CivitaiClient(http, base_url=civitai.url)


def _options(settings: Settings, **kw: object) -> DownloadOptions:
    base = DownloadOptions.from_settings(
        settings, sleep=lambda _s: None, stall_timeout=2.0, raise_for_status=raise_for_status,
        retries=0,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def _spec(civ: CivitaiClient, dest_dir: Path) -> DownloadSpec:
    target = civ.resolve_download(VERSION)
    return DownloadSpec(
        url=target.url, dest=dest_dir / target.file_name, size=target.size,
        hashes=target.hashes, origin={"ref": f"4384@{VERSION}", "file_id": target.file_id},
    )  # fmt: skip


def _served_sha256(server: DemoServer, name: str) -> str:
    """The demo file's bytes hashed here with hashlib (not by sdlib)."""
    [served] = [f for f in server.files.values() if f.spec.name == name]
    digest = hashlib.sha256()
    with served.open() as fh:
        digest.update(fh.read(served.size))
    return digest.hexdigest().upper()


def _state_dir(settings: Settings) -> Path:
    state_dir = DownloadOptions.from_settings(settings).state_dir
    assert state_dir is not None
    return state_dir


def test_a_cut_download_is_listed_with_its_kept_bytes_then_finished(
    http: httpx2.Client, civ: CivitaiClient, civitai: DemoServer, civitai_settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    spec = _spec(civ, tmp_path / "models")
    civitai.add_fault("drop", after_bytes=1 << 20)
    with pytest.raises(DownloadError):
        download(http, spec, _options(civitai_settings))
    part = spec.dest.with_name(spec.dest.name + ".part")
    assert part.stat().st_size == 1 << 20

    [entry] = list_unfinished(_state_dir(civitai_settings))
    assert entry.ref == f"4384@{VERSION}" and entry.file_name == spec.dest.name
    assert entry.target == spec.dest and entry.part == part and entry.part_exists
    assert entry.kept == 1 << 20 and entry.size == spec.size
    assert entry.sha256 == spec.hashes["SHA256"].upper()
    assert entry.stopped_by == "network" and "closed the connection" in entry.reason
    assert "resume with" not in entry.reason  # the listing says that once, not per entry
    assert json.loads(json.dumps(entry.to_dict()))["kept"] == 1 << 20

    civitai.reset()
    civitai.clear_requests()
    result = download(http, spec, _options(civitai_settings))
    assert result.resumed_from == 1 << 20
    assert result.hashes.sha256 == _served_sha256(civitai, spec.dest.name)
    assert list_unfinished(_state_dir(civitai_settings)) == []


def test_a_cancel_is_recorded_as_interrupted(
    http: httpx2.Client, civ: CivitaiClient, civitai: DemoServer, civitai_settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    spec = _spec(civ, tmp_path)
    civitai.rate_limit = 2 << 20
    cancel = threading.Event()

    def on_event(event: DownloadEvent) -> None:
        if isinstance(event, Progress) and event.done >= 512 << 10:
            cancel.set()

    with pytest.raises(Interrupted):
        download(http, spec, _options(civitai_settings, cancel=cancel), on_event)
    [entry] = list_unfinished(_state_dir(civitai_settings))
    kept = spec.dest.with_name(spec.dest.name + ".part").stat().st_size
    assert entry.stopped_by == "interrupted" and entry.kept == kept and 0 < kept < spec.size


def test_nothing_kept_leaves_no_record(
    http: httpx2.Client, civ: CivitaiClient, civitai: DemoServer, civitai_settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    civitai.add_fault("drop", after_bytes=0)
    with pytest.raises(DownloadError):
        download(http, _spec(civ, tmp_path / "models"), _options(civitai_settings))
    assert list_unfinished(_state_dir(civitai_settings)) == []
    assert list((tmp_path / "models").iterdir()) == []


def test_an_integrity_failure_discards_its_bytes_and_leaves_no_record(
    http: httpx2.Client, civ: CivitaiClient, civitai: DemoServer, civitai_settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Nothing to resume: the bytes that failed verification are gone, so `sdlib downloads`
    must not list a 'part file gone' entry whose resume can only fail the same way."""
    civitai.add_fault("hash-sha256-wrong")
    with pytest.raises(HashMismatch):
        download(http, _spec(civ, tmp_path / "models"), _options(civitai_settings))
    assert list_unfinished(_state_dir(civitai_settings)) == []
    assert list((tmp_path / "models").iterdir()) == []


def test_forget_deletes_only_its_own_part_file(
    http: httpx2.Client, civ: CivitaiClient, civitai: DemoServer, civitai_settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    spec = _spec(civ, tmp_path / "models")
    civitai.add_fault("drop", after_bytes=1 << 20)
    with pytest.raises(DownloadError):
        download(http, spec, _options(civitai_settings))
    state_dir = _state_dir(civitai_settings)
    [entry] = list_unfinished(state_dir)
    neighbour = tmp_path / "models" / "other.safetensors.part"
    neighbour.write_bytes(b"someone else's")

    with pytest.raises(NotFound):
        find_unfinished(state_dir, "zzzzzzzz")
    # A record pointing its part file elsewhere (edited, or from a moved folder): refused.
    moved = replace(entry, part=tmp_path / "elsewhere.part")
    (tmp_path / "elsewhere.part").write_bytes(b"keep me")
    with pytest.raises(SdlibError, match="not beside"):
        forget_unfinished(state_dir, moved)
    assert (tmp_path / "elsewhere.part").read_bytes() == b"keep me"
    # Another process downloading it (holding the lock): refused, nothing deleted.
    with open(entry.part, "r+b") as fh:
        assert try_lock(fh)
        try:
            with pytest.raises(SdlibError, match="another sdlib process"):
                forget_unfinished(state_dir, find_unfinished(state_dir, entry.id))
        finally:
            unlock(fh)
    assert entry.part.stat().st_size == 1 << 20

    assert forget_unfinished(state_dir, find_unfinished(state_dir, entry.id[:5]))
    assert not entry.part.exists() and neighbour.read_bytes() == b"someone else's"
    assert list_unfinished(state_dir) == []


# --- pure parts -------------------------------------------------------------------------------


def test_a_record_left_downloading_by_a_dead_process_says_so() -> None:
    state = {"target": "/m/a.safetensors", "part": "/m/a.safetensors.part", "url": "http://x",
             "state": "downloading", "identity": {"size": 10, "sha256": "AB"},
             "origin": {"ref": "1@2"}}  # fmt: skip
    ended = entry_from_state("0123456789abcdef", state, kept=4, locked=False)
    assert ended is not None and ended.stopped_by == "ended" and ended.id == "01234567"
    running = entry_from_state("0123456789abcdef", state, kept=4, locked=True)
    assert running is not None and running.running
    assert entry_from_state("k", {"validator": "x", "part": "/p"}, kept=1, locked=False) is None
    gone = entry_from_state("k", {**state, "state": "stopped"}, kept=None, locked=False)
    assert gone is not None and not gone.part_exists and gone.kept == 0


def test_stop_reasons() -> None:
    assert stop_reason(Interrupted("stopped"))[0] == "interrupted"
    assert stop_reason(HashMismatch("bad"))[0] == "integrity"
    assert stop_reason(DownloadError("link broke"))[0] == "network"
    assert stop_reason(SdlibError("cannot write"))[0] == "failed"
    assert stop_reason(ValueError("boom")) == ("failed", "ValueError: boom")


@pytest.mark.parametrize(
    ("done", "total", "last", "elapsed", "due"),
    [
        (PROGRESS_EVERY_BYTES, None, 0, 0.06, True),  # 256 KiB came before 0.5 s
        (PROGRESS_EVERY_BYTES - 1, None, 0, 0.49, False),  # neither yet
        (1, None, 0, 0.5, True),  # 0.5 s came first, with a byte
        (0, None, 0, 5.0, False),  # nothing new: nothing to say
        (10 << 20, None, 0, 0.01, False),  # never 20+ a second, however fast
        (100, 100, 50, 0.0, True),  # the last byte always
    ],
)
def test_progress_is_due_every_256_kib_or_half_a_second(
    done: int, total: int | None, last: int, elapsed: float, due: bool
) -> None:
    assert progress_due(done, total, last, elapsed) is due


def test_progress_events_come_at_least_every_half_second_on_a_slow_link(
    http: httpx2.Client, civ: CivitaiClient, civitai: DemoServer, civitai_settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    target = civ.resolve_download(28569)  # the 2.4 MiB VAE
    spec = DownloadSpec(url=target.url, dest=tmp_path / target.file_name, size=target.size,
                        hashes=target.hashes)  # fmt: skip
    civitai.rate_limit = 2 << 20
    seen: list[tuple[float, int]] = []

    def on_event(event: DownloadEvent) -> None:
        if isinstance(event, Progress):
            seen.append((time.monotonic(), event.done))

    download(http, spec, _options(civitai_settings, retries=2), on_event)
    assert seen[-1][1] == target.size
    gaps = [(t2 - t1, d2 - d1) for (t1, d1), (t2, d2) in itertools.pairwise(seen)]
    # Half a second at most between two reports (with some slack for a loaded machine).
    assert len(seen) >= target.size // (512 << 10)
    assert all(seconds < 0.5 + 0.25 for seconds, _ in gaps), gaps


def test_a_record_left_after_the_file_took_its_name_is_dropped_by_resume(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> None:
    """Killed between placing the file and dropping its record: the record says
    'downloading', the part file is gone, the file is complete. Resume finds it present."""
    from sdlib.download._unfinished import ResumeRecord
    from sdlib.services import Context
    from sdlib.services.downloads import resume_download, unfinished_downloads
    from sdlib.services.remote import install

    with Context(civitai_settings) as ctx:
        done = install(ctx, f"4384@{VERSION}", root=tmp_path / "webui", ui="a1111")
        part = done.path.with_name(done.path.name + ".part")
        record = ResumeRecord(
            _state_dir(civitai_settings), part, done.size, {"SHA256": done.sha256},
            target=done.path, url="http://127.0.0.1:9/x",
            origin={"ref": f"4384@{VERSION}", "file_id": done.file_id,
                    "root": str(tmp_path / "webui"), "ui": "a1111", "sort": True},
        )  # fmt: skip
        record.save(None)
        [entry] = unfinished_downloads(ctx)
        assert entry.stopped_by == "ended" and not entry.part_exists
        again = resume_download(ctx, entry.id)
        assert again.status == "already-present" and again.path == done.path
        assert unfinished_downloads(ctx) == []
