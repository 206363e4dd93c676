"""``sdlib config set / get`` and ``set-token`` from a pipe, as a user runs them; the file is
read back with tomllib, never through sdlib."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomllib

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

USER_FILE = """\
# my settings, with comments I want to keep
[network]
retries = 2  # low: the demo server is local
backoff_max = 0.01

[library]
# where my webUI is
ui = "a1111"
"""


@pytest.fixture
def config(cli_env: dict[str, str]) -> Path:
    path = Path(cli_env["SDLIB_CONFIG"])
    path.write_text(USER_FILE)
    return path


def test_set_keeps_comments_and_get_reads_it_back(run_cli: Any, config: Path) -> None:
    for key, value in (("folders.lora", "models/Lora/civitai"), ("network.retries", "3"),
                       ("library.root", "~/webui"), ("civitai.nsfw", "true"),
                       ("download.stall_timeout", "12.5")):  # fmt: skip
        out = run_cli("config", "set", key, value)
        assert out.returncode == 0, out.stderr
    text = config.read_text()
    for line in ("# my settings, with comments I want to keep", "# where my webUI is"):
        assert line in text
    data = tomllib.loads(text)
    assert data["library"]["folders"] == {"lora": "models/Lora/civitai"}
    assert data["network"] == {"retries": 3, "backoff_max": 0.01}
    assert (data["library"]["root"], data["library"]["ui"]) == ("~/webui", "a1111")
    assert data["civitai"]["nsfw"] is True and data["download"]["stall_timeout"] == 12.5
    assert run_cli("config", "get", "folders.lora").stdout == "models/Lora/civitai\n"
    got = json.loads(run_cli("config", "get", "network.retries", "--json").stdout)
    assert got == {"key": "network.retries", "value": 3, "source": "config file"}
    default = json.loads(run_cli("config", "get", "download.connections", "--json").stdout)
    assert (default["value"], default["source"]) == (4, "default")
    # An empty value removes a setting that may be unset.
    assert run_cli("config", "set", "library.root", "").returncode == 0
    assert "root" not in tomllib.loads(config.read_text())["library"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("network.retries", "many", "network.retries must be a number"),
        ("network.retries", "2.5", "network.retries must be a whole number"),
        ("civitai.nsfw", "yes", "civitai.nsfw must be true or false"),
        ("civitai.base_url", "ftp://mirror", "civitai.base_url must be an http(s) URL"),
        ("network.speed", "1", "unknown setting 'network.speed'"),
        ("folders.loras", "x", "unknown kind 'loras'"),
        ("civitai.token", "abc", "sdlib config set-token"),
    ],
)
def test_a_bad_value_is_exit_2_and_the_file_is_untouched(
    run_cli: Any, config: Path, key: str, value: str, message: str
) -> None:
    out = run_cli("config", "set", key, value)
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith("sdlib: error: ") and message in line
    assert config.read_text() == USER_FILE


def test_folders_written_inline_are_extended_not_duplicated(run_cli: Any, config: Path) -> None:
    config.write_text(USER_FILE + 'folders = { vae = "models/VAE/mine" }\n')
    assert run_cli("config", "set", "folders.lora", "models/Lora/x").returncode == 0
    folders = tomllib.loads(config.read_text())["library"]["folders"]
    assert folders == {"vae": "models/VAE/mine", "lora": "models/Lora/x"}


def test_set_token_from_a_pipe_gives_no_getpass_warning(run_cli: Any, config: Path) -> None:
    out = run_cli("config", "set-token", input="piped-key-0123456789\n")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no GetPassWarning, no "Warning: Password input may be echoed"
    assert "piped-key-0123456789" not in out.stdout
    assert tomllib.loads(config.read_text())["civitai"]["token"] == "piped-key-0123456789"
    empty = run_cli("config", "set-token", input="\n")
    assert empty.returncode == 2 and "empty" in empty.stderr


def test_help_has_examples(run_cli: Any) -> None:
    for sub in ("set", "get"):
        out = run_cli("config", sub, "--help")
        assert out.returncode == 0 and f"sdlib config {sub} " in out.stdout.split("Examples:")[1]
        assert "--json" in out.stdout
