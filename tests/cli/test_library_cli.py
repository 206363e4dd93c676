"""``sdlib scan / identify / organize / updates`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

COMMANDS = ("scan", "identify", "organize", "updates")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_and_json(run_cli: Any, command: str) -> None:
    out = run_cli(command, "--help")
    assert out.returncode == 0
    assert f"sdlib {command} " in out.stdout.split("Examples:")[1]
    assert "--json" in out.stdout


def test_listed_in_the_main_help(run_cli: Any) -> None:
    out = run_cli("--help").stdout
    assert all(c in out for c in COMMANDS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scan",), "give the webUI folder"),
        (("scan", "{tmp}"), "pass --ui"),
        (("scan", "{tmp}", "--ui", "photoshop"), "unknown webUI"),
        (("organize", "{root}", "--apply", "--undo"), "not both"),
        (("organize", "{root}", "--undo"), "no organize run to undo"),
        (("updates", "{tmp}/missing"), "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_cli: Any, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    root = trees.a1111(tmp_path / "webui")
    argv = [a.format(tmp=tmp_path / "empty", root=root) for a in args]
    (tmp_path / "empty").mkdir()
    out = run_cli(*argv)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_scan_table_and_json(run_cli: Any, tmp_path: Path) -> None:
    root = tmp_path / "webui"
    expected = trees.messy_a1111(root, tmp_path / "outside")
    table = run_cli("scan", str(root))
    # embeddings/broken.safetensors is corrupt (1), embeddings/evil.pt an unsafe pickle (3)
    assert table.returncode == 3, table.stderr
    assert "misplaced" in table.stdout and "belongs in models/Lora" in table.stdout
    assert "dreamshaper 8 [final]" not in table.stdout  # ok files are not listed...
    assert "[final]" in run_cli("scan", str(root), "--all").stdout  # ...unless --all
    assert "sdlib organize" in table.stdout
    data = json.loads(run_cli("scan", str(root), "--json").stdout)
    assert set(data) == {"root", "ui", "index", "files", "summary"}
    assert data["ui"] == "a1111" and Path(data["index"]).name == "library.sqlite"
    files = {f["rel"]: f for f in data["files"]}
    assert {rel: set(f["status"]) for rel, f in files.items()} == expected
    lora = files["models/Stable-diffusion/add_detail.safetensors"]
    for key in ("path", "size", "kind", "base", "container", "precision", "sha256", "status",
                "civitai", "notes", "sidecars"):  # fmt: skip
        assert key in lora
    assert (lora["kind"], lora["base"], lora["container"]) == ("lora", "sd1", "safetensors")
    assert files["models/Lora/copy of style.safetensors"]["sha256"]
    assert data["summary"]["by_status"]["misplaced"] == 2


def test_identify_then_updates(run_cli: Any, civitai: DemoServer, tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    for fid, rel in ((1091231, "models/Stable-diffusion/ds7.safetensors"),
                     (628331, "models/Lora/add_detail.safetensors")):  # fmt: skip
        path = civitai.files[fid].path
        assert path is not None
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / rel)
    trees.st(root / "models" / "Lora" / "mine.safetensors", "lokr_sdxl")
    out = run_cli("identify", str(root), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["identified"] == 2 and data["summary"]["unidentified"] == 1
    ds7 = next(f for f in data["files"] if f["path"].endswith("ds7.safetensors"))
    assert (ds7["model_id"], ds7["version_id"], ds7["state"]) == (4384, 109123, "identified")
    assert any(s.endswith("ds7.civitai.info") for s in ds7["sidecars"])
    human = run_cli("identify", str(root / "models" / "Lora" / "add_detail.safetensors"))
    assert human.returncode == 0 and "Detail Tweaker" in human.stdout
    scanned = json.loads(run_cli("scan", str(root), "--json").stdout)
    civ = next(f["civitai"] for f in scanned["files"] if f["rel"].endswith("ds7.safetensors"))
    assert civ["version_id"] == 109123 and civ["model_id"] == 4384
    updates = run_cli("updates", str(root), "--json")
    assert updates.returncode == 0, updates.stderr
    report = json.loads(updates.stdout)
    ds7u = next(f for f in report["files"] if f["path"].endswith("ds7.safetensors"))
    assert ds7u["status"] == "update-available" and ds7u["newer"][0]["version_id"] == 128713
    text = run_cli("updates", str(root)).stdout
    assert "update" in text and "1 file not identified" in text
    # Civitai failing: partial results, exit 7.
    civitai.add_fault("500", match="/api/v1/models")
    failing = run_cli("updates", str(root), "--refresh", "--json")
    assert failing.returncode == 7
    assert json.loads(failing.stdout)["summary"]["errors"]


def test_identify_network_failure_exit_code(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Lora" / "mine.safetensors", "lokr_sdxl")
    civitai.add_fault("503", match="/api/v1/model-versions", retry_after=0)
    out = run_cli("identify", str(root), "--json")
    assert out.returncode == 7
    (f,) = json.loads(out.stdout)["files"]
    assert f["state"] == "error" and f["error"]


def test_organize_plan_apply_undo(run_cli: Any, tmp_path: Path) -> None:
    root = trees.small_tree(tmp_path / "webui")
    before = trees.tree_state(root)
    plan = run_cli("organize", str(root), "--by-base", "--json")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert data["action"] == "plan" and data["summary"]["move"] > 10
    assert trees.tree_state(root) == before  # a plan changes nothing
    move = next(a for a in data["actions"] if a["action"] == "move")
    assert {"path", "dst", "path_rel", "dst_rel", "why"} <= set(move)
    human = run_cli("organize", str(root), "--by-base")
    assert "model [v1].safetensors" in human.stdout and "--apply" in human.stdout
    applied = run_cli("organize", str(root), "--by-base", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["done"] == len(result["actions"]) and not result["failed"]
    assert set(result["after"]["by_status"]) == {"ok", "duplicate"}  # kept: no --dedupe
    assert Path(result["journal"]).is_file()
    nothing = run_cli("organize", str(root), "--by-base", "--apply")
    assert "nothing to do" in nothing.stdout
    undone = run_cli("organize", str(root), "--undo")
    assert undone.returncode == 0 and "undid" in undone.stdout
    assert trees.tree_state(root) == before


def test_organize_undo_needs_only_the_root(run_cli: Any, tmp_path: Path) -> None:
    """A folder sdlib cannot recognise needs --ui to plan; undo reads it from the journal."""
    root = tmp_path / "webui"  # A1111's and ComfyUI's model folders, no marker files:
    trees.st(root / "models" / "Stable-diffusion" / "detail.safetensors", "lora_sd15_kohya")
    (root / "models" / "Lora").mkdir(parents=True)
    (root / "models" / "checkpoints").mkdir()  # so not auto-detected
    assert "pass --ui" in run_cli("organize", str(root)).stderr
    applied = run_cli("organize", str(root), "--ui", "a1111", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    moved = root / "models" / "Lora" / "detail.safetensors"
    assert (
        moved.is_file()
        and not (root / "models" / "Stable-diffusion" / "detail.safetensors").exists()
    )
    undone = run_cli("organize", str(root), "--undo", "--json")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["action"] == "undo"
    assert (root / "models" / "Stable-diffusion" / "detail.safetensors").is_file()
    assert not moved.exists()
