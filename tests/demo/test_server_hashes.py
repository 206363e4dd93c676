"""The demo server's hash-* switches: what its API publishes as a file's hashes, as Civitai's
odd records do (a 64-character AutoV3, a wrong CRC32, no SHA256, a wrong SHA256)."""

from __future__ import annotations

import hashlib
import zlib

import httpx2

from sdlib.demo.server import DemoServer

LORA = 628331  # add_detail.safetensors, version 62833


def _true(server: DemoServer) -> tuple[bytes, dict[str, str]]:
    path = server.files[LORA].path
    assert path is not None
    data = path.read_bytes()
    header = int.from_bytes(data[:8], "little")
    return data, {
        "SHA256": hashlib.sha256(data).hexdigest().upper(),
        "AutoV3": hashlib.sha256(data[8 + header :]).hexdigest().upper(),
        "CRC32": zlib.crc32(data).to_bytes(4, "little").hex().upper(),
    }


def _published(server: DemoServer) -> dict[str, str]:
    body = httpx2.get(f"{server.url}/api/v1/model-versions/62833").json()
    [f] = [f for f in body["files"] if f["id"] == LORA]
    return dict(f["hashes"])


def test_switches_change_only_what_is_published(civitai: DemoServer) -> None:
    data, true = _true(civitai)
    assert _published(civitai)["AutoV3"] == true["AutoV3"][:12]  # Civitai's 12 by default
    admin = f"{civitai.url}/__admin/fault"
    for kind in ("hash-autov3-full", "hash-crc32-wrong", "hash-no-sha256"):
        assert httpx2.get(admin, params={"kind": kind, "file_id": LORA}).status_code == 200
    published = _published(civitai)
    assert published["AutoV3"] == true["AutoV3"]
    assert published["CRC32"] != true["CRC32"] and len(published["CRC32"]) == 8
    assert "SHA256" not in published
    # by-hash finds the file by the 64-character AutoV3 it now stores, not by its SHA256.
    by_hash = f"{civitai.url}/api/v1/model-versions/by-hash"
    assert httpx2.get(f"{by_hash}/{true['AutoV3']}").status_code == 200
    assert httpx2.get(f"{by_hash}/{true['SHA256']}").status_code == 404
    # The bytes served are the same file all along; a reset restores the true record.
    assert civitai.files[LORA].path is not None and civitai.files[LORA].path.read_bytes() == data
    civitai.reset()
    assert _published(civitai)["SHA256"] == true["SHA256"]


def test_a_wrong_sha256_is_published_for_one_file_only(civitai: DemoServer) -> None:
    _, true = _true(civitai)
    civitai.add_fault("hash-sha256-wrong", file_id=LORA)
    assert _published(civitai)["SHA256"] not in (true["SHA256"], "")
    other = civitai.published_hashes(1287131)
    assert other == dict(civitai.files[1287131].hashes)  # every other file untouched
    # Hash switches are never answered as status faults.
    assert httpx2.get(f"{civitai.url}/api/v1/models/58390").status_code == 200
