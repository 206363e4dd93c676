"""``sdlib hash`` and ``services.files.hash_path``: one implementation, cache honoured."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

from sdlib.services import Context
from sdlib.services.files import hash_path
from tests.conftest import RunCli


def _file(tmp_path: Path) -> tuple[Path, bytes]:
    data = bytes(range(256)) * 4096  # 1 MiB: under AutoV1's 2 MiB floor
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    return path, data


def test_the_cli_hashes_once_then_answers_from_the_cache(tmp_path: Path, run_cli: RunCli) -> None:
    path, data = _file(tmp_path)
    first = json.loads(run_cli("hash", str(path), "--json").stdout)
    second = json.loads(run_cli("hash", str(path), "--json").stdout)
    forced = json.loads(run_cli("hash", str(path), "--no-cache", "--json").stdout)
    assert [r[0]["cached"] for r in (first, second, forced)] == [False, True, False]
    for (r,) in (first, second, forced):
        assert r["sha256"] == hashlib.sha256(data).hexdigest().upper()
        assert r["crc32"] is not None and int(r["crc32"], 16) in {
            zlib.crc32(data),
            int.from_bytes(zlib.crc32(data).to_bytes(4, "little"), "big"),
        }
        assert r["autov1"] is None  # under 2 MiB, as Civitai publishes


def test_the_service_reports_size_then_bytes(tmp_path: Path) -> None:
    path, data = _file(tmp_path)
    sizes: list[int] = []
    read: list[int] = []
    with Context() as ctx:
        fresh = hash_path(ctx, path, on_start=sizes.append, on_bytes=read.append)
        again = hash_path(ctx, path, on_start=sizes.append)
    assert not fresh.cached and again.cached
    assert sizes == [len(data)] and sum(read) == len(data)
    assert fresh.hashes.sha256 == hashlib.sha256(data).hexdigest().upper()
