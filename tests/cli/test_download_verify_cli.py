"""`sdlib download` / `sdlib install` when Civitai publishes odd hashes (the demo server's
hash-* switches): the deciding hash decides, the rest only warn.

Expected values are computed here with hashlib/zlib/blake3 from the bytes the server serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]

LORA_MODEL, LORA_FILE = "58390", 628331  # add_detail.safetensors (SafeTensor, small)
PT_MODEL, PT_FILE = "5086", 50871  # animeLineart_v1.pt (a pickle: no AutoV3)
TOKEN = {"CIVITAI_TOKEN": "demo-token"}


def served_bytes(server: DemoServer, file_id: int) -> bytes:
    path = server.files[file_id].path
    assert path is not None
    return path.read_bytes()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


def download(
    run_cli: RunCli, ref: str, to: Path, *extra: str
) -> tuple[int, list[dict[str, Any]], str]:
    proc = run_cli("download", ref, "--to", str(to), "--no-preview", "--json", *extra, env=TOKEN)
    return proc.returncode, json.loads(proc.stdout or "[]"), proc.stderr


def test_full_length_autov3_lands_without_a_word(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    data = served_bytes(civitai, LORA_FILE)
    header = int.from_bytes(data[:8], "little")
    body_sha = hashlib.sha256(data[8 + header :]).hexdigest().upper()
    civitai.add_fault("hash-autov3-full", file_id=LORA_FILE)
    assert civitai.published_hashes(LORA_FILE)["AutoV3"] == body_sha  # 64 characters
    code, [result], stderr = download(run_cli, LORA_MODEL, tmp_path)
    assert code == 0, stderr
    assert result["verified"] and result["verification"]["status"] == "verified"
    assert result["verification"]["disagreements"] == []
    assert warnings(stderr) == []
    assert Path(result["path"]).read_bytes() == data


def test_right_sha256_and_wrong_crc32_lands_with_one_warning(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    data = served_bytes(civitai, LORA_FILE)
    crc = zlib.crc32(data).to_bytes(4, "little").hex().upper()
    civitai.add_fault("hash-crc32-wrong", file_id=LORA_FILE)
    civitai.add_fault("hash-autov3-full", file_id=LORA_FILE)
    published = civitai.published_hashes(LORA_FILE)["CRC32"]
    assert published != crc
    code, [result], stderr = download(run_cli, LORA_MODEL, tmp_path)
    assert code == 0, stderr
    [line] = warnings(stderr)
    assert "CRC32" in line and published in line
    v = result["verification"]
    assert (v["status"], v["decided_by"], result["verified"]) == ("verified", "SHA256", True)
    assert v["disagreements"] == [{"hash": "CRC32", "published": published, "actual": crc}]
    model = Path(result["path"])
    assert model.read_bytes() == data
    assert hashlib.sha256(data).hexdigest().upper() == result["sha256"]
    # The disagreement is recorded in the sidecar the webUI shows (A1111's notes).
    notes = json.loads(model.with_suffix(".json").read_text())["notes"]
    assert "CRC32" in notes and published in notes


def test_wrong_sha256_exits_4_and_leaves_no_file(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    proc = run_cli("download", LORA_MODEL, "--to", str(tmp_path / "m"), "--no-preview", env=TOKEN)
    assert proc.returncode == 4
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "SHA256" in errors[0] and "Traceback" not in proc.stderr
    left = sorted(p.name for p in (tmp_path / "m").rglob("*")) if (tmp_path / "m").exists() else []
    assert left == []


def test_accept_mismatch_keeps_the_file_marked_unverified(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    data = served_bytes(civitai, LORA_FILE)
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    code, [result], stderr = download(run_cli, LORA_MODEL, tmp_path, "--accept-mismatch")
    assert code == 0, stderr
    assert Path(result["path"]).read_bytes() == data
    v = result["verification"]
    assert result["verified"] is False
    assert (v["status"], v["accepted_mismatch"]) == ("unverified", True)
    assert [d["hash"] for d in v["disagreements"]] == ["SHA256"]
    [line] = warnings(stderr)
    assert "--accept-mismatch" in line and "unverified" in line


def test_without_sha256_blake3_decides(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    civitai.add_fault("hash-no-sha256", file_id=LORA_FILE)
    code, [result], stderr = download(run_cli, LORA_MODEL, tmp_path)
    assert code == 0, stderr
    assert result["verification"]["decided_by"] == "BLAKE3" and result["verified"]


def test_without_sha256_and_blake3_autov2_decides(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    data = served_bytes(civitai, PT_FILE)
    civitai.add_fault("hash-no-sha256", file_id=PT_FILE)
    civitai.add_fault("hash-no-blake3", file_id=PT_FILE)
    assert (
        civitai.published_hashes(PT_FILE)["AutoV2"] == hashlib.sha256(data).hexdigest().upper()[:10]
    )
    code, [result], stderr = download(run_cli, PT_MODEL, tmp_path)
    assert code == 0, stderr
    assert result["verification"]["decided_by"] == "AutoV2" and result["verified"]
    assert Path(result["path"]).read_bytes() == data


@pytest.mark.parametrize("accept", [False, True])
def test_install_from_a_manifest_follows_the_same_policy(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path, accept: bool
) -> None:
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    root = tmp_path / "models"
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        f'[target]\nroot = "{root.as_posix()}"\n\n[[model]]\nref = "{LORA_MODEL}"\n',
        encoding="utf-8",
    )
    args = ["install", "-f", str(manifest), "--no-preview", "--json"]
    proc = run_cli(*args, *(["--accept-mismatch"] if accept else []), env=TOKEN)
    report = json.loads(proc.stdout)
    [entry] = report["entries"]
    if accept:
        assert proc.returncode == 0, proc.stderr
        assert entry["status"] == "installed"
        assert any("--accept-mismatch" in w for w in entry["warnings"])
        v = entry["verification"]
        assert (v["status"], v["accepted_mismatch"], v["disagreements"][0]["hash"]) == (
            "unverified", True, "SHA256",
        )  # fmt: skip
        assert Path(entry["path"]).is_file()
    else:
        assert proc.returncode == 4, proc.stderr
        assert entry["status"] == "failed" and "SHA256" in entry["error"]
        assert not any(p.is_file() for p in root.rglob("*")) if root.exists() else True


def test_verify_after_accept_mismatch_still_detects_rot_but_not_the_accepted_difference(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    """The user kept bytes whose SHA256 differs from Civitai's (--accept-mismatch): `sdlib
    verify` does not fail on that known, accepted difference every time, but still compares
    the file with the SHA256 recorded when it landed, so bit rot is still exit 4."""
    data = served_bytes(civitai, LORA_FILE)
    civitai.add_fault("hash-sha256-wrong", file_id=LORA_FILE)
    root = tmp_path / "webui"
    got = run_cli("download", LORA_MODEL, "--root", str(root), "--ui", "a1111", "--json",
                  "--no-preview", "--accept-mismatch", env=TOKEN)  # fmt: skip
    assert got.returncode == 0, got.stderr
    [result] = json.loads(got.stdout)
    model = Path(result["path"])
    first = run_cli("verify", str(model), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    [check] = json.loads(first.stdout)["files"]
    assert check["state"] == "ok" and check["sha256"] == hashlib.sha256(data).hexdigest().upper()
    assert "index" in [r["source"] for r in check["references"]]
    st = model.stat()
    rotted = bytearray(data)
    rotted[-1] ^= 0xFF  # bit rot: same size, other bytes, and the time put back
    model.write_bytes(bytes(rotted))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = run_cli("verify", str(model), "--json")
    assert second.returncode == 4
    [check] = json.loads(second.stdout)["files"]
    assert check["state"] == "mismatch" and "index" in check["mismatched"]
