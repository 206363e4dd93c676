"""Settings load from the documented example, reject typos, and let the environment win."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from sdlib.config import load_settings, mask_token, write_private
from sdlib.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def _uncommented(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("# ["):
            out.append(line[2:])
        else:
            out.append(re.sub(r"^# ([a-z_0-9]+ = .*)$", r"\1", line))
    return "\n".join(out)


def test_example_loads_as_is_and_with_every_setting_enabled(tmp_path: Path) -> None:
    assert load_settings(EXAMPLE, env={}).civitai.base_url == "https://civitai.com"
    full = tmp_path / "config.toml"
    full.write_text(_uncommented(EXAMPLE.read_text()))
    settings = load_settings(full, env={})
    assert settings.network.proxy == "socks5h://127.0.0.1:1080"
    assert settings.library.folders == {"lora": "models/Lora/downloaded"}
    assert settings.civitai.token is None  # an empty token means none


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[civitai]\nbase_url = "https://civitai.red/"\ntoken = "from-file"\n')
    s = load_settings(cfg, env={"SDLIB_CIVITAI_URL": "http://127.0.0.1:9/", "CIVITAI_TOKEN": "t"})
    assert (s.civitai.base_url, s.civitai.token) == ("http://127.0.0.1:9", "t")
    s = load_settings(cfg, env={})
    assert (s.civitai.base_url, s.civitai.token) == ("https://civitai.red", "from-file")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[civitai]\nbase_ur = 'x'\n", "unknown setting civitai.base_ur"),
        ("[network]\nretries = 'many'\n", "must be a number"),
        ("[civitai]\nnsfw = 1\n", "true or false"),
        ("colour = 'red'\n", "unknown setting"),
        ("[civitai\n", "cannot read config"),
        ("[civitai]\nbase_url = 'ftp://x'\n", "http(s) URL"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(cfg, env={})


def test_token_is_masked() -> None:
    assert mask_token("abcdef1234567890") == "abcd…90"
    assert mask_token("short") == "*****"
    assert mask_token(None) is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_private_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    write_private(path, "x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.slow  # runs python -m sdlib in a subprocess
@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[civitai]\nbase_url = 5\n", "civitai.base_url", "must be a string"),
        ("[civitai]\ntoken = 123\n", "civitai.token", "must be a string"),
        ("[network]\nretries = inf\n", "network.retries", "must be a finite number"),
        ("[network]\nread_timeout = nan\n", "network.read_timeout", "must be a finite number"),
        ("[network]\nretries = 2.5\n", "network.retries", "must be a whole number"),
        ("[network]\nproxy = 5\n", "network.proxy", "must be a string"),
        ("[library]\nroot = 5\n", "library.root", "must be a string"),
        ("[library]\nfolders = 'x'\n", "library.folders", "must be a table of strings"),
        ("[library]\nfolders = { lora = 5 }\n", "library.folders", "must be a table of strings"),
        ("cache_dir = ['a']\n", "cache_dir", "must be a string"),
    ],
)
def test_wrong_types_are_exit_2_naming_key_and_type(
    run_cli: Any, tmp_path: Path, text: str, key: str, expected: str
) -> None:
    cfg = tmp_path / "wrong.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{key} {expected}")):
        load_settings(cfg, env={})
    out = run_cli("config", "show", env={"SDLIB_CONFIG": str(cfg)})
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("sdlib: error: ") and f"{key} {expected}" in line


@pytest.mark.slow  # runs python -m sdlib in a subprocess
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX mode bits")
def test_a_token_in_a_group_readable_config_gets_one_warning(run_cli: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "token.toml"
    cfg.write_text('[civitai]\ntoken = "abcdef123456"\n')
    cfg.chmod(0o644)
    shared = run_cli("config", "show", env={"SDLIB_CONFIG": str(cfg)})
    assert shared.returncode == 0, shared.stderr
    warnings = [line for line in shared.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "chmod 600" in warnings[0] and "644" in warnings[0]
    assert "abcdef123456" not in shared.stderr
    cfg.chmod(0o600)
    private = run_cli("config", "show", env={"SDLIB_CONFIG": str(cfg)})
    assert private.returncode == 0 and "warning" not in private.stderr
    cfg.write_text("[civitai]\nnsfw = true\n")
    cfg.chmod(0o644)  # no token: nothing to protect
    assert "warning" not in run_cli("config", "show", env={"SDLIB_CONFIG": str(cfg)}).stderr


def test_saving_into_a_config_with_a_wrong_type_names_the_real_file(tmp_path: Path) -> None:
    from sdlib.config import save_token

    cfg = tmp_path / "c.toml"
    cfg.write_text("[network]\nretries = 'many'\n")
    with pytest.raises(ConfigError) as info:
        save_token(cfg, "abcdefgh1234")
    assert info.value.path == str(cfg) and "network.retries must be a number" in str(info.value)
    assert cfg.read_text() == "[network]\nretries = 'many'\n"  # left alone
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]  # no temporary copy left
