"""A sidecar's identity is held to the file's SHA256 whenever that is known, on a fresh
index and on one that took the sidecar unconfirmed before: both end the same (the SHA256s
here come from hashlib, the sidecar's from the test; nothing from sdlib's own output)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from tests.library.test_adopt import lora_with_info, model, run, sha256, version_json
from tests.support import trees

REL = "models/Lora/detail.safetensors"
OTHER = "AB" * 32  # a SHA256 no file here has


def _change_bytes(path: Path) -> None:
    """Other bytes under the same name (the last byte of the sparse data), a new mtime."""
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\x01")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))


@pytest.mark.parametrize("index", ["fresh", "existing"])
def test_a_replaced_file_is_held_to_its_sidecar_whichever_index(
    tmp_path: Path, stores: tuple[Index, HashCache], index: str
) -> None:
    root = trees.a1111(tmp_path / "webui")
    path = lora_with_info(root, version_json)  # publishes the SHA256 of these bytes
    if index == "existing":
        first = model(run(root, stores, hash_all=True), REL)
        assert first.row.identify_state == "identified" and first.sha256 == sha256(path)
    _change_bytes(path)
    stores[1].get(str(path))  # the hash cache learns the new bytes (sdlib hash, a download)
    new_sha = sha256(path)
    for _ in range(2):  # and the next scan says it again: the sidecar is read again
        lora = model(run(root, stores), REL)
        assert lora.row.civitai_version_id is None and lora.row.matched_by is None
        assert lora.row.identify_state is None and lora.sha256 == new_sha
        assert any("describes other bytes" in n for n in lora.notes), lora.notes


def test_an_unconfirmed_identity_is_dropped_once_the_hash_contradicts_it(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    path = lora_with_info(root, lambda _sha: version_json(OTHER))
    taken = model(run(root, stores), REL)  # nothing hashed it yet: taken, not confirmed
    assert taken.row.civitai_version_id == 62833 and taken.row.identify_state is None
    hashed = model(run(root, stores, hash_all=True), REL)
    assert hashed.sha256 == sha256(path) != OTHER
    assert hashed.row.civitai_version_id is None and hashed.to_dict()["civitai"] is None
    assert any("describes other bytes" in n for n in hashed.notes), hashed.notes
    again = model(run(root, stores), REL)
    assert again.row.civitai_version_id is None
    assert any("describes other bytes" in n for n in again.notes), again.notes
    # The same as a fresh index that knew the SHA256 from the start.
    fresh_root = trees.a1111(tmp_path / "fresh")
    lora_with_info(fresh_root, lambda _sha: version_json(OTHER))
    with Index(tmp_path / "fresh.sqlite") as index:
        other = model(run(fresh_root, (index, stores[1]), hash_all=True), REL)
    assert (other.row.civitai_version_id, other.row.matched_by) == (None, None)


def test_an_unconfirmed_identity_is_confirmed_once_the_hash_matches(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    path = lora_with_info(root, version_json)
    taken = model(run(root, stores), REL)
    assert taken.row.identify_state is None and taken.row.matched_by == "sidecar"
    hashed = model(run(root, stores, hash_all=True), REL)
    assert hashed.sha256 == sha256(path)
    assert (hashed.row.identify_state, hashed.row.matched_by) == ("identified", "sidecar")
    assert hashed.row.civitai_version_id == 62833
    history = stores[0].history(taken.id)
    confirmed = [h["confirmed"] for h in history if h["event"] == "identified"]
    assert confirmed == [False, True]


def test_a_sidecar_without_hashes_stays_unconfirmed_when_the_hash_is_known(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    info = version_json(OTHER)
    info["files"][0]["hashes"] = {}
    path = lora_with_info(root, info)
    assert json.loads(path.with_suffix(".civitai.info").read_text())["files"][0]["hashes"] == {}
    for kw in ({}, {"hash_all": True}):
        lora = model(run(root, stores, **kw), REL)
        assert lora.row.civitai_version_id == 62833 and lora.row.identify_state is None
        assert not any("describes other bytes" in n for n in lora.notes)


def test_a_rescan_reads_no_sidecar_it_already_held_to_the_hash(
    tmp_path: Path, stores: tuple[Index, HashCache], sidecar_reads: list[str]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    info = version_json(OTHER)
    info["files"][0]["hashes"] = {}  # nothing to hold it to: taken unconfirmed, hash or not
    path = lora_with_info(root, info)
    model(run(root, stores, hash_all=True), REL)
    sidecar_reads.clear()  # the re-scan's reads only
    again = model(run(root, stores), REL)
    assert sidecar_reads == [] and again.row.civitai_version_id == 62833
    assert again.sha256 == sha256(path)
