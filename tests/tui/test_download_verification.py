"""The TUI's downloads screen says when a file landed with a hash warning or unverified
(the installer's result carries the verification; the screen shows its warnings)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

from sdlib.files.verification import check
from sdlib.hashing import hash_stream
from sdlib.install import FileChoice, InstallResult
from sdlib.tui.downloads import DownloadQueue, JobState
from sdlib.tui.messages import DownloadDone
from sdlib.tui.screens.downloads import detail_text

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
