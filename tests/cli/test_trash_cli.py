"""``sdlib trash``: a model and its sidecars go to the system trash (here the freedesktop
trash under the test's private XDG_DATA_HOME); nothing outside the webUI folder moves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


def _webui(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    root = trees.a1111(tmp_path / "webui")
    model = trees.st(root / "models" / "Lora" / "old.safetensors", "lora_sd15_kohya")
    sidecars = [
        trees.touch(root / "models" / "Lora" / "old.civitai.info", "{}"),
        trees.touch(root / "models" / "Lora" / "old.preview.png", trees.PNG),
    ]
    trees.st(root / "models" / "Lora" / "keep.safetensors", "locon_sd15")
    return root, model, sidecars


def test_help_has_an_example_and_json(run_cli: Any) -> None:
    out = run_cli("trash", "--help")
    assert out.returncode == 0
    assert "sdlib trash " in out.stdout.split("Examples:")[1] and "--json" in out.stdout


@pytest.mark.skipif(os.name != "posix" or os.uname().sysname == "Darwin",
                    reason="reads the freedesktop trash")  # fmt: skip
def test_a_model_goes_to_the_trash_with_its_sidecars(
    run_cli: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root, model, sidecars = _webui(tmp_path)
    out = run_cli("trash", str(model), "--root", str(root), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["moved"][-1] == str(model)  # the model last, after its sidecars
    assert set(data["moved"]) == {str(model), *map(str, sidecars)}
    assert data["folder"] is None
    trash = Path(cli_env["XDG_DATA_HOME"]) / "Trash" / "files"
    assert sorted(p.name for p in trash.iterdir()) == sorted(p.name for p in [model, *sidecars])
    assert not any(p.exists() for p in [model, *sidecars])
    assert (root / "models" / "Lora" / "keep.safetensors").exists()


def test_a_path_outside_the_webui_folder_refuses_everything(run_cli: Any, tmp_path: Path) -> None:
    root, model, _ = _webui(tmp_path)
    outside = trees.st(tmp_path / "elsewhere" / "mine.safetensors", "embedding_sd15")
    link = root / "models" / "Lora" / "escape"
    link.symlink_to(outside.parent, target_is_directory=True)
    for path in (outside, link / "mine.safetensors", root / ".." / "elsewhere" / outside.name):
        out = run_cli("trash", str(model), str(path), "--root", str(root))
        assert out.returncode == 2, out.stderr
        (line,) = out.stderr.splitlines()
        assert line.startswith("sdlib: error: ") and "outside the webUI folder" in line
        assert model.exists() and outside.exists()
    missing = run_cli("trash", str(root / "models" / "Lora" / "nope.safetensors"),
                      "--root", str(root))  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr
