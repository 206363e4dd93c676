"""`sdlib install -f models.toml` against the local Civitai-compatible server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from sdlib.demo.server import DemoServer
from sdlib.hashing import hash_file
from sdlib.manifest import parse_lock

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "models.toml"
EXPECTED_FOLDERS = {
    "4384@128713": "models/Stable-diffusion",
    "urn:air:sdxl:checkpoint:civitai:101055@128078": "models/Stable-diffusion",
    "9409": "models/Stable-diffusion/anime",
    "urn:air:sd1:lora:civitai:58390@62833": "models/Lora",
    "7371": "models/LyCORIS",
    "7808@9536": "embeddings",
    "5086": "models/hypernetworks",
}


def _setup(tmp_path: Path) -> Path:
    manifest = tmp_path / "models.toml"
    shutil.copy(EXAMPLE, manifest)
    return manifest


def _models(root: Path) -> dict[str, str]:
    """Relative path -> SHA256 of every model file under root (sidecars left out)."""
    exts = {".safetensors", ".ckpt", ".pt"}
    return {p.relative_to(root).as_posix(): hash_file(p).sha256
            for p in sorted(root.rglob("*")) if p.suffix in exts}  # fmt: skip


def test_example_manifest_installs_everything_then_is_a_fast_no_op(run_cli, tmp_path: Path) -> None:
    manifest = _setup(tmp_path)
    plan = run_cli("install", "-f", str(manifest), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["summary"] == {"would-install": 12}
    assert not (tmp_path / "webui").exists() or _models(tmp_path / "webui") == {}

    first = run_cli("install", "-f", str(manifest), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["summary"] == {"installed": 12}
    root = tmp_path / "webui"
    for entry in report["entries"]:
        if entry["ref"] in EXPECTED_FOLDERS:
            assert Path(entry["path"]).parent == root / EXPECTED_FOLDERS[entry["ref"]]
    assert (root / "models/Lora/detail_tweaker.safetensors").is_file()
    # The .ckpt entry was converted: only the safetensors remains.
    assert (root / "models/Stable-diffusion/sd-v1-4.safetensors").is_file()
    assert not (root / "models/Stable-diffusion/sd-v1-4.ckpt").exists()
    lock = parse_lock((tmp_path / "models.lock").read_text())
    assert len(lock) == 12 and all(e.sha256 for e in lock.values())

    installed = _models(root)
    started = time.monotonic()
    again = run_cli("install", "-f", str(manifest), "--json")
    elapsed = time.monotonic() - started
    assert again.returncode == 0
    assert json.loads(again.stdout)["summary"] == {"up-to-date": 12}
    assert _models(root) == installed
    assert elapsed < 10  # generous for CI; the benchmark-free target is 2 s for 50 entries


def test_second_run_makes_no_request(run_cli, civitai: DemoServer, tmp_path: Path) -> None:
    manifest = _setup(tmp_path)
    assert run_cli("install", "-f", str(manifest)).returncode == 0
    civitai.clear_requests()
    assert run_cli("install", "-f", str(manifest)).returncode == 0
    assert civitai.requests == []


def test_frozen_detects_drift(run_cli, tmp_path: Path) -> None:
    manifest = _setup(tmp_path)
    assert run_cli("install", "-f", str(manifest), "--frozen").returncode == 2  # no lock yet
    assert run_cli("install", "-f", str(manifest)).returncode == 0
    lock_path = tmp_path / "models.lock"

    # The manifest changed since the lock was written.
    text = manifest.read_text()
    manifest.write_text(text.replace('ref = "7371"', 'ref = "7371"\nfp = "fp32"'))
    proc = run_cli("install", "-f", str(manifest), "--frozen")
    assert proc.returncode == 2 and "7371 changed since the lock" in proc.stderr
    manifest.write_text(text)

    # A locked file is gone, and upstream now serves different bytes under that id.
    dreamshaper = tmp_path / "webui/models/Stable-diffusion/dreamshaper_8.safetensors"
    dreamshaper.unlink()
    locked = lock_path.read_text()
    old_sha = parse_lock(locked)["4384@128713"].sha256
    lock_path.write_text(locked.replace(old_sha, "0" * 64))
    proc = run_cli("install", "-f", str(manifest), "--frozen", "--json")
    assert proc.returncode == 4
    [failed] = [e for e in json.loads(proc.stdout)["entries"] if e["status"] == "failed"]
    assert failed["ref"] == "4384@128713" and "changed upstream" in failed["error"]
    assert not dreamshaper.exists()

    # With the true lock, --frozen puts the missing file back exactly.
    lock_path.write_text(locked)
    proc = run_cli("install", "-f", str(manifest), "--frozen", "--json")
    assert proc.returncode == 0, proc.stderr
    assert hash_file(dreamshaper).sha256 == old_sha


def test_partial_failure_installs_the_others(run_cli, tmp_path: Path) -> None:
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        '[target]\nui = "comfyui"\nroot = "comfy"\n\n'
        '[[model]]\nref = "4384@128713"\n\n'
        '[[model]]\nref = "987654321"\n\n'  # not on Civitai
        '[[model]]\nref = "4201@245598"\n\n'  # early access
        '[[model]]\nref = "7808"\n'
    )
    proc = run_cli("install", "-f", str(manifest), "--json")
    assert proc.returncode in (5, 6)
    entries = {e["ref"]: e for e in json.loads(proc.stdout)["entries"]}
    assert entries["987654321"]["exit_code"] == 5
    assert entries["4201@245598"]["exit_code"] == 6
    assert "Early Access" in entries["4201@245598"]["error"]
    assert entries["4384@128713"]["status"] == "installed"
    assert Path(entries["7808"]["path"]).parent == tmp_path / "comfy/models/embeddings"
    assert "line 8: 987654321" in proc.stderr  # errors name the manifest line
    lock = parse_lock((tmp_path / "models.lock").read_text())
    assert set(lock) == {"4384@128713", "7808"}


def test_bad_manifest_names_the_line(run_cli, tmp_path: Path) -> None:
    manifest = tmp_path / "models.toml"
    manifest.write_text('[[model]]\nref = "4384"\n\n[[model]]\nref = "4384"\nfilez = 1\n')
    proc = run_cli("install", "-f", str(manifest), "--root", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert f"{manifest}:6:" in proc.stderr and "filez" in proc.stderr


def test_export_then_install_on_an_empty_root_rebuilds_the_library(run_cli, tmp_path: Path) -> None:
    manifest = _setup(tmp_path)
    assert run_cli("install", "-f", str(manifest)).returncode == 0
    root = tmp_path / "webui"
    identify = run_cli("identify", str(root), "--ui", "a1111", "--json")
    assert identify.returncode == 0, identify.stderr

    exported = tmp_path / "exported" / "models.toml"
    exported.parent.mkdir()
    proc = run_cli("export", str(root), "--ui", "a1111", "-o", str(exported), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    # The .ckpt converted to safetensors has no Civitai hash: it is the one model skipped.
    assert len(data["entries"]) == 11
    assert [s["path"] for s in data["skipped"]] == ["models/Stable-diffusion/sd-v1-4.safetensors"]
    assert run_cli("export", str(root), "-o", str(exported)).returncode == 2  # no clobbering

    new_root = tmp_path / "rebuilt"
    proc = run_cli("install", "-f", str(exported), "--frozen", "--root", str(new_root), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"] == {"installed": 11}
    original = {k: v for k, v in _models(root).items() if "sd-v1-4" not in k}
    assert _models(new_root) == original
