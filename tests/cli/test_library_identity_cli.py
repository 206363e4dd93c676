"""The library sees everything the webUI loads and never loses a file's identity (issue 16
items 2 and 10), as a user runs sdlib (subprocesses against the demo server)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


def _config(cli_env: dict[str, str], text: str) -> None:
    """Append to the private config file ``run_cli`` runs sdlib with."""
    with open(cli_env["SDLIB_CONFIG"], "a", encoding="utf-8") as fh:
        fh.write(text)


def _files(out: Any) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    return {f["rel"]: f for f in json.loads(out.stdout)["files"]}


def test_a_download_folder_hides_nothing_the_webui_loads(
    run_cli: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora = root / "models" / "Lora"
    trees.st(lora / "top.safetensors", "lora_sd15_kohya")
    trees.st(lora / "other" / "style.safetensors", "lokr_sdxl")
    trees.st(lora / "civitai" / "new.safetensors", "lora_sdxl_kohya")
    trees.st(root / "models" / "Stable-diffusion" / "stray.safetensors", "lora_flux_kohya")
    _config(cli_env, '\n[library.folders]\nlora = "models/Lora/civitai"\n')
    files = _files(run_cli("scan", str(root), "--json", "--all"))
    for rel in ("models/Lora/top.safetensors", "models/Lora/other/style.safetensors",
                "models/Lora/civitai/new.safetensors"):  # fmt: skip
        assert files[rel]["status"] == ["ok"], (rel, files[rel]["notes"])
    stray = files["models/Stable-diffusion/stray.safetensors"]
    assert stray["status"] == ["misplaced"]  # new places for a LoRA: the download folder
    assert "belongs in models/Lora/civitai" in stray["notes"][0]
    plan = run_cli("organize", str(root), "--json")
    assert plan.returncode == 0, plan.stderr
    moved = {a["path_rel"] for a in json.loads(plan.stdout)["actions"] if a["action"] == "move"}
    assert moved == {"models/Stable-diffusion/stray.safetensors"}
    export = run_cli("export", str(root), "-o", str(tmp_path / "models.toml"), "--json")
    assert export.returncode == 0, export.stderr
    skipped = {s["path"] for s in json.loads(export.stdout)["skipped"]}
    assert {"models/Lora/top.safetensors", "models/Lora/other/style.safetensors"} <= skipped


def test_a_download_folder_outside_the_webuis_folders_is_read_too(
    run_cli: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Lora" / "old.safetensors", "lora_sd15_kohya")
    elsewhere = tmp_path / "my-loras"
    trees.st(elsewhere / "mine.safetensors", "lora_sdxl_kohya")
    _config(cli_env, f'\n[library.folders]\nlora = "{elsewhere.as_posix()}"\n')
    files = _files(run_cli("scan", str(root), "--json", "--all"))
    assert files["models/Lora/old.safetensors"]["status"] == ["ok"]
    mine = next(f for rel, f in files.items() if rel.endswith("mine.safetensors"))
    assert mine["status"] == ["ok"] and mine["kind"] == "lora"


def test_a_sidecar_identity_is_shown_and_used_by_updates(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    """A Civitai Helper user's DreamShaper 7 with its .civitai.info: scan shows it
    identified, updates offers 8, without identify having run."""
    root = trees.a1111(tmp_path / "webui")
    source = civitai.files[1091231].path  # DreamShaper 7's file (sdlib/demo/catalogue.py)
    assert source is not None
    target = root / "models" / "Stable-diffusion" / "ds7.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    sha = trees.sha256(target)
    info = {
        "id": 109123, "modelId": 4384, "name": "7", "baseModel": "SD 1.5",
        "model": {"name": "DreamShaper", "type": "Checkpoint", "nsfw": False, "poi": False},
        "files": [{"id": 1091231, "name": "dreamshaper_7.safetensors", "type": "Model",
                   "sizeKB": target.stat().st_size / 1024, "primary": True,
                   "hashes": {"SHA256": sha, "AutoV2": sha[:10]}}],
        "images": [], "stats": {"downloadCount": 1},
    }  # fmt: skip
    target.with_name("ds7.civitai.info").write_text(json.dumps(info, indent=4), "utf-8")
    ds7 = _files(run_cli("scan", str(root), "--json"))["models/Stable-diffusion/ds7.safetensors"]
    assert ds7["civitai"]["version_id"] == 109123 and ds7["civitai"]["matched_by"] == "sidecar"
    updates = run_cli("updates", str(root), "--json")
    assert updates.returncode == 0, updates.stderr
    (row,) = json.loads(updates.stdout)["files"]
    assert row["status"] == "update-available" and row["newer"][0]["version_id"] == 128713


def test_a_download_is_known_to_updates_at_once(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    """DreamShaper 7 downloaded by sdlib: updates offers 8 (sdlib/demo/catalogue.py) with no
    identify and no scan in between; scan shows the file identified by the download."""
    root = tmp_path / "webui"
    got = run_cli("download", "4384@109123", "--root", str(root), "--ui", "a1111", "--json")
    assert got.returncode == 0, got.stderr
    [result] = json.loads(got.stdout)
    updates = run_cli("updates", str(root), "--ui", "a1111", "--json")
    assert updates.returncode == 0, updates.stderr
    (row,) = json.loads(updates.stdout)["files"]
    assert (row["model_id"], row["version_id"], row["version_name"]) == (4384, 109123, "7")
    assert row["status"] == "update-available" and row["newer"][0]["version_id"] == 128713
    rel = Path(result["path"]).relative_to(root).as_posix()
    scanned = _files(run_cli("scan", str(root), "--ui", "a1111", "--json"))[rel]
    civ = scanned["civitai"]
    assert (civ["model_id"], civ["version_id"], civ["file_id"]) == (4384, 109123, 1091231)
    assert (civ["model_name"], civ["base_model"], civ["matched_by"]) == (
        "DreamShaper", "SD 1.5", "download",
    )  # fmt: skip
    assert scanned["identified"] == "identified"
    assert scanned["sha256"] == trees.sha256(result["path"]).upper()
    assert scanned["verification"]["status"] == "verified"
    assert scanned["verification"]["disagreements"] == []


def test_a_secondary_hash_that_disagreed_is_kept_in_the_index(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    lora_file = 628331  # add_detail.safetensors (demo catalogue)
    civitai.add_fault("hash-crc32-wrong", file_id=lora_file)
    published = civitai.published_hashes(lora_file)["CRC32"]
    root = tmp_path / "webui"
    got = run_cli("download", "58390", "--root", str(root), "--ui", "a1111", "--json")
    assert got.returncode == 0, got.stderr
    [result] = json.loads(got.stdout)
    rel = Path(result["path"]).relative_to(root).as_posix()
    scanned = _files(run_cli("scan", str(root), "--ui", "a1111", "--json"))[rel]
    verification = scanned["verification"]
    assert (verification["status"], verification["decided_by"]) == ("verified", "SHA256")
    [bad] = verification["disagreements"]
    assert (bad["hash"], bad["published"]) == ("CRC32", published)
    assert scanned["civitai"]["file_id"] == lora_file


def _two_copies(civitai: DemoServer, folder: Path) -> tuple[Path, Path]:
    """add_detail.safetensors (demo file 628331) twice, the copy with another mtime."""
    source = civitai.files[628331].path
    assert source is not None
    a, b = folder / "a.safetensors", folder / "sub" / "b.safetensors"
    b.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, a)
    shutil.copyfile(source, b)
    os.utime(b, ns=(1_600_000_000_000_000_000,) * 2)
    return a, b


def _versions(run_cli: Any, root: Path) -> dict[str, Any]:
    files = _files(run_cli("scan", str(root), "--json"))
    return {rel: (f["civitai"] or {}).get("version_id") for rel, f in files.items()
            if f["role"] == "model"}  # fmt: skip


def test_identity_survives_organize_apply_and_undo(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    root = trees.a1111(tmp_path / "webui")
    _two_copies(civitai, root / "models" / "Lora")
    assert run_cli("identify", str(root)).returncode == 0
    identified = _versions(run_cli, root)
    assert set(identified.values()) == {62833}  # add_detail's version in the demo catalogue
    applied = run_cli("organize", str(root), "--dedupe", "hardlink", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["done"] >= 1
    assert _versions(run_cli, root) == identified
    undone = run_cli("organize", str(root), "--undo")
    assert undone.returncode == 0, undone.stderr
    assert _versions(run_cli, root) == identified


def test_dedupe_delete_after_identify_in_a_stability_matrix_folder(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    """Copies identified at different times (an older sdlib stamped each .cm-info.json with
    the time it wrote it; Stability Matrix does too) have sidecars that differ in bytes but
    describe one version, so the duplicate can go."""
    root = trees.stabilitymatrix(tmp_path / "Data")
    a, b = _two_copies(civitai, root / "Models" / "Lora")
    assert run_cli("identify", str(root)).returncode == 0
    sidecars = [p.with_name(p.stem + ".cm-info.json") for p in (a, b)]
    stamps = {json.loads(p.read_text())["ImportedAt"] for p in sidecars}
    assert len(stamps) == 1  # identify now gives identical copies identical sidecars
    later = json.loads(sidecars[1].read_text())
    later["ImportedAt"] = "2026-01-02T03:04:05+00:00"  # as a run on another day left it
    sidecars[1].write_text(json.dumps(later, indent=4))
    applied = run_cli("organize", str(root), "--dedupe", "delete", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    assert a.is_file() and not b.exists()
    assert not any(p.name.startswith("b.") for p in b.parent.iterdir())
    assert run_cli("organize", str(root), "--undo").returncode == 0
    assert b.is_file() and b.with_name("b.cm-info.json").is_file()
