"""Fixtures the library tests share: a fresh index and hash cache, and a record of which
sidecars a scan reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sdlib.hashcache import HashCache
from sdlib.library import sidecars
from sdlib.library.index import Index


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Index, HashCache]]:
    with (
        Index(tmp_path / "data" / "library.sqlite") as index,
        HashCache(tmp_path / "cache" / "hashes.sqlite") as hc,
    ):
        yield index, hc


@pytest.fixture
def sidecar_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the sidecars read (as JSON) from here on, in order."""
    read: list[str] = []
    real = sidecars.read_json

    def spy(path: Path) -> object:
        read.append(path.name)
        return real(path)

    monkeypatch.setattr(sidecars, "read_json", spy)
    return read
