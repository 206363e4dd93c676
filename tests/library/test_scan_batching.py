"""A first scan writes the index in bulk (one statement for all new rows and events) and
leaves the interpreter's cycle collector as it found it; a re-scan opens no sidecar that
gave nothing before."""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from sdlib.library.scan import load_layout, scan
from tests.support import trees


def test_first_scan_adds_every_file_in_one_batch(
    tmp_path: Path, stores: tuple[Index, HashCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, hc = stores
    root = trees.a1111(tmp_path / "webui")
    made = []
    for i in range(12):
        made.append(trees.st(root / "models" / "Lora" / f"l{i}.safetensors", "lora_sd15_kohya"))
        trees.touch(root / "models" / "Lora" / f"l{i}.civitai.info", "{}")
    calls: dict[str, int] = {"insert": 0, "event": 0, "insert_many": 0}
    for name in calls:
        real = getattr(Index, name)

        def spy(self: Index, *a: Any, _real: Any = real, _name: str = name, **k: Any) -> Any:
            calls[_name] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(Index, name, spy)
    layout = load_layout(root, "auto")
    result = scan(root, layout, index, hc)
    assert result.added == 24  # 12 LoRAs and their 12 sidecars
    assert calls == {"insert": 0, "event": 0, "insert_many": 1}
    rows = [index.file_at(str(p)) for p in made]
    ids = [r.id for r in rows if r is not None]
    assert len(set(ids)) == 12
    for path, row in zip(made, rows, strict=True):
        assert row is not None and row.kind == "lora" and row.base == "sd1"
        history = index.history(row.id or 0)
        assert [(h["event"], h["path"]) for h in history] == [("added", str(path))]
    # Unchanged: nothing written at all; one file gone: its row says so.
    again = scan(root, layout, index, hc)
    assert again.added == again.changed == again.removed == 0
    made[0].unlink()
    gone = scan(root, layout, index, hc)
    assert gone.removed == 1 and index.file_at(str(made[0])) is None
    assert [h["event"] for h in index.history(ids[0])] == ["added", "removed"]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_left_as_it_was(
    tmp_path: Path, stores: tuple[Index, HashCache], enabled: bool
) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Lora" / "a.safetensors", "lora_sd15_kohya")
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        result = scan(root, load_layout(root, "auto"), *stores)
        assert result.inspected == 1
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_a_rescan_reads_no_sidecar_that_gave_nothing_before(
    tmp_path: Path, stores: tuple[Index, HashCache], sidecar_reads: list[str]
) -> None:
    from tests.library.test_adopt import version_json

    root = trees.a1111(tmp_path / "webui")
    loras = root / "models" / "Lora"
    specs = ("lora_sd15_kohya", "loha_sd15", "lora_sdxl_kohya")
    made = [trees.st(loras / f"{name}.safetensors", name) for name in specs]
    for path in made:  # not an identity: Civitai Helper's "looked up, not found" is {}
        trees.touch(path.with_suffix(".civitai.info"), "{}")
    read = sidecar_reads
    layout = load_layout(root, "auto")
    scan(root, layout, *stores)
    assert sorted(read) == sorted(p.stem + ".civitai.info" for p in made)
    read.clear()
    scan(root, layout, *stores)
    assert read == []
    # A sidecar written later is read, and its identity taken.
    sha = hashlib.sha256(made[0].read_bytes()).hexdigest().upper()
    made[0].with_suffix(".civitai.info").write_text(json.dumps(version_json(sha)), "utf-8")
    result = scan(root, layout, *stores)
    assert read == [made[0].stem + ".civitai.info"]
    row = next(f for f in result.files if f.path == str(made[0])).row
    assert row.civitai_version_id == 62833 and row.matched_by == "sidecar"


def test_a_refused_sidecar_is_still_reported_on_every_scan(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    from tests.library.test_adopt import version_json

    root = trees.a1111(tmp_path / "webui")
    path = trees.st(root / "models" / "Lora" / "detail.safetensors", "lora_sd15_kohya")
    trees.touch(path.with_suffix(".civitai.info"), json.dumps(version_json("AB" * 32)))
    layout = load_layout(root, "auto")
    for kw in ({"hash_all": True}, {}):  # the second scan changes nothing
        result = scan(root, layout, *stores, **kw)
        notes = next(f for f in result.files if f.path == str(path)).notes
        assert any("describes other bytes" in n for n in notes), notes


def test_files_of_one_size_are_hashed_while_headers_are_read(
    tmp_path: Path, stores: tuple[Index, HashCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same-size files (the first scan's only hashing) are hashed while the helper parses,
    each once; their SHA256 is the bytes' own, and a re-scan hashes nothing."""
    from sdlib.library import scan as scan_module

    index, hc = stores
    root = trees.a1111(tmp_path / "webui")
    lora = root / "models" / "Lora"
    for i in range(48):  # three batches: the helper is handed two, this process hashes
        trees.st(lora / f"l{i}.safetensors", "lora_sd15_kohya", {"n": "x" * (16 * i)}, small=True)
    twins = [lora / "twin_a.safetensors", lora / "twin_b.safetensors"]
    trees.st(twins[0], "embedding_sd15")
    shutil.copyfile(twins[0], twins[1])
    monkeypatch.setattr(scan_module, "PARALLEL_FROM", 2)
    order: list[str] = []
    real_get = HashCache.get

    def spy_get(self: HashCache, path: Any, *a: Any, **k: Any) -> Any:
        order.append(f"hash {Path(path).name}")
        return real_get(self, path, *a, **k)

    monkeypatch.setattr(HashCache, "get", spy_get)

    def progress(event: Any) -> None:
        if event.stage in ("inspect", "hash"):
            order.append(event.stage)

    result = scan(root, load_layout(root, "auto"), index, hc, on_progress=progress, workers=2)
    hashed = [e for e in order if e.startswith("hash ")]
    assert sorted(hashed) == ["hash twin_a.safetensors", "hash twin_b.safetensors"]
    assert result.hashed == 2
    # Both were hashed before the last header was in (the "hash" stage only finds them).
    last_inspect = max(i for i, e in enumerate(order) if e == "inspect")
    assert all(order.index(h) < last_inspect for h in hashed)
    sha = hashlib.sha256(twins[0].read_bytes()).hexdigest().upper()  # as Civitai writes it
    rows = {f.path: f.row for f in result.files}
    assert {rows[str(t)].sha256 for t in twins} == {sha}
    order.clear()
    again = scan(root, load_layout(root, "auto"), index, hc, on_progress=progress, workers=2)
    assert again.hashed == 0 and not [e for e in order if e.startswith("hash ")]
