"""The verification policy: which published hash decides, which only warn.

Expected values come from hashlib/zlib over bytes built here, never from sdlib's own output.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest
from blake3 import blake3

from sdlib.files.verification import check
from sdlib.hashing import FileHashes, hash_stream

BODY = b"tensor bytes " * 200
DATA = struct.pack("<Q", 2) + b"{}" + BODY  # a toy safetensors file
SHA = hashlib.sha256(DATA).hexdigest().upper()
BODY_SHA = hashlib.sha256(BODY).hexdigest().upper()
CRC = zlib.crc32(DATA).to_bytes(4, "little").hex().upper()  # Civitai's byte order
B3 = blake3(DATA).hexdigest().upper()
WRONG_CRC = f"{int(CRC, 16) ^ 1:08X}"


@pytest.fixture(scope="module")
def hashes() -> FileHashes:
    return hash_stream(io.BytesIO(DATA), len(DATA))


def published(**kw: str) -> dict[str, str]:
    full = {"SHA256": SHA, "AutoV2": SHA[:10], "AutoV3": BODY_SHA[:12], "CRC32": CRC, "BLAKE3": B3}
    full.update(kw)
    return {k: v for k, v in full.items() if v}


def test_everything_matching_is_verified_by_sha256(hashes: FileHashes) -> None:
    v = check(hashes, published(), len(DATA))
    assert (v.status, v.decided_by, v.disagreements, v.warning()) == (
        "verified", "SHA256", (), None,
    )  # fmt: skip


@pytest.mark.parametrize("form", [BODY_SHA, BODY_SHA[:12], BODY_SHA.lower()])
def test_autov3_compares_on_its_published_length(hashes: FileHashes, form: str) -> None:
    v = check(hashes, published(AutoV3=form), len(DATA))
    assert v.status == "verified" and v.disagreements == ()


def test_a_wrong_secondary_is_a_warning_not_a_failure(hashes: FileHashes) -> None:
    v = check(hashes, published(CRC32=WRONG_CRC), len(DATA))
    assert v.status == "verified" and v.verified
    [d] = v.disagreements
    assert (d.hash, d.published, d.actual) == ("CRC32", WRONG_CRC, CRC)
    line = v.warning()
    assert line is not None and "\n" not in line
    assert WRONG_CRC in line and CRC in line and "SHA256" in line


def test_an_autov3_of_another_length_is_a_disagreement(hashes: FileHashes) -> None:
    v = check(hashes, published(AutoV3=BODY_SHA[:20]), len(DATA))
    assert v.status == "verified" and [d.hash for d in v.disagreements] == ["AutoV3"]


def test_a_wrong_sha256_decides_even_when_the_rest_agree(hashes: FileHashes) -> None:
    v = check(hashes, published(SHA256="0" * 64), len(DATA))
    assert v.status == "mismatch" and v.decided_by == "SHA256"
    assert (v.problem() or "").startswith("SHA256 differs from what the source published (0000")
    kept = v.accept()
    assert kept.status == "unverified" and kept.accepted_mismatch and not kept.verified
    assert "--accept-mismatch" in (kept.warning() or "")


def test_a_wrong_size_decides(hashes: FileHashes) -> None:
    v = check(hashes, published(), len(DATA) + 1)
    assert v.status == "mismatch" and v.size_matches is False
    assert "size" in (v.problem() or "")


def test_without_sha256_blake3_then_autov2_decide(hashes: FileHashes) -> None:
    assert check(hashes, published(SHA256=""), len(DATA)).decided_by == "BLAKE3"
    v = check(hashes, published(SHA256="", BLAKE3=""), len(DATA))
    assert (v.status, v.decided_by) == ("verified", "AutoV2")
    bad = check(hashes, published(SHA256="", BLAKE3="", AutoV2="0123456789"), len(DATA))
    assert (bad.status, bad.decided_by) == ("mismatch", "AutoV2")


def test_only_weak_hashes_published_says_unverified(hashes: FileHashes) -> None:
    weak = {"CRC32": CRC, "AutoV3": BODY_SHA[:12]}
    v = check(hashes, weak, len(DATA))
    assert (v.status, v.decided_by, v.verified) == ("unverified", None, False)
    assert "unverified" in (v.warning() or "")
    # ... and what is published still decides: a wrong CRC32 with nothing stronger fails.
    assert check(hashes, {"CRC32": WRONG_CRC}, len(DATA)).status == "mismatch"
    assert check(hashes, {}, None).status == "unverified"


def test_unknown_names_and_case_are_ignored(hashes: FileHashes) -> None:
    odd = {"sha256": SHA.lower(), "crc32": CRC.lower(), "AutoV9": "XYZ", "Weird": "1", "BLAKE3": ""}
    v = check(hashes, odd, len(DATA))
    assert v.status == "verified" and v.decided_by == "SHA256" and v.disagreements == ()
    assert v.checked == ("SHA256", "CRC32")


def test_result_serialises_for_json(hashes: FileHashes) -> None:
    v = check(hashes, published(CRC32=WRONG_CRC), len(DATA))
    assert v.to_dict() == {
        "status": "verified", "decided_by": "SHA256", "size_matches": True,
        "disagreements": [{"hash": "CRC32", "published": WRONG_CRC, "actual": CRC}],
        "accepted_mismatch": False, "checked": ["SHA256", "AutoV2", "AutoV3", "CRC32", "BLAKE3"],
    }  # fmt: skip
