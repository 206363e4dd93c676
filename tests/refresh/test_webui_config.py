"""``[webui.NAME]`` tables in the config file: url, ui, Basic credentials, timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdlib.config import load_settings
from sdlib.errors import ConfigError


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return load_settings(path, env={})


def test_tables_in_file_order_with_ui_from_the_name(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
[webui.forge]
url = "http://127.0.0.1:7860/"
username = "me"
password = "secret"

[webui.laptop]
url = "http://192.168.1.20:8188"
ui = "ComfyUI"
timeout = 0.5
""",
    )
    forge, laptop = settings.webuis  # type: ignore[attr-defined]
    assert (forge.name, forge.ui, forge.url) == ("forge", "forge", "http://127.0.0.1:7860")
    assert (forge.username, forge.password, forge.timeout) == ("me", "secret", 2.0)
    assert (laptop.name, laptop.ui, laptop.timeout) == ("laptop", "comfyui", 0.5)
    assert laptop.username is None and laptop.password is None
    assert "secret" not in repr(settings)


def test_no_tables_no_webuis(tmp_path: Path) -> None:
    assert load(tmp_path, "").webuis == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[webui.forge]\nui = "forge"\n', "needs a url"),
        ('[webui.box]\nurl = "http://127.0.0.1:7860"\n', "say which webUI it is"),
        ('[webui.box]\nurl = "http://127.0.0.1:7860"\nui = "fooocus"\n', "must be one of"),
        ('[webui.forge]\nurl = "127.0.0.1:7860"\n', "http(s) URL"),
        ('[webui.forge]\nurl = "http://me:pw@127.0.0.1:7860"\n', "without credentials"),
        ('[webui.forge]\nurl = "http://127.0.0.1:7860"\nusername = "me"\n', "go together"),
        ('[webui.forge]\nurl = "http://127.0.0.1:7860"\ntimeout = 0\n', "positive"),
        ('[webui.forge]\nurl = "http://127.0.0.1:7860"\nport = 7860\n', "unknown setting"),
        ("[webui.forge]\nurl = 7860\n", "must be a string"),
        ('[webui]\nurl = "http://127.0.0.1:7860"\n', "one table per webUI"),
    ],
)
def test_mistakes_are_one_clear_config_error(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert says in str(info.value)
