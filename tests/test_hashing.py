"""Hashes match Civitai's published vectors and independent implementations."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from blake3 import blake3

from sdlib.errors import FormatError
from sdlib.hashing import CHUNK, FileHashes, Hasher, hash_file, hash_stream
from tests.support.paths import PUBLISHED as CIVITAI_PUBLISHED


def test_hello_world_vector() -> None:
    h = hash_stream(io.BytesIO(b"hello world"), 11)
    assert h.sha256 == "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9"
    assert h.autov2 == "B94D27B993"
    assert h.crc32 == "85114A0D"  # Civitai's little-endian order; zlib prints 0D4A1185
    assert h.blake3 == "D74981EFA70A0C880B8D8C1985D075DBCBF679B99A5F9914E5AAF96B831A9E24"
    assert h.autov1 is None  # Civitai publishes no AutoV1 under 2 MiB
    assert h.autov3 is None  # not safetensors


def test_three_mib_of_zeros_vector(tmp_path: Path) -> None:
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(3 << 20))
    h = hash_file(path)
    assert h.autov1 == "DE2F2560"
    assert h.autov2 == "BBD05CF609"
    assert h.crc32 == "C64F7279"


def test_toy_safetensors_autov3() -> None:
    data = struct.pack("<Q", 2) + b"{}" + b"hello world"
    h = hash_stream(io.BytesIO(data), len(data))
    assert h.autov3 == "B94D27B9934D"


@pytest.mark.parametrize("size", [0, 1, 4095, CHUNK - 1, CHUNK + 3, 5 * CHUNK + 12345])
def test_cross_check_random_files(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "r.bin"
    path.write_bytes(data)
    h = hash_file(path)
    sha = hashlib.sha256(data).hexdigest().upper()
    assert h.size == size
    assert h.sha256 == sha and h.autov2 == sha[:10]
    assert h.blake3 == blake3(data).hexdigest().upper()
    assert h.crc32 == zlib.crc32(data).to_bytes(4, "little").hex().upper()
    if size >= 2 << 20:
        assert h.autov1 == hashlib.sha256(data[1 << 20 : (1 << 20) + 65536]).hexdigest().upper()[:8]
    else:
        assert h.autov1 is None


def test_autov3_with_header_spanning_chunks(tmp_path: Path) -> None:
    # A header bigger than one read buffer still splits exactly at 8 + N.
    header = b"{" + b" " * (CHUNK + 100) + b"}"
    body = os.urandom(3 * CHUNK + 17)
    data = struct.pack("<Q", len(header)) + header + body
    path = tmp_path / "big-header.safetensors"
    path.write_bytes(data)
    assert hash_file(path).autov3 == hashlib.sha256(body).hexdigest().upper()[:12]


def test_streaming_in_odd_pieces_equals_one_shot() -> None:
    data = struct.pack("<Q", 4) + b"{}  " + os.urandom((2 << 20) + 999)
    whole = hash_stream(io.BytesIO(data), len(data))
    for threads in (False, True):
        h = Hasher(len(data), threads=threads)
        pos = 0
        for step in (1, 3, 7, 5000, 1 << 20, 17, len(data)):
            h.update(data[pos : pos + step])
            pos += step
            h.wait_done(h.fed)
        assert h.result() == whole


def test_matches_compares_case_insensitively() -> None:
    h = hash_stream(io.BytesIO(b"hello world"), 11)
    published = {"SHA256": h.sha256.lower(), "AutoV2": "B94D27B993", "CRC32": "00000000"}
    assert h.matches(published) == ["CRC32"]
    assert h.matches({"Unknown": "X"}) == []


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        hash_file(tmp_path / "nope")
    with pytest.raises(FormatError, match="directory"):
        hash_file(tmp_path)


def test_filehashes_round_trips_to_dict() -> None:
    h = hash_stream(io.BytesIO(b"x"), 1)
    assert FileHashes(**h.to_dict()) == h


def _published_rows() -> list[dict[str, str]]:
    import csv

    tsv = CIVITAI_PUBLISHED / "published.tsv"
    if not tsv.is_file():
        return []
    with open(tsv, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.skipif(not _published_rows(), reason="civitai-published corpus not present")
@pytest.mark.parametrize("row", _published_rows(), ids=lambda r: r["file"])
def test_hashes_equal_what_civitai_published_for_real_files(row: dict[str, str]) -> None:
    """Every value civitai.com published for these real bytes equals ours (an empty cell: it
    published none, e.g. AutoV1 under 2 MiB); and the verification policy lands them all."""
    from sdlib.files.verification import check

    h = hash_file(CIVITAI_PUBLISHED / row["file"])  # raw bytes only; never unpickled
    assert h.size == int(row["bytes"])
    published = {k: row[k] for k in ("SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3")}
    for name, value in published.items():
        if value:
            assert h.get(name) == value.upper(), name
    if not published["AutoV1"]:
        assert h.size < 2 << 20
    verdict = check(h, published, int(row["bytes"]))
    assert (verdict.status, verdict.decided_by, verdict.disagreements) == ("verified", "SHA256", ())


def test_full_autov3_is_the_sha256_after_the_header() -> None:
    body = os.urandom(5000)
    data = struct.pack("<Q", 6) + b'{"a":1' + body
    h = hash_stream(io.BytesIO(data), len(data))
    assert h.autov3_full == hashlib.sha256(body).hexdigest().upper()
    assert h.autov3 == h.autov3_full[:12]
    assert "autov3_full" not in h.to_dict()  # the cache does not keep it; JSON stays stable
