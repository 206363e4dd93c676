"""``identify PATH`` for every form of PATH a user types (issue 16, item 1): a relative file
path, a file in a sub-folder, a sub-folder, relative or absolute. Each used to end with
"0 identified, 0 unidentified, 0 errors, 0 skipped" and exit 0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sdlib.demo.server import DemoServer
from tests.support import trees
from tests.support.cli import run_sdlib

LORA = "add_detail.safetensors"


def _webui(civitai: DemoServer, tmp_path: Path) -> tuple[Path, Path]:
    root = trees.a1111(tmp_path / "webui")
    served = next(f for f in civitai.files.values() if f.spec.name == LORA)
    assert served.path is not None
    lora = root / "models" / "Lora" / "detail" / "ad.safetensors"
    lora.parent.mkdir(parents=True)
    shutil.copyfile(served.path, lora)
    return root, lora


@pytest.mark.parametrize(
    "arg",
    [
        "models/Lora/detail/ad.safetensors",  # relative file in a sub-folder
        "models/Lora/detail",  # relative sub-folder
        "models/Lora",  # a kind folder
        "ABS_FILE",
        "ABS_DIR",
    ],
)
def test_identify_finds_the_file_whatever_the_path(
    arg: str, civitai: DemoServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root, lora = _webui(civitai, tmp_path)
    arg = {"ABS_FILE": str(lora), "ABS_DIR": str(lora.parent)}.get(arg, arg)
    done = run_sdlib("identify", arg, "--no-preview", "--json", env=cli_env, cwd=root)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [(Path(f["path"]).name, f["state"]) for f in data["files"]] == [
        ("ad.safetensors", "identified")
    ]
    assert data["files"][0]["version_id"] == 62833  # the demo catalogue's add_detail v1
    # Inside the webUI folder, so its sidecars are written beside it.
    assert (lora.parent / "ad.civitai.info").is_file()


def test_a_path_with_no_models_says_so(cli_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    done = run_sdlib("identify", str(empty), env=cli_env)
    assert done.returncode == 1
    assert "no model files" in done.stderr
