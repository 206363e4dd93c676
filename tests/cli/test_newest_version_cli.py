"""The newest version is the latest published one, whatever order Civitai lists them in.

The demo server lists versions in creator order here: DreamShaper 7 (published 2023-06-05)
pinned above DreamShaper 8 (2023-07-30), as a creator can do with Civitai's ``index``.
Every CLI path that picks "the newest" must still pick 8 and never offer 7 as an update.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from sdlib.manifest import parse_lock
from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

RunCli = Any

DS8_FILE, DS7_FILE = 1287131, 1091231


@pytest.fixture
def creator_order(civitai: DemoServer) -> Iterator[DemoServer]:
    civitai.version_order = "creator"
    yield civitai
    civitai.version_order = "newest"


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _sha256(path: Path | None) -> str:
    assert path is not None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_switch_lists_the_older_version_first(creator_order: DemoServer) -> None:
    import httpx2

    listed = httpx2.get(f"{creator_order.url}/api/v1/models/4384").json()["modelVersions"]
    assert [(v["id"], v["index"]) for v in listed] == [(109123, 0), (128713, 1)]
    assert listed[0]["publishedAt"] < listed[1]["publishedAt"]


def test_show_picks_the_newest_and_lists_the_others_newest_first(
    run_cli: RunCli, creator_order: DemoServer
) -> None:
    data = _json(run_cli("show", "4384", "--json", "--no-examples"))
    assert data["version"]["id"] == 128713 and data["version"]["name"] == "8"
    out = run_cli("show", "4384", "--no-examples").stdout
    assert "Version 8 (128713)" in out
    assert "109123" in out.split("Other versions", 1)[1]


def test_download_model_installs_the_newest(
    run_cli: RunCli, creator_order: DemoServer, tmp_path: Path
) -> None:
    proc = run_cli("download", "4384", "--to", str(tmp_path / "out"), "--json", "--no-preview")
    [result] = _json(proc)
    assert result["version_id"] == 128713
    assert _sha256(Path(result["path"])) == _sha256(creator_order.files[DS8_FILE].path)


def test_download_model_skips_an_early_access_version_it_cannot_get(
    run_cli: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    """Realistic Vision's newest version (245598) is in early access until 2030: without
    access the download answers 403. ``download MODEL`` installs the newest version anyone
    can download and says which newer one it skipped (issue 16)."""
    proc = run_cli("download", "4201", "--to", str(tmp_path / "out"), "--json", "--no-preview")
    [result] = _json(proc)
    assert result["version_id"] == 130072
    assert _sha256(Path(result["path"])) == _sha256(civitai.files[130072_1].path)
    assert "245598" in proc.stderr and "early access until 2030-01-01" in proc.stderr
    # Naming the version still asks for it, and the refusal is said as such.
    named = run_cli("download", "4201@245598", "--to", str(tmp_path / "ea"), "--no-preview")
    assert named.returncode == 6 and "Early Access" in named.stderr


def test_a_manifest_without_a_version_installs_the_newest(
    run_cli: RunCli, creator_order: DemoServer, tmp_path: Path
) -> None:
    manifest = tmp_path / "models.toml"
    manifest.write_text('[target]\nui = "comfyui"\nroot = "comfy"\n\n[[model]]\nref = "4384"\n')
    data = _json(run_cli("install", "-f", str(manifest), "--json"))
    [entry] = data["entries"]
    assert _sha256(Path(entry["path"])) == _sha256(creator_order.files[DS8_FILE].path)
    assert parse_lock((tmp_path / "models.lock").read_text())["4384"].version_id == 128713


def test_updates_never_offer_the_pinned_older_version(
    run_cli: RunCli, creator_order: DemoServer, tmp_path: Path
) -> None:
    root = trees.a1111(tmp_path / "webui")
    for fid, rel in ((DS8_FILE, "models/Stable-diffusion/ds8.safetensors"),
                     (DS7_FILE, "models/Stable-diffusion/ds7.safetensors")):  # fmt: skip
        path = creator_order.files[fid].path
        assert path is not None
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / rel)
    identified = run_cli("identify", str(root), "--json", "--no-preview")
    assert identified.returncode == 0, identified.stderr
    report = _json(run_cli("updates", str(root), "--refresh", "--json"))
    by_name = {Path(f["path"]).name: f for f in report["files"]}
    assert by_name["ds8.safetensors"]["status"] == "up-to-date"
    assert by_name["ds8.safetensors"]["newer"] == []
    assert by_name["ds7.safetensors"]["status"] == "update-available"
    assert [n["version_id"] for n in by_name["ds7.safetensors"]["newer"]] == [128713]
