"""``sdlib.resolve``: a reference to the exact file ``install`` would fetch, with its facts,
from a script that has no webUI folder (issue 15: resolve is one of the operations)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx2
import pytest

import sdlib
from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.taxonomy import Base, Kind


def test_resolve_names_the_file_and_its_published_facts(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = civitai.files[62833_1]  # Detail Tweaker LoRA 58390, version 62833, its one file
    assert served.path is not None
    body = served.path.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert civitai_settings.library.root is None  # no webUI folder anywhere
    with sdlib.Context(civitai_settings) as ctx:
        found = sdlib.resolve(ctx, "58390")
        again = sdlib.resolve(ctx, "58390@62833", choice=sdlib.FileChoice(file_id=62833_1))
    assert isinstance(found, sdlib.RemoteFile) and again.url == found.url
    assert found.file_name == "add_detail.safetensors"
    assert (found.model_id, found.version_id, found.file_id) == (58390, 62833, 62833_1)
    assert found.pinned_ref == "58390@62833"
    assert found.size == len(body)
    assert found.sha256 == hashlib.sha256(body).hexdigest().upper()
    assert (found.kind, found.base) == (Kind.LORA, Base.SD1)
    # The URL serves exactly those bytes; resolving downloaded nothing and made no folder.
    with httpx2.Client(follow_redirects=True) as http:
        assert hashlib.sha256(http.get(found.url).content).hexdigest().upper() == found.sha256
    assert os.listdir(work) == []


def test_resolve_says_not_found_with_the_cli_exit_code(
    civitai: DemoServer, civitai_settings: Settings
) -> None:
    with sdlib.Context(civitai_settings) as ctx, pytest.raises(sdlib.SdlibError) as caught:
        sdlib.resolve(ctx, "987654321")
    assert caught.value.exit_code == 5
