"""Names and descriptions from a server never reach the terminal raw: a model named with
escape sequences prints without ESC, C1 or bidi-override characters, while ``--json``
keeps every character exactly as the server sent it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.demo.catalogue import CATALOGUE
from sdlib.demo.server import DemoServer
from tests.support.cli import run_sdlib

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

#: Window title set (OSC 0), clear screen, 8-bit CSI, a right-to-left override, an isolate.
HOSTILE = "Detail \x1b]0;pwned\x07Tweaker\x1b[2J \x9b31mred\x1b[0m \u202egpj.exe\u2066x"
BAD_CHARS = ["\x1b", "\x9b", "\x9d", "\x07", "\u202e", "\u2066"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    lora = next(m for m in CATALOGUE if m.id == 58390)
    version = replace(lora.versions[0], name="v1\x1b[1A\x1b[2K", trained_words=("\x1b]2;t\x07w",))
    model = replace(lora, name=HOSTILE, creator="Ly\x9b2Jkon",
                    description=f"<p>{HOSTILE}</p>", versions=(version,))  # fmt: skip
    with DemoServer(tmp_path_factory.mktemp("hostile"), catalogue=(model,)) as server:
        yield server


def colour_env(server: DemoServer, tmp_path: Path) -> dict[str, str]:
    """The demo server, private dirs, wide lines and rich's colours forced on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDLIB_", "CIVITAI_"))}
    env.update(SDLIB_CIVITAI_URL=server.url, SDLIB_CONFIG=str(tmp_path / "none.toml"),
               SDLIB_CACHE_DIR=str(tmp_path / "cache"), SDLIB_DATA_DIR=str(tmp_path / "data"),
               COLUMNS="200", PYTHONIOENCODING="utf-8", FORCE_COLOR="1")  # fmt: skip
    env.pop("NO_COLOR", None)
    return env


def assert_clean(text: str) -> None:
    # FORCE_COLOR makes rich style its output: its own SGR codes are fine; nothing else.
    import re

    without_sgr = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for ch in BAD_CHARS:
        assert ch not in without_sgr, (ch, without_sgr)
    assert "[2J" not in text and "]0;" not in text


@pytest.mark.parametrize("args", [("search", "detail"), ("show", "58390")])
def test_names_from_the_server_print_without_control_characters(
    hostile: DemoServer, tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = run_sdlib(*args, env=colour_env(hostile, tmp_path), encoding="utf-8")
    assert out.returncode == 0, out.stderr
    assert "Tweaker" in out.stdout and "gpj.exe" in out.stdout  # the text is still shown
    assert_clean(out.stdout)
    assert_clean(out.stderr)


def test_json_keeps_the_names_exactly(hostile: DemoServer, tmp_path: Path) -> None:
    found = json.loads(
        run_sdlib(
            "search",
            "detail",
            "--json",
            env=colour_env(hostile, tmp_path),
            encoding="utf-8",
        ).stdout
    )
    assert [m["name"] for m in found] == [HOSTILE]
    shown = json.loads(
        run_sdlib(
            "show", "58390", "--json", env=colour_env(hostile, tmp_path), encoding="utf-8"
        ).stdout
    )
    assert shown["model"]["name"] == HOSTILE
    assert "Ly\x9b2Jkon" in json.dumps(shown["model"], ensure_ascii=False)


@pytest.mark.skipif(os.name == "nt", reason="Windows file names cannot hold control characters")
def test_file_names_with_escapes_print_clean(hostile: DemoServer, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    evil = folder / "evil\x1b]0;pwned\x07\x1b[2J\u202egpj.safetensors"
    evil.write_bytes(b"\x40" * 8 + b"{")
    odd = folder / "ok\x9b31m.safetensors"
    odd.write_bytes(b"not a model at all")
    out = run_sdlib(
        "inspect",
        str(evil),
        str(odd),
        env=colour_env(hostile, tmp_path),
        encoding="utf-8",
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "gpj.safetensors" in out.stderr + out.stdout
    assert_clean(out.stdout)
    assert_clean(out.stderr)
