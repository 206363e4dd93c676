"""After `sdlib download`, `install -f` and `organize --apply/--undo`, running webUIs set up as
[webui.NAME] are asked to rescan exactly the lists that changed; a webUI that is down or
refuses is one stderr line and never changes the exit code. The webUI is a fake A1111 API
on 127.0.0.1 (tests/support/fake_webui.py), the models come from the demo server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from tests.support import trees
from tests.support.fake_webui import FakeWebui, closed_port_url

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

LORA = "58390"  # Detail Tweaker LoRA on the demo server
CHECKPOINT = "4384@128713"  # DreamShaper 8


def configure(env: dict[str, str], text: str) -> None:
    config = Path(env["SDLIB_CONFIG"])
    config.write_text(config.read_text() + text)
    config.chmod(0o600)  # it may hold a password: no warning line in the way


def webui_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sdlib: webui ")]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return trees.a1111(tmp_path / "webui")


def test_a_lora_download_refreshes_loras_only_with_basic_auth_there_only(
    run_cli: Any, cli_env: dict[str, str], civitai: DemoServer, root: Path
) -> None:
    with FakeWebui(login=("me", "s3cret")) as ui:
        configure(cli_env, f'[webui.a1111]\nurl = "{ui.url}"\nusername = "me"\n'
                           'password = "s3cret"\n')  # fmt: skip
        proc = run_cli("download", LORA, "--ui", "a1111", "--root", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)  # stdout stays one JSON document
    assert Path(result["path"]).parent == root / "models" / "Lora"
    assert ui.calls == ["POST /sdapi/v1/refresh-loras"]
    assert [s.authorization for s in ui.seen] == [ui.basic()]
    assert civitai.requests and not any(r.authorization for r in civitai.requests)
    assert webui_lines(proc.stderr) == [f"sdlib: webui a1111 ({ui.url}): refreshed LoRAs"]


def test_a_checkpoint_refreshes_checkpoints_and_already_present_refreshes_nothing(
    run_cli: Any, cli_env: dict[str, str], root: Path
) -> None:
    with FakeWebui() as ui:
        configure(cli_env, f'[webui.forge]\nurl = "{ui.url}"\n')
        first = run_cli("download", CHECKPOINT, "--ui", "a1111", "--root", str(root))
        assert first.returncode == 0, first.stderr
        assert ui.calls == ["POST /sdapi/v1/refresh-checkpoints"]
        again = run_cli("download", CHECKPOINT, "--ui", "a1111", "--root", str(root))
    assert again.returncode == 0 and "already present" in again.stdout
    assert ui.calls == ["POST /sdapi/v1/refresh-checkpoints"]  # nothing changed the 2nd time
    assert webui_lines(again.stderr) == []


def test_a_webui_that_is_down_is_one_line_and_the_download_succeeds(
    run_cli: Any, cli_env: dict[str, str], root: Path
) -> None:
    url = closed_port_url()
    configure(cli_env, f'[webui.forge]\nurl = "{url}"\n')
    proc = run_cli("download", LORA, "--ui", "a1111", "--root", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    assert (root / "models" / "Lora").is_dir() and json.loads(proc.stdout)[0]["verified"]
    [line] = webui_lines(proc.stderr)
    assert line.startswith(f"sdlib: webui forge ({url}): not running")
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr


def test_401_is_one_line_and_the_download_succeeds(
    run_cli: Any, cli_env: dict[str, str], root: Path
) -> None:
    with FakeWebui(status=401) as ui:
        configure(cli_env, f'[webui.a1111]\nurl = "{ui.url}"\n')
        proc = run_cli("download", LORA, "--ui", "a1111", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert ui.calls == ["POST /sdapi/v1/refresh-loras"]
    [line] = webui_lines(proc.stderr)
    assert "401" in line and "username and password" in line


def test_no_refresh_makes_no_call(run_cli: Any, cli_env: dict[str, str], root: Path) -> None:
    with FakeWebui() as ui:
        configure(cli_env, f'[webui.a1111]\nurl = "{ui.url}"\n')
        proc = run_cli("download", LORA, "--ui", "a1111", "--root", str(root), "--no-refresh")
    assert proc.returncode == 0, proc.stderr
    assert ui.calls == [] and webui_lines(proc.stderr) == []


def test_comfyui_is_said_once_and_sdnext_gets_its_own_calls(
    run_cli: Any, cli_env: dict[str, str], root: Path
) -> None:
    with FakeWebui() as sdnext:
        configure(cli_env, f'[webui.comfy]\nurl = "{closed_port_url()}"\nui = "comfyui"\n\n'
                           f'[webui.sdnext]\nurl = "{sdnext.url}"\n')  # fmt: skip
        proc = run_cli("download", LORA, CHECKPOINT, "--ui", "a1111", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert sdnext.calls == ["POST /sdapi/v1/refresh-checkpoints", "POST /sdapi/v1/refresh-loras"]
    comfy, sd = webui_lines(proc.stderr)
    assert comfy.startswith("sdlib: webui comfy (") and "nothing to call" in comfy
    assert sd.endswith("refreshed checkpoints, LoRAs")


def test_install_from_a_manifest_refreshes_once_for_everything_installed(
    run_cli: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        '[target]\nui = "a1111"\nroot = "./webui"\n\n'
        f'[[model]]\nref = "{LORA}"\n\n[[model]]\nref = "7808@9536"\n'  # a LoRA, an embedding
    )
    trees.a1111(tmp_path / "webui")
    with FakeWebui() as ui:
        configure(cli_env, f'[webui.a1111]\nurl = "{ui.url}"\n')
        dry = run_cli("install", "-f", str(manifest), "--dry-run")
        assert dry.returncode == 0 and ui.calls == []  # a plan changes nothing
        proc = run_cli("install", "-f", str(manifest), "--json")
        assert proc.returncode == 0, proc.stderr
        assert sorted(ui.calls) == ["POST /sdapi/v1/refresh-embeddings",
                                    "POST /sdapi/v1/refresh-loras"]  # fmt: skip
        again = run_cli("install", "-f", str(manifest))  # up to date: nothing changed
    assert again.returncode == 0 and len(ui.calls) == 2


def test_organize_apply_and_undo_refresh_both_ends_of_a_move(
    run_cli: Any, cli_env: dict[str, str], root: Path
) -> None:
    # A LoRA in the checkpoint folder: --apply moves it to models/Lora, --undo back.
    trees.st(root / "models" / "Stable-diffusion" / "detail.safetensors", "lora_sd15_kohya")
    both = ["POST /sdapi/v1/refresh-checkpoints", "POST /sdapi/v1/refresh-loras"]
    with FakeWebui() as ui:
        configure(cli_env, f'[webui.a1111]\nurl = "{ui.url}"\n')
        plan = run_cli("organize", str(root))
        assert plan.returncode == 0 and ui.calls == []
        applied = run_cli("organize", str(root), "--apply")
        assert applied.returncode == 0, applied.stderr
        assert (root / "models" / "Lora" / "detail.safetensors").is_file(), applied.stdout
        assert ui.calls == both
        undone = run_cli("organize", str(root), "--undo", "--no-refresh")
        assert undone.returncode == 0 and ui.calls == both
        applied = run_cli("organize", str(root), "--apply", "--json")
        assert json.loads(applied.stdout)["done"] and ui.calls == both + both


def test_help_names_the_flag(run_cli: Any) -> None:
    for command in ("download", "install", "organize"):
        assert "--no-refresh" in run_cli(command, "--help").stdout


def test_config_show_lists_the_webuis_without_their_password(
    run_cli: Any, cli_env: dict[str, str]
) -> None:
    configure(cli_env, '[webui.forge]\nurl = "http://127.0.0.1:7860"\nusername = "me"\n'
                       'password = "s3cret"\n')  # fmt: skip
    shown = run_cli("config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["webui"] == {"forge": {
        "url": "http://127.0.0.1:7860", "ui": "forge", "username": "me", "password": "***",
        "timeout": 2.0}}  # fmt: skip
    text = run_cli("config", "show").stdout
    assert "[webui.forge]" in text and "s3cret" not in text + shown.stdout
