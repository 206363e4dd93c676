"""``identify`` falls back to AutoV3, then AutoV2, when Civitai finds nothing by SHA256:
against the demo server publishing records without a SHA256 (its hash-no-sha256 switch)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.hashcache import HashCache
from sdlib.http import build_client
from sdlib.library.identify import Identifier, IdentifyOptions, IdentifyResult
from sdlib.library.index import Index
from sdlib.library.scan import load_layout, scan
from sdlib.sources.civitai import CivitaiLookup
from tests.support import trees

Run = Callable[[], list[IdentifyResult]]
LORA = 628331  # add_detail.safetensors, version 62833
HYPERNET = 50871  # animeLineart_v1.pt (a pickle: no AutoV3), version 5087


@pytest.fixture
def identify(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Path, Run]]:
    root = trees.a1111(tmp_path / "webui")
    with (
        Index(tmp_path / "data" / "library.sqlite") as index,
        HashCache(tmp_path / "cache" / "hashes.sqlite") as hc,
        build_client(civitai_settings) as http,
    ):
        remote = CivitaiLookup(http, civitai.url, index, rate=0)

        def run() -> list[IdentifyResult]:
            layout = load_layout(root, "a1111")
            rows = [f.row for f in scan(root, layout, index, hc).models]
            opts = IdentifyOptions.for_layout("a1111")
            return Identifier(index, hc, remote, opts).run(rows)

        yield root, run


def place(server: DemoServer, file_id: int, dest: Path) -> bytes:
    served = server.files[file_id]
    assert served.path is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(served.path, dest)
    return dest.read_bytes()


def asked(server: DemoServer) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in server.requests if "/by-hash/" in r.path]


def test_no_sha256_on_civitai_finds_a_safetensors_file_by_autov3(
    civitai: DemoServer, identify: tuple[Path, Run]
) -> None:
    root, run = identify
    data = place(civitai, LORA, root / "models" / "Lora" / "detail.safetensors")
    civitai.add_fault("hash-no-sha256", file_id=LORA)
    [result] = run()
    assert (result.state, result.matched_by, result.version_id) == ("identified", "AutoV3", 62833)
    header = int.from_bytes(data[:8], "little")
    sha = hashlib.sha256(data).hexdigest().upper()
    autov3 = hashlib.sha256(data[8 + header :]).hexdigest().upper()[:12]
    assert asked(civitai) == [sha, autov3]  # SHA256 first, then the body hash


def test_no_sha256_on_civitai_finds_a_pickle_by_autov2(
    civitai: DemoServer, identify: tuple[Path, Run]
) -> None:
    root, run = identify
    data = place(civitai, HYPERNET, root / "models" / "hypernetworks" / "lineart.pt")
    civitai.add_fault("hash-no-sha256", file_id=HYPERNET)
    [result] = run()
    assert (result.state, result.matched_by, result.version_id) == ("identified", "AutoV2", 5087)
    sha = hashlib.sha256(data).hexdigest().upper()
    assert asked(civitai) == [sha, sha[:10]]  # no AutoV3 for a pickle
