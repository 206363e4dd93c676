"""The verification policy through the Python API (``sdlib.install``), as the README says it:
a wrong SHA256 raises exit code 4 and leaves nothing; ``accept_mismatch=True`` keeps the
bytes the source serves, marked unverified; a wrong secondary hash only warns.

Expected bytes and hashes come from the demo server's own files (hashlib/zlib here).
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

import sdlib
from sdlib.config import Settings
from sdlib.demo.server import DemoServer

LORA_MODEL, LORA_FILE = "58390", 628331  # add_detail.safetensors


def _served(server: DemoServer) -> bytes:
    path = server.files[LORA_FILE].path
    assert path is not None
    return path.read_bytes()


def test_a_wrong_sha256_raises_integrity_and_leaves_no_model(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> None:
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    root = tmp_path / "webui"
    with sdlib.Context(civitai_settings) as ctx, pytest.raises(sdlib.SdlibError) as caught:
        sdlib.install(ctx, LORA_MODEL, root=root, ui="a1111")
    assert caught.value.exit_code == 4 and "SHA256" in caught.value.message
    assert not [p for p in root.rglob("*.safetensors")]


def test_accept_mismatch_keeps_the_served_bytes_marked_unverified(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> None:
    data = _served(civitai)
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    published = civitai.published_hashes(LORA_FILE)["SHA256"]
    with sdlib.Context(civitai_settings) as ctx:
        done = sdlib.install(ctx, LORA_MODEL, root=tmp_path / "webui", ui="a1111",
                             accept_mismatch=True)  # fmt: skip
    assert done.path.read_bytes() == data
    assert done.verified is False and done.verification is not None
    v = done.verification.to_dict()
    assert (v["status"], v["accepted_mismatch"]) == ("unverified", True)
    [sha] = v["disagreements"]
    assert (sha["hash"], sha["published"]) == ("SHA256", published)
    assert sha["actual"] == hashlib.sha256(data).hexdigest().upper()
    assert any("--accept-mismatch" in w or "accept" in w for w in done.warnings)


def test_a_wrong_crc32_lands_verified_with_a_warning(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> None:
    data = _served(civitai)
    crc = zlib.crc32(data).to_bytes(4, "little").hex().upper()
    civitai.add_fault("hash-crc32-wrong", file_id=LORA_FILE)
    published = civitai.published_hashes(LORA_FILE)["CRC32"]
    assert published != crc
    with sdlib.Context(civitai_settings) as ctx:
        done = sdlib.install(ctx, LORA_MODEL, root=tmp_path / "webui", ui="a1111")
    assert done.verified is True and done.path.read_bytes() == data
    assert done.verification is not None
    assert done.verification.to_dict()["disagreements"] == [
        {"hash": "CRC32", "published": published, "actual": crc}
    ]
    [warning] = done.warnings
    assert "CRC32" in warning and published in warning


@pytest.mark.parametrize("accept", [False, True])
def test_install_manifest_follows_the_same_policy(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path, accept: bool
) -> None:
    """``install -f`` from Python: one entry whose SHA256 is published wrong fails with
    exit code 4 (the others are installed), or is kept unverified with accept_mismatch."""
    data = _served(civitai)
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    root = tmp_path / "webui"
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        f'[target]\nroot = "{root.as_posix()}"\nui = "a1111"\n\n'
        f'[[model]]\nref = "{LORA_MODEL}"\n\n[[model]]\nref = "7808"\n',  # + EasyNegative
        encoding="utf-8",
    )
    with sdlib.Context(civitai_settings) as ctx:
        plan = sdlib.load_manifest(manifest)
        report = sdlib.install_manifest(ctx, plan, accept_mismatch=accept)
    by_ref = {r.ref: r for r in report.results}
    assert by_ref["7808"].status == "installed"
    lora = by_ref[LORA_MODEL]
    if accept:
        assert report.exit_code == 0 and lora.status == "installed"
        assert lora.path is not None and Path(lora.path).read_bytes() == data
        assert lora.verification is not None and lora.verification["accepted_mismatch"] is True
    else:
        assert report.exit_code == 4 and lora.status == "failed"
        assert not (root / "models" / "Lora").exists() or not [
            p for p in (root / "models" / "Lora").iterdir() if p.suffix == ".safetensors"
        ]
