"""Settings load from the documented example, reject typos, and let the environment win."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

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
