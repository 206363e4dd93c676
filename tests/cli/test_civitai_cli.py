"""``sdlib search``, ``show``, ``config`` and ``demo-server`` as a user runs them: a subprocess
against the local Civitai-compatible server."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
import tomllib

from sdlib.demo.server import DemoServer
from tests.support.cli import run_sdlib, sdlib_argv

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

RunCli = Any  # the run_cli fixture from conftest


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    *retries, last = result.stderr.strip().splitlines()
    assert last.startswith("sdlib: error: "), result.stderr
    # Before it, at most one line per retry, each said before its wait.
    assert all(re.fullmatch(r"sdlib: \S+ .+; retry \d of \d in \d+ s", r) for r in retries)
    assert "Traceback" not in result.stderr
    return last


# --- search ----------------------------------------------------------------------------------


def test_search_table(run_cli: RunCli) -> None:
    result = run_cli("search", "dream")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["id", "name", "type", "base", "downloads", "likes", "updated"]
    assert "4384" in result.stdout and "DreamShaper" in result.stdout
    assert "2023-07-30" in result.stdout


def test_search_json_with_filters(run_cli: RunCli, civitai: DemoServer) -> None:
    data = _json(run_cli("search", "--type", "lora", "--type", "lycoris", "--base", "sd1",
                         "--sort", "downloads", "--json"))  # fmt: skip
    assert [m["id"] for m in data] == [58390, 7371]
    assert data[0]["kind"] == "lora" and data[0]["versions"][0]["files"][0]["hashes"]["SHA256"]
    request = next(r for r in civitai.requests if r.path.startswith("/api/v1/models?"))
    url = httpx2.URL(request.path)
    assert url.params.get_list("types") == ["LORA", "LoCon"]
    assert "SD 1.5" in url.params.get_list("baseModels")
    assert url.params["sort"] == "Most Downloaded"


def test_search_pages_through_cursors(run_cli: RunCli, civitai: DemoServer) -> None:
    data = _json(run_cli("search", "--limit", "200", "--json"))
    assert len(data) == len({m["id"] for m in data}) >= 12
    few = _json(run_cli("search", "--limit", "3", "--json"))
    assert len(few) == 3


def test_search_nsfw_and_period(run_cli: RunCli) -> None:
    sfw = {m["id"] for m in _json(run_cli("search", "--json"))}
    nsfw = {m["id"] for m in _json(run_cli("search", "--nsfw", "--limit", "100", "--json"))}
    assert 6424 in nsfw and 6424 not in sfw
    assert [m["id"] for m in _json(run_cli("search", "--period", "month", "--json"))] == [4201]
    empty = run_cli("search", "zzzz-nothing")
    assert empty.returncode == 0 and "No models found" in empty.stdout


@pytest.mark.parametrize(
    "args", [("--type", "spaceship"), ("--sort", "best"), ("--period", "decade")]
)
def test_search_usage_errors_exit_2(run_cli: RunCli, args: tuple[str, ...]) -> None:
    assert args[1] in _error(run_cli("search", *args), 2)


# --- show ------------------------------------------------------------------------------------


def test_show_human(run_cli: RunCli) -> None:
    result = run_cli("show", "4384@128713")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("DreamShaper", "urn:air:sd1:checkpoint:civitai:4384@128713", "CLIP skip 2",
                     "DPM++ 2M Karras", "dreamshaper_8.ckpt", "PickleTensor", "pruned", "full",
                     "SHA256", "AutoV3", "pickle scan Success", "Other versions"):  # fmt: skip
        assert expected in out, expected


def test_show_json_for_every_ref_form(run_cli: RunCli, civitai: DemoServer) -> None:
    refs = [
        "4384@128713",
        "https://civitai.com/models/4384/dreamshaper?modelVersionId=128713",
        "https://civitai.red/models/4384?modelVersionId=128713",
        "https://civitai.com/api/download/models/128713",
        "urn:air:sd1:checkpoint:civitai:4384@128713",
        f"{civitai.url}/models/4384?modelVersionId=128713",
    ]
    for ref in refs:
        data = _json(run_cli("show", ref, "--json"))
        assert data["model"]["id"] == 4384 and data["version"]["id"] == 128713, ref
        assert data["recommended"]["clip_skip"] == 2
    data = _json(run_cli("show", "7808", "--json", "--no-examples"))
    assert data["version"]["trained_words"] == ["easynegative"]
    assert data["version"]["air"] == "urn:air:sd1:embedding:civitai:7808@9536"
    data = _json(run_cli("show", "urn:air:sd1:checkpoint:civitai:4384@128713+1287132", "--json"))
    assert data["file_id"] == 1287132


def test_show_early_access_and_archived(run_cli: RunCli) -> None:
    out = run_cli("show", "4201").stdout
    assert "Early access until 2030-01-01" in out
    data = _json(run_cli("show", "3666", "--json"))
    assert data["model"]["mode"] == "Archived" and data["version"]["files"] == []


def test_show_errors_and_exit_codes(run_cli: RunCli, civitai: DemoServer) -> None:
    assert "not found" in _error(run_cli("show", "424242"), 5)
    assert "not a Civitai model reference" in _error(run_cli("show", "dreamshaper"), 2)
    civitai.add_fault("401", match="/api/v1/models/")
    assert "CIVITAI_TOKEN" in _error(run_cli("show", "4384"), 6)
    civitai.reset()
    civitai.add_fault("403-early", match="/api/v1/models/", deadline="2031-05-01T00:00:00.000Z")
    assert "Early Access until 2031-05-01" in _error(run_cli("show", "4384"), 6)
    civitai.reset()
    civitai.add_fault("403", match="/api/v1/models/")
    assert "access denied" in _error(run_cli("show", "4384"), 6)
    civitai.reset()
    civitai.add_fault("410", match="/api/v1/models/")
    assert "archived" in _error(run_cli("show", "4384"), 5)
    civitai.reset()
    civitai.add_fault("404", match="/api/v1/models/")
    assert "not found" in _error(run_cli("show", "4384"), 5)


def test_network_failures_exit_7_after_retries(run_cli: RunCli, civitai: DemoServer) -> None:
    civitai.add_fault("429")
    line = _error(run_cli("search", "x"), 7)
    assert "rate limiting" in line
    hits = [r for r in civitai.requests if r.path.startswith("/api/v1/models")]
    assert len(hits) == 3  # retries = 2 in the test config
    civitai.reset()
    civitai.add_fault("503", retry_after=0)
    assert "503" in _error(run_cli("show", "4384"), 7)
    civitai.reset()
    civitai.add_fault("html")
    assert "HTML" in _error(run_cli("show", "4384"), 7)


def test_retries_recover(run_cli: RunCli, civitai: DemoServer) -> None:
    civitai.add_fault("429", retry_after=0, times=1)
    civitai.add_fault("503", times=1)
    assert _json(run_cli("show", "4384", "--json", "--no-examples"))["model"]["id"] == 4384


def test_unreachable_server_exits_7(run_cli: RunCli) -> None:
    line = _error(run_cli("search", env={"SDLIB_CIVITAI_URL": "http://127.0.0.1:9"}), 7)
    assert "cannot connect to 127.0.0.1" in line


def test_token_is_scoped(run_cli: RunCli, civitai: DemoServer) -> None:
    result = run_cli("show", "4384", "--json", env={"CIVITAI_TOKEN": "demo-token"})
    assert result.returncode == 0, result.stderr
    api = [r for r in civitai.requests if r.server == "api"]
    assert api and all(r.header("Authorization") == "Bearer demo-token" for r in api)
    storage = [r for r in civitai.requests if r.server == "storage"]
    assert not any(r.authorization for r in storage)
    assert "demo-token" not in result.stdout + result.stderr


# --- config ----------------------------------------------------------------------------------


def test_config_show_masks_the_token(run_cli: RunCli, cli_env: dict[str, str]) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    result = run_cli("config", "show", env={"CIVITAI_TOKEN": secret})
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout and "0123…ef" in result.stdout
    data = _json(run_cli("config", "show", "--json", env={"CIVITAI_TOKEN": secret}))
    assert data["civitai"]["token"] == "0123…ef"
    assert data["civitai"]["token_source"] == "environment (CIVITAI_TOKEN)"
    assert data["civitai"]["base_url"] == cli_env["SDLIB_CIVITAI_URL"]
    assert data["network"]["user_agent"].startswith("sdlib/")
    assert data["network"]["retries"] == 2  # from the config file


def test_config_set_token_and_path(run_cli: RunCli, cli_env: dict[str, str]) -> None:
    path = Path(cli_env["SDLIB_CONFIG"])
    assert run_cli("config", "path").stdout.strip() == str(path)
    assert _json(run_cli("config", "path", "--json"))["exists"] is True
    result = run_cli("config", "set-token", input="tok-from-prompt-123\n")
    assert result.returncode == 0, result.stderr
    assert "tok-from-prompt-123" not in result.stdout + result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = tomllib.loads(path.read_text())
    assert config["civitai"]["token"] == "tok-from-prompt-123"
    assert config["network"]["retries"] == 2  # the rest of the file survives
    data = _json(run_cli("config", "show", "--json"))
    assert data["civitai"]["token_source"] == "config file"
    assert run_cli("config", "set-token", "second-token-456").returncode == 0
    assert tomllib.loads(path.read_text())["civitai"]["token"] == "second-token-456"
    assert run_cli("config", "set-token", "--remove").returncode == 0
    assert "token" not in tomllib.loads(path.read_text()).get("civitai", {})
    _error(run_cli("config", "set-token", "has space"), 2)


def test_help_has_examples(run_cli: RunCli) -> None:
    for args in (("search",), ("show",), ("config",), ("config", "show"),
                 ("config", "set-token"), ("config", "path"), ("demo-server",)):  # fmt: skip
        result = run_cli(*args, "--help")
        assert result.returncode == 0 and "Example" in result.stdout, args


# --- demo-server -----------------------------------------------------------------------------


def test_demo_server_command_serves_the_cli(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env}
    env.pop("SDLIB_CIVITAI_URL")
    proc = subprocess.Popen(
        sdlib_argv("demo-server", "--port", "0", "--quiet", "--files-dir", tmp_path / "files",
                   "--fault", "404:match=/api/v1/models/1,times=1"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("SDLIB_CIVITAI_URL=http://127.0.0.1:"), line
        url = line.split("=", 1)[1]
        result = run_sdlib(
            "search", "--json", "--limit", "2", env={**env, "SDLIB_CIVITAI_URL": url}, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 2
        assert httpx2.get(f"{url}/api/v1/models/1100").status_code == 404  # the --fault
        assert httpx2.get(f"{url}/api/v1/models/1100").status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # waits and closes the pipes (no ResourceWarning)


def test_demo_server_bad_fault_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("demo-server", "--port", "0", "--files-dir", str(tmp_path),
                     "--fault", "explode")  # fmt: skip
    assert "explode" in _error(result, 2)


@pytest.mark.parametrize("size", ["100", "1000B", "0.5KiB"])
def test_demo_server_large_file_too_small_for_its_header_is_a_usage_error(
    run_cli: RunCli, tmp_path: Path, size: str
) -> None:
    # A 100-byte "safetensors" file cannot hold its own header: refuse before serving it.
    result = run_cli("demo-server", "--port", "0", "--files-dir", str(tmp_path),
                     "--large-file", size)  # fmt: skip
    assert "at least 1 KiB" in _error(result, 2)


def test_no_heavy_imports_for_help() -> None:
    code = (
        "import sys; from sdlib.cli import main\n"
        "for name in ('search', 'show', 'config', 'demo-server'):\n"
        "    main.get_command(None, name)\n"
        "bad = [m for m in ('httpx2', 'rich', 'torch', 'textual', 'sdlib.demo.server')\n"
        "       if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stderr
