"""The TUI's downloads screen says when a file landed with a hash warning or unverified
(the installer's result carries the verification; the screen shows its warnings)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from sdlib.files.verification import check
from sdlib.hashing import hash_stream
from sdlib.install import FileChoice, InstallResult
from sdlib.tui.downloads import DownloadQueue, JobState
from sdlib.tui.messages import DownloadDone
from sdlib.tui.screens.downloads import detail_text
from tests.tui.test_downloads import job_ended, only_job, queue_from_browse

DATA = struct.pack("<Q", 2) + b"{}" + b"weights" * 100
SHA = hashlib.sha256(DATA).hexdigest().upper()
CRC = zlib.crc32(DATA).to_bytes(4, "little").hex().upper()


def _detail(published: dict[str, str], *, accept: bool = False) -> tuple[str, str]:
    hashes = hash_stream(io.BytesIO(DATA), len(DATA))
    verdict = check(hashes, published, len(DATA))
    verdict = verdict.accept() if accept else verdict
    warning = verdict.warning()
    result = InstallResult(
        ref="1@1", model_id=1, version_id=1, file_id=1, path=Path("/m/f.safetensors"),
        size=len(DATA), sha256=hashes.sha256, kind="lora", base="sd1",
        verified=verdict.verified, status="downloaded", picked="f", verification=verdict,
        warnings=(warning,) if warning else (),
    )  # fmt: skip
    queue = DownloadQueue(start=lambda j: None, discard=lambda p: None)
    job = queue.add("1@1", FileChoice(file_id=1), title="t", file_name="f", size=len(DATA))
    queue.apply(DownloadDone(job.id, result=result))
    assert job.state is JobState.DONE
    return detail_text(job), detail_text(job, full=True)


def test_a_differing_crc32_is_a_warning_beside_a_verified_sha256() -> None:
    wrong = f"{int(CRC, 16) ^ 0xFF:08X}"
    compact, full = _detail({"SHA256": SHA, "CRC32": wrong})
    assert f"SHA256 {SHA} verified" in compact
    [line] = [x for x in full.splitlines() if x.startswith("warning:")]
    assert wrong in line and CRC in line


def test_an_accepted_mismatch_says_not_verified() -> None:
    compact, full = _detail({"SHA256": "0" * 64}, accept=True)
    assert "not verified" in compact
    assert any("--accept-mismatch" in x for x in full.splitlines() if x.startswith("warning:"))


def test_nothing_decisive_published_says_not_verified() -> None:
    compact, full = _detail({"CRC32": CRC})
    assert "not verified" in compact and "unverified" in full


# -- end to end: the demo server publishes odd hashes, the TUI downloads ----------------------

LORA_FILE = 628331  # add_detail.safetensors (Detail Tweaker LoRA)


async def _download_lora(app: Any, ui: Any) -> Any:
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "detail tweaker")
        await ui.until(pilot, lambda: job_ended(app), what="the download")
        await ui.settle(pilot)
        job = only_job(app)
        await pilot.press("2")
        await ui.settle(pilot)
        return job, ui.text(app), detail_text(job, full=True)


@pytest.mark.anyio
async def test_tui_download_with_a_wrong_crc32_lands_with_its_warning(
    make_app: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    served = civitai.files[LORA_FILE].path
    assert served is not None
    data = served.read_bytes()
    crc = zlib.crc32(data).to_bytes(4, "little").hex().upper()
    civitai.add_fault("hash-crc32-wrong", file_id=LORA_FILE)
    published = civitai.published_hashes(LORA_FILE)["CRC32"]
    job, screen, full = await _download_lora(make_app(), ui)
    assert job.state is JobState.DONE, job.message
    placed = webui / "models" / "Lora" / "add_detail.safetensors"
    assert job.result.path == placed and placed.read_bytes() == data
    assert job.result.verified is True
    # What the install said on the way is in the full detail, as the CLI prints it.
    assert "note: 58390@62833: picked add_detail.safetensors (SafeTensor, fp16)" in full
    [line] = [x for x in full.splitlines() if x.startswith("warning:")]
    assert "CRC32" in line and published in line and crc in line
    assert f"SHA256 {hashlib.sha256(data).hexdigest().upper()} verified" in screen


@pytest.mark.anyio
async def test_tui_download_with_a_wrong_sha256_is_discarded(
    make_app: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    job, screen, _full = await _download_lora(make_app(), ui)
    assert job.state is JobState.FAILED and job.reason == "hash mismatch", job.message
    assert "SHA256" in (job.message or "") and "✗ hash mismatch" in screen
    # The compact detail offers k and names the CLI command that does the same, for this
    # very file (Detail Tweaker v1.0 is version 62833, its file 628331).
    compact = detail_text(job)
    assert "k: download again and keep" in compact
    assert "sdlib download 58390@62833 --file-id 628331 --accept-mismatch" in compact
    assert "r: try again" in compact
    lora = webui / "models" / "Lora"
    assert not [p for p in lora.iterdir() if p.suffix == ".safetensors"] if lora.exists() else True


@pytest.mark.anyio
async def test_tui_keeps_a_mismatched_file_only_when_the_user_says_so(
    make_app: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    """k on a download discarded for a hash mismatch asks first; n leaves it failed, y
    downloads it again and keeps the served bytes, marked unverified (issue 13 item 1)."""
    served = civitai.files[LORA_FILE].path
    assert served is not None
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await queue_from_browse(pilot, ui, "detail tweaker")
        await ui.until(pilot, lambda: job_ended(app), what="the download")
        job = only_job(app)
        assert job.state is JobState.FAILED and job.reason == "hash mismatch", job.message
        await pilot.press("2")
        await ui.settle(pilot)
        await pilot.press("k")
        await ui.settle(pilot)
        assert "Keep a file that does not match?" in ui.text(app)
        await pilot.press("n")
        await ui.settle(pilot)
        assert job.state is JobState.FAILED and not job.accept_mismatch
        await pilot.press("k")
        await ui.settle(pilot)
        await pilot.press("y")
        await ui.until(pilot, lambda: job.state is JobState.DONE, what="the kept download")
    placed = webui / "models" / "Lora" / "add_detail.safetensors"
    assert job.result is not None and job.result.path == placed
    assert placed.read_bytes() == served.read_bytes()
    assert job.result.verified is False
    assert "not verified" in detail_text(job)
