"""``sdlib verify``: files read again and compared with the SHA256 recorded or published for
them; the expected values here come from hashlib, never from sdlib."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


def _rot(path: Path) -> None:
    """Flip one bit of the last byte, keeping the size and modification time (bit rot)."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)[0]
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_help_has_an_example_and_json(run_cli: Any) -> None:
    out = run_cli("verify", "--help")
    assert out.returncode == 0
    assert "sdlib verify " in out.stdout.split("Examples:")[1] and "--json" in out.stdout
    assert "verify" in run_cli("--help").stdout


def test_bit_rot_since_the_last_scan_is_exit_4_naming_the_file(
    run_cli: Any, tmp_path: Path
) -> None:
    root = trees.a1111(tmp_path / "webui")
    good = trees.st(root / "models" / "Lora" / "good.safetensors", "lora_sd15_kohya")
    bad = trees.st(root / "models" / "Lora" / "bad.safetensors", "locon_sd15")
    recorded = _sha(bad)
    assert run_cli("scan", str(root), "--hash").returncode == 0
    assert run_cli("verify", str(root)).returncode == 0
    _rot(bad)
    out = run_cli("verify", str(root), "--json")
    assert out.returncode == 4, out.stderr
    assert out.stderr.strip() == f"sdlib: error: SHA256 does not match: {bad}"
    files = {f["path"]: f for f in json.loads(out.stdout)["files"]}
    assert files[str(bad)]["state"] == "mismatch"
    assert files[str(bad)]["sha256"] == _sha(bad) != recorded
    assert {r["sha256"] for r in files[str(bad)]["references"]} == {recorded}
    assert "index" in files[str(bad)]["mismatched"]
    assert (files[str(good)]["state"], files[str(good)]["sha256"]) == ("ok", _sha(good))
    # Still found on the next run: a mismatch never overwrites what it was compared with.
    again = run_cli("verify", str(bad))
    assert again.returncode == 4 and str(bad) in again.stdout and "mismatch" in again.stdout


def test_published_hashes_and_files_with_no_reference(run_cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    right = trees.st(folder / "right.safetensors", "lora_sd15_kohya")
    wrong = trees.st(folder / "wrong.safetensors", "locon_sd15")
    alone = trees.st(folder / "alone.safetensors", "embedding_sd15")
    for model, sha in ((right, _sha(right)), (wrong, hashlib.sha256(b"other").hexdigest())):
        info = {"id": 1, "modelId": 2, "files": [{"name": model.name, "hashes": {"SHA256": sha}}]}
        model.with_suffix(".civitai.info").write_text(json.dumps(info))
    out = run_cli("verify", str(right), str(wrong), str(alone), "--json")
    assert out.returncode == 4, out.stderr
    data = json.loads(out.stdout)
    states = {Path(f["path"]).name: (f["state"], f["mismatched"]) for f in data["files"]}
    assert states == {
        "right.safetensors": ("ok", []),
        "wrong.safetensors": ("mismatch", ["civitai-info"]),
        "alone.safetensors": ("no-reference", []),
    }
    assert data["summary"] == {"ok": 1, "mismatch": 1, "no-reference": 1, "error": 0}
    # Its hashes are kept now: the next verify compares with them (a baseline for later rot).
    piped = run_cli("verify", str(alone))
    assert piped.returncode == 0
    (record,) = [line for line in piped.stdout.splitlines() if str(alone) in line]
    assert record.split("\t") == ["ok", _sha(alone), str(alone), "matches the hash cache"]


def test_a_file_that_is_no_model_is_exit_1(run_cli: Any, tmp_path: Path) -> None:
    notes = trees.touch(tmp_path / "notes.txt", "hello")
    out = run_cli("verify", str(notes))
    assert out.returncode == 1
    assert out.stderr.strip() == f"sdlib: error: {notes}: not a model file"
    usage = run_cli("verify", str(notes), "--root", str(tmp_path))
    assert usage.returncode == 2 and "not both" in usage.stderr
