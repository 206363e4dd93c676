"""`sdlib store init|status`, `sdlib link`, `sdlib unlink` through a subprocess: one file
placed in the store is seen by an A1111 root and a ComfyUI root (their own `sdlib scan`
lists it as an ok model), the config keeps its comments, and unlinking gives both trees back
exactly."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.support import trees
from tests.support.cli import isolated_env, run_sdlib
from tests.support.trees import sha256, st, tree_state

CONFIG = "# my settings: keep this comment\n[network]\nretries = 2\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text(CONFIG, encoding="utf-8")
    return isolated_env(tmp_path, SDLIB_CONFIG=str(config), NO_COLOR="1", COLUMNS="120")


def sdlib(env: dict[str, str], *args: str | os.PathLike[str], code: int = 0) -> str:
    done = run_sdlib(*args, env=env)
    assert done.returncode == code, (done.stdout, done.stderr)
    if code:
        assert done.stderr.startswith("sdlib: error: ") and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr
    return done.stdout


def test_one_store_file_is_seen_by_a1111_and_comfyui(env: dict[str, str], tmp_path: Path) -> None:
    a1111 = trees.a1111(tmp_path / "webui")
    (a1111 / "models" / "Stable-diffusion").mkdir(parents=True)
    comfy = trees.comfyui(tmp_path / "ComfyUI")
    store = tmp_path / "models store"
    before = {root: tree_state(root) for root in (a1111, comfy)}

    made = json.loads(sdlib(env, "store", "init", store, "--json"))
    assert made["path"] == str(store) and (store / "StableDiffusion").is_dir()
    config = Path(env["SDLIB_CONFIG"]).read_text(encoding="utf-8")
    assert config.startswith(CONFIG) and f'path = "{store}"' in config
    model = st(store / "StableDiffusion" / "one model.safetensors", "sd15_pruned_fp16", small=True)

    assert json.loads(sdlib(env, "link", a1111, "--ui", "a1111", "--json"))["method"] == "symlink"
    assert json.loads(sdlib(env, "link", comfy, "--json"))["method"] == "config"

    digest = sha256(model)
    for root, folder in ((a1111, "models/Stable-diffusion"), (comfy, None)):
        report = json.loads(sdlib(env, "scan", root, "--json"))
        models = [f for f in report["files"] if f["role"] == "model"]
        assert len(models) == 1, models
        seen = models[0]
        assert seen["kind"] == "checkpoint" and seen["status"] == ["ok"]
        assert sha256(seen["path"]) == digest  # the very bytes placed in the store
        if folder:
            assert seen["rel"] == f"{folder}/sdlib-store/one model.safetensors"
        assert all(f["status"] == ["ok"] for f in report["files"]), report["files"]

    status = json.loads(sdlib(env, "store", "status", "--json"))
    assert status["files"] == 1 and status["bytes"] == model.stat().st_size
    assert {(link["ui"], link["method"]) for link in status["links"]} == {
        ("a1111", "symlink"), ("comfyui", "config"),
    }  # fmt: skip
    text = sdlib(env, "store", "status")
    assert "StableDiffusion: 1 file," in text and "comfyui, config" in text

    store_before = tree_state(store)
    for root in (a1111, comfy):
        sdlib(env, "unlink", root)
        assert tree_state(root) == before[root]
    assert tree_state(store) == store_before  # unlink never touches the store


def test_errors_are_one_line_with_their_exit_codes(env: dict[str, str], tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    sdlib(env, "link", root, "--ui", "a1111", code=2)  # no store yet
    sdlib(env, "unlink", root, code=5)  # nothing recorded
    sdlib(env, "store", "status", code=2)
    sdlib(env, "store", "init", tmp_path / "not sm", "--adopt", code=2)
    sdlib(env, "store", "init", tmp_path / "store")
    sdlib(env, "link", root, "--ui", "a1111", "--method", "config", code=2)
    if sys.platform != "win32":
        sdlib(env, "link", root, "--ui", "a1111", "--method", "junction", code=2)
    sdlib(env, "link", root, "--ui", "a1111")
    sdlib(env, "link", root, "--ui", "a1111", code=2)  # already linked


def test_adopting_a_stability_matrix_models_folder_makes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    sm = trees.stabilitymatrix(tmp_path / "StabilityMatrix")
    before = tree_state(sm)
    made = json.loads(sdlib(env, "store", "init", sm, "--adopt", "--json"))
    assert made["path"] == str(sm / "Models") and made["made"] == []
    assert tree_state(sm) == before


@pytest.mark.parametrize("args", [("store",), ("store", "init"), ("store", "status"),
                                  ("link",), ("unlink",)])  # fmt: skip
def test_help_has_examples(env: dict[str, str], args: tuple[str, ...]) -> None:
    assert "Examples:" in sdlib(env, *args, "--help")


def test_one_download_into_the_store_is_seen_by_both_webuis(
    run_cli: RunCli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    a1111 = trees.a1111(tmp_path / "webui")
    comfy = trees.comfyui(tmp_path / "ComfyUI")
    store = tmp_path / "store"
    for args in (("store", "init", store), ("link", a1111, "--ui", "a1111"), ("link", comfy)):
        assert run_cli(*map(str, args)).returncode == 0
    got = run_cli("download", "58390", "--root", str(store), "--json")  # the demo's LoRA
    assert got.returncode == 0, got.stderr
    files = [p for p in (store / "Lora").rglob("*.safetensors")]
    assert len(files) == 1  # placed once, in the store's Lora folder (auto-detected)
    digest = sha256(files[0])
    for root in (a1111, comfy):
        report = json.loads(run_cli("scan", str(root), "--json").stdout)
        models = [f for f in report["files"] if f["role"] == "model"]
        assert [(m["kind"], m["status"]) for m in models] == [("lora", ["ok"])]
        assert sha256(models[0]["path"]) == digest


def test_a_download_into_a_linked_root_goes_to_the_store_once(
    run_cli: RunCli, tmp_path: Path
) -> None:
    a1111 = trees.a1111(tmp_path / "webui")
    comfy = trees.comfyui(tmp_path / "ComfyUI")
    store = tmp_path / "store"
    for args in (("store", "init", store), ("link", a1111, "--ui", "a1111"), ("link", comfy)):
        assert run_cli(*map(str, args)).returncode == 0
    got = run_cli("download", "58390", "--root", str(a1111), "--ui", "a1111", "--json")
    assert got.returncode == 0, got.stderr
    placed = list((store / "Lora").rglob("*.safetensors"))
    assert len(placed) == 1  # in the store, not in the webUI's own models/Lora
    assert not [p for p in (a1111 / "models" / "Lora").iterdir() if not p.is_symlink()]
    digest = sha256(placed[0])
    for root in (a1111, comfy):
        report = json.loads(run_cli("scan", str(root), "--json").stdout)
        models = [f for f in report["files"] if f["role"] == "model"]
        assert [(m["kind"], m["status"]) for m in models] == [("lora", ["ok"])]  # listed once
        assert sha256(models[0]["path"]) == digest
    assert run_cli("unlink", str(a1111)).returncode == 0
    again = run_cli("download", "58390", "--root", str(a1111), "--ui", "a1111", "--json")
    assert again.returncode == 0, again.stderr
    assert list((a1111 / "models" / "Lora").rglob("*.safetensors"))  # unlinked: its own folder
