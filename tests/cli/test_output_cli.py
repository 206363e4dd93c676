"""What the CLI prints through a pipe, and the exit codes a user's script relies on.

Every test runs ``python -m sdlib`` in a subprocess: stdout and stderr are pipes there, as in
``sdlib scan | less`` or ``sdlib search x > out.txt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

LONG = "a_rather_long_folder_name_for_character_loras_of_2024"


def _webui(tmp_path: Path) -> Path:
    root = trees.a1111(tmp_path / "webui")
    # A misplaced LoRA deep in folders: its path is far wider than a table cell.
    trees.st(root / "models" / "Stable-diffusion" / LONG / LONG / "detail.safetensors",
             "lora_sd15_kohya")  # fmt: skip
    return root


def test_scan_finding_an_unsafe_pickle_exits_3(run_cli: Any, tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Lora" / "fine.safetensors", "lora_sd15_kohya")
    assert run_cli("scan", str(root)).returncode == 0
    trees.unsafe_pickle(root / "embeddings" / "evil.pt", tmp_path / "PWNED")
    out = run_cli("scan", str(root))
    assert out.returncode == 3, out.stderr
    assert "unsafe-pickle" in out.stdout
    as_json = run_cli("scan", str(root), "--json")
    assert as_json.returncode == 3
    evil = [f for f in json.loads(as_json.stdout)["files"] if f["rel"] == "embeddings/evil.pt"]
    assert "unsafe-pickle" in evil[0]["status"]
    assert not (tmp_path / "PWNED").exists()  # scanned, never loaded


def test_scan_through_a_pipe_is_one_record_per_line(run_cli: Any, tmp_path: Path) -> None:
    root = _webui(tmp_path)
    model = root / "models" / "Stable-diffusion" / LONG / LONG / "detail.safetensors"
    out = run_cli("scan", str(root), env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout
    lines = out.stdout.splitlines()
    assert lines[0].split("\t") == ["status", "kind", "base", "size", "file", "why"]
    (record,) = [line for line in lines if str(model) in line]
    status, kind, base, size, path, why = record.split("\t")
    assert (status, kind, base, path) == ("misplaced", "lora", "sd1", str(model))
    assert size.endswith("iB") and "models/Lora" in why
    # The summary follows the records, unwrapped too, and counts one in the singular.
    assert any(line.startswith("1 file (1 model, ") for line in lines), lines


def test_search_through_a_pipe_is_one_record_per_line(run_cli: Any) -> None:
    out = run_cli("search", "--limit", "20", env={"COLUMNS": "60"})
    assert out.returncode == 0, out.stderr
    models = json.loads(run_cli("search", "--limit", "20", "--json").stdout)
    lines = out.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "name", "type", "base", "downloads", "likes", "updated"]
    assert len(lines) == 1 + len(models) and len(models) > 1
    for line, model in zip(lines[1:], models, strict=True):
        fields = line.split("\t")
        assert len(fields) == 7
        assert (fields[0], fields[1], fields[2]) == (str(model["id"]), model["name"], model["type"])


def test_organize_plan_through_a_pipe_names_full_paths(run_cli: Any, tmp_path: Path) -> None:
    root = _webui(tmp_path)
    model = root / "models" / "Stable-diffusion" / LONG / LONG / "detail.safetensors"
    out = run_cli("organize", str(root), env={"COLUMNS": "60"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split("\t") == ["action", "path", "to or same as", "why"]
    (record,) = [line for line in lines if line.startswith("move\t")]
    _move, path, target, _why = record.split("\t")
    # Whole paths (the sub-folders travel along), never folded or cut.
    lora = root / "models" / "Lora" / LONG / LONG / "detail.safetensors"
    assert (path, target) == (str(model), str(lora))


def test_identify_and_updates_through_a_pipe(run_cli: Any, civitai: Any, tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    ds7 = root / "models" / "Stable-diffusion" / LONG / "ds7.safetensors"
    ds7.parent.mkdir(parents=True)
    source = civitai.files[1091231].path  # DreamShaper 7 (model 4384, version 109123)
    assert source is not None
    ds7.write_bytes(Path(source).read_bytes())
    out = run_cli("identify", str(root), "--no-preview", env={"COLUMNS": "60"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split("\t")[:6] == ["state", "file", "model", "version", "model_id",
                                        "version_id"]  # fmt: skip
    (record,) = [line for line in lines if str(ds7) in line]
    fields = record.split("\t")
    assert (fields[0], fields[1], fields[4], fields[5]) == ("identified", str(ds7), "4384",
                                                           "109123")  # fmt: skip
    assert "ds7.civitai.info" in fields[7]
    updates = run_cli("updates", str(root), env={"COLUMNS": "60"})
    assert updates.returncode == 0, updates.stderr
    (record,) = [line for line in updates.stdout.splitlines() if str(ds7) in line]
    fields = record.split("\t")
    assert (fields[0], fields[1], fields[5]) == ("update-available", str(ds7), "128713")
