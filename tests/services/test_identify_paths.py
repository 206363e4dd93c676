"""``sdlib.identify_paths``: issue 16 item 1 through the Python API. A script names files the
way a user types them (relative, in a sub-folder, a sub-folder, a file in no webUI) and
gets every model file identified, as ``sdlib identify PATH`` does; ``sdlib.identify`` takes
scanned reports only, so a script had no way to do what the command does.

Expected identities are the demo catalogue's (add_detail.safetensors is model 58390,
version 62833, file 628331); expected hashes are computed here with hashlib.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import sdlib
from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from tests.support import trees

LORA_FILE = 628331  # add_detail.safetensors, version 62833 of model 58390


def _served(civitai: DemoServer) -> Path:
    path = civitai.files[LORA_FILE].path
    assert path is not None
    return path


@pytest.mark.parametrize(
    "arg", ["models/Lora/detail/ad.safetensors", "models/Lora/detail", "models/Lora", "."]
)
def test_relative_paths_inside_a_webui(
    arg: str,
    civitai: DemoServer,
    civitai_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora = root / "models" / "Lora" / "detail" / "ad.safetensors"
    lora.parent.mkdir(parents=True)
    shutil.copyfile(_served(civitai), lora)
    monkeypatch.chdir(root)
    with sdlib.Context(civitai_settings) as ctx:
        report = sdlib.identify_paths(ctx, [arg], previews=False)
    assert isinstance(report, sdlib.IdentifyReport)
    assert [(Path(r.path).resolve(), r.state) for r in report.results] == [
        (lora.resolve(), "identified")
    ]
    (result,) = report.results
    assert (result.model_id, result.version_id, result.file_id) == (58390, 62833, LORA_FILE)
    assert result.sha256 == hashlib.sha256(lora.read_bytes()).hexdigest().upper()
    assert report.exit_code == 0 and report.summary()["identified"] == 1
    # Written beside the file, inside the webUI's folder; it names the version it matched.
    info = json.loads((lora.parent / "ad.civitai.info").read_text(encoding="utf-8"))
    assert info["id"] == 62833


def test_a_file_in_no_webui_and_the_errors_a_script_gets(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> None:
    loose = tmp_path / "downloads" / "x.safetensors"
    loose.parent.mkdir()
    shutil.copyfile(_served(civitai), loose)
    empty = tmp_path / "empty"
    empty.mkdir()
    with sdlib.Context(civitai_settings) as ctx:
        report = sdlib.identify_paths(ctx, [loose], previews=False)
        assert [(r.path, r.state, r.version_id) for r in report.results] == [
            (str(loose), "identified", 62833)
        ]
        assert (loose.parent / "x.civitai.info").is_file()
        with pytest.raises(sdlib.SdlibError) as none_there:
            sdlib.identify_paths(ctx, [empty])
        with pytest.raises(sdlib.SdlibError) as missing:
            sdlib.identify_paths(ctx, [tmp_path / "no-such.safetensors"])
    assert none_there.value.exit_code == 1 and "no model files" in none_there.value.message
    assert missing.value.exit_code == 2
