"""``[mirror]``, SDLIB_MIRROR_URL and the standard AWS variables and profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdlib.config import load_settings
from sdlib.errors import ConfigError
from sdlib.mirror import MirrorConfig


def _config(tmp_path: Path, text: str, env: dict[str, str]) -> MirrorConfig | None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    full = {"HOME": str(tmp_path), **env}
    return MirrorConfig.from_settings(load_settings(path, env=full), env=full)


def test_s3_url_endpoint_and_http_endpoint(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[mirror]\nurl = "s3://studio/sdlib"\n'
                  'endpoint_url = "http://nas.lan:8333/"\npublish = true\n', {})  # fmt: skip
    assert cfg is not None and cfg.is_s3 and cfg.publish
    assert (cfg.bucket, cfg.prefix, cfg.endpoint_url) == ("studio", "sdlib", "http://nas.lan:8333")
    # A plain http:// endpoint needs no extra flag: allow_http follows the scheme.
    assert cfg.allow_http
    assert cfg.base_url() == "http://nas.lan:8333/studio/sdlib/"
    assert cfg.credentials is None  # anonymous


def test_env_override_and_aws_variables(tmp_path: Path) -> None:
    env = {
        "SDLIB_MIRROR_URL": "s3://other/p",
        "AWS_ENDPOINT_URL": "https://s3.example",
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_REGION": "eu-west-1",
    }
    cfg = _config(tmp_path, '[mirror]\nurl = "s3://studio/sdlib"\n', env)
    assert cfg is not None and cfg.url == "s3://other/p"
    assert cfg.endpoint_url == "https://s3.example" and not cfg.allow_http
    assert cfg.region == "eu-west-1"
    assert cfg.credentials is not None and cfg.credentials.access_key_id == "AK"
    assert "SK" not in repr(cfg)


def test_profiles(tmp_path: Path) -> None:
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[default]\naws_access_key_id = DEF\naws_secret_access_key = x\n"
        "[studio]\naws_access_key_id = STU\naws_secret_access_key = y\n"
    )
    (aws / "config").write_text("[profile studio]\nregion = ap-south-1\n"
                                "endpoint_url = http://ceph.lan:7480\n")  # fmt: skip
    cfg = _config(tmp_path, '[mirror]\nurl = "s3://b"\nprofile = "studio"\n',
                  {"AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "z"})  # fmt: skip
    assert cfg is not None and cfg.credentials is not None
    assert cfg.credentials.access_key_id == "STU"  # a named profile beats the environment
    assert (cfg.region, cfg.endpoint_url) == ("ap-south-1", "http://ceph.lan:7480")
    cfg = _config(tmp_path, '[mirror]\nurl = "s3://b"\n', {})
    assert cfg is not None and cfg.credentials is not None
    assert cfg.credentials.access_key_id == "DEF"
    with pytest.raises(ConfigError, match="nosuch"):
        _config(tmp_path, '[mirror]\nurl = "s3://b"\nprofile = "nosuch"\n', {})


def test_http_mirror_and_bad_urls(tmp_path: Path) -> None:
    cfg = _config(tmp_path, '[mirror]\nurl = "https://mirror.lan/sdlib"\n', {})
    assert cfg is not None and not cfg.is_s3
    assert cfg.base_url() == "https://mirror.lan/sdlib/"
    assert _config(tmp_path, "", {}) is None
    for text in ('[mirror]\nurl = "ftp://x/y"\n', '[mirror]\nurl = "s3:///nobucket"\n',
                 '[mirror]\nurl = "https://m.lan/"\npublish = true\n',
                 '[mirror]\nurl = "s3://b"\nendpoint_url = "nas:8333"\n'):  # fmt: skip
        with pytest.raises(ConfigError):
            _config(tmp_path, text, {})


@pytest.mark.slow  # four sdlib subprocesses
def test_config_set_get_and_show_reach_the_mirror(tmp_path: Path) -> None:
    import json

    from tests.support.cli import isolated_env, run_sdlib

    env = isolated_env(tmp_path)
    done = run_sdlib("config", "set", "mirror.url", "s3://studio/models", env=env)
    assert done.returncode == 0, done.stderr
    assert "s3://studio/models" in Path(env["SDLIB_CONFIG"]).read_text()
    assert run_sdlib("config", "get", "mirror.url", env=env).stdout.strip() == "s3://studio/models"
    bad = run_sdlib("config", "set", "mirror.url", "ftp://x", env=env)
    assert bad.returncode == 2 and "mirror.url" in bad.stderr
    shown = run_sdlib(
        "config", "show", "--json", env={**env, "SDLIB_MIRROR_URL": "https://m.lan/x/"}
    )
    mirror = json.loads(shown.stdout)["mirror"]
    assert mirror["url"] == "https://m.lan/x/" and mirror["url_source"].startswith("environment")
