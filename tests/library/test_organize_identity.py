"""Index rows follow the files organize moves, links, deletes and puts back: a file's
Civitai identity survives ``--apply`` and ``--undo`` (issue 16 item 10), and ``--dedupe
delete`` is not blocked by two answers for one version (item 10, last part)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdlib.library.organize import Journal, undo_journal
from tests.support import trees
from tests.support.organize import Lib


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Lib]:
    lib = Lib(tmp_path)
    yield lib
    lib.close()


def identify_by_hand(lib: Lib, root: Path, versions: dict[str, int]) -> None:
    """What ``identify`` records for a file (its ids), by relative path."""
    for f in lib.scan(root).models:
        if f.rel in versions:
            assert f.id is not None
            lib.index.update(f.id, civitai_model_id=1, civitai_version_id=versions[f.rel],
                             civitai_file_id=versions[f.rel] * 10, identify_state="identified",
                             matched_by="SHA256", civitai_model_name="Mine")  # fmt: skip


def identities(lib: Lib, root: Path) -> dict[str, int | None]:
    return {f.rel: f.row.civitai_version_id for f in lib.scan(root).models}


def twins(root: Path) -> tuple[Path, Path]:
    """Byte-identical LoRAs with different mtimes (copied without -p)."""
    a = trees.st(root / "models" / "Lora" / "a.safetensors", "lokr_sdxl")
    b = root / "models" / "Lora" / "sub" / "b.safetensors"
    b.parent.mkdir(parents=True)
    b.write_bytes(a.read_bytes())
    os.utime(b, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return a, b


def test_identity_follows_a_move_and_its_undo_without_a_scan_between(
    tmp_path: Path, lib: Lib
) -> None:
    root = trees.a1111(tmp_path / "webui")
    trees.st(root / "models" / "Stable-diffusion" / "detail.safetensors", "lora_sd15_kohya")
    identify_by_hand(lib, root, {"models/Stable-diffusion/detail.safetensors": 7})
    journal, report = lib.apply(root)
    assert not report.failed and (root / "models" / "Lora" / "detail.safetensors").is_file()
    moved = lib.index.file_at(str(root / "models" / "Lora" / "detail.safetensors"))
    assert moved is not None and moved.civitai_version_id == 7  # before any scan
    undo_journal(Journal.load(journal.path), lib.sha)
    back = lib.index.file_at(str(root / "models" / "Stable-diffusion" / "detail.safetensors"))
    assert back is not None and back.civitai_version_id == 7 and back.id == moved.id
    assert identities(lib, root) == {"models/Stable-diffusion/detail.safetensors": 7}


def test_identity_survives_hardlink_dedupe_and_its_undo(tmp_path: Path, lib: Lib) -> None:
    root = trees.a1111(tmp_path / "webui")
    twins(root)
    versions = {"models/Lora/a.safetensors": 7, "models/Lora/sub/b.safetensors": 7}
    identify_by_hand(lib, root, versions)
    journal, report = lib.apply(root, dedupe="hardlink")
    assert report.done and not report.failed
    assert os.path.samefile(
        root / "models/Lora/a.safetensors", root / "models/Lora/sub/b.safetensors"
    )
    assert identities(lib, root) == versions
    undo_journal(Journal.load(journal.path), lib.sha)
    assert identities(lib, root) == versions


def test_identity_comes_back_with_a_deleted_duplicate(tmp_path: Path, lib: Lib) -> None:
    root = trees.a1111(tmp_path / "webui")
    twins(root)
    versions = {"models/Lora/a.safetensors": 7, "models/Lora/sub/b.safetensors": 7}
    identify_by_hand(lib, root, versions)
    journal, _ = lib.apply(root, dedupe="delete")
    gone = [p for p in ("a", "sub/b") if not (root / f"models/Lora/{p}.safetensors").exists()]
    assert len(gone) == 1
    undo_journal(Journal.load(journal.path), lib.sha)
    assert identities(lib, root) == versions


def test_dedupe_delete_is_not_blocked_by_two_answers_for_one_version(
    tmp_path: Path, lib: Lib
) -> None:
    """identify wrote each copy's .civitai.info when that copy was looked up: the download
    counts and images differ, the version is the same; the copy's sidecar goes too."""
    root = trees.a1111(tmp_path / "webui")
    a, b = twins(root)
    sha = trees.sha256(a).upper()
    info = {"id": 7, "modelId": 1, "name": "v1", "baseModel": "SDXL 1.0",
            "model": {"name": "Mine", "type": "LORA", "nsfw": False, "poi": False},
            "files": [{"id": 70, "name": "a.safetensors", "hashes": {"SHA256": sha}}],
            "stats": {"downloadCount": 10}, "images": []}  # fmt: skip
    a.with_name("a.civitai.info").write_text(json.dumps(info, indent=4))
    later = {**info, "stats": {"downloadCount": 11}, "images": [{"url": "https://x/1.jpeg"}]}
    b.with_name("b.civitai.info").write_text(json.dumps(later, indent=4))
    before = trees.tree_state(root)
    plan, journal, report = lib.plan_apply(root, dedupe="delete")
    assert not report.failed and not report.skipped, plan.notes
    assert [op.path for op in plan.ops if op.action == "delete"] == [str(b)]
    # Nothing is lost: the other answer is kept as the .bak of the one that stays.
    assert json.loads(a.with_name("a.civitai.info.bak").read_text()) == later
    assert json.loads(a.with_name("a.civitai.info").read_text()) == info
    assert not b.exists() and not b.with_name("b.civitai.info").exists()
    undo_journal(Journal.load(journal.path), lib.sha)
    assert trees.tree_state(root) == before
    # A copy whose sidecar holds something the kept one lacks is kept, with its sidecar.
    extra = {**later, "extensions": {"sd_civitai_helper": {"version": "1.8.0"}}}
    b.with_name("b.civitai.info").write_text(json.dumps(extra, indent=4))
    kept = lib.plan(root, dedupe="delete")
    assert not [op for op in kept.ops if op.action == "delete"]
    assert any("civitai.info differs" in n for n in kept.notes)
