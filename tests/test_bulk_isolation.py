"""``install -f``: an entry that hits a disk error or a bug fails alone; the rest install."""

from __future__ import annotations

import errno

from sdlib.bulk import BulkInstaller, EntryResult
from sdlib.manifest import Entry


def test_each_entry_gets_a_result_whatever_another_raises() -> None:
    results: list[EntryResult] = []
    bulk = object.__new__(BulkInstaller)  # only the per-entry wrapper is under test
    bulk.on_result = results.append

    def install(entry: Entry) -> EntryResult:
        if entry.ref == "civitai:1":
            raise OSError(errno.ENOSPC, "No space left on device", "/models/a.safetensors")
        if entry.ref == "civitai:2":
            raise KeyError("files")  # what a bug looks like from here
        return EntryResult(entry.ref, entry.line, "installed", path="/models/c.safetensors")

    bulk._install = install  # type: ignore[method-assign]
    entries = [Entry(f"civitai:{i}", i) for i in (1, 2, 3)]
    out = [bulk._one(e) for e in entries]
    assert [r.status for r in out] == ["failed", "failed", "installed"]
    assert out[0].message == "/models/a.safetensors: No space left on device"
    assert out[1].message == "internal error: KeyError: 'files'"
    assert [r.exit_code for r in out] == [1, 1, 0]
    assert results == out  # every entry was reported as it finished
