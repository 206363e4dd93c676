"""dedupe --apply makes reflinks where the filesystem can (Btrfs, XFS with reflink=1...), hard
links where it cannot, and says which. A reflink is a file of its own (own inode, mode,
mtime) holding the kept file's very blocks: the volume's free space grows by its size, a
second plan finds nothing left to do, and undo leaves it as it is, with the same bytes.

The reflink tests need a folder on such a filesystem: the test's tmp folder if it can, else
``SDLIB_TEST_REFLINK_DIR`` (e.g. a loop-mounted XFS image); they are skipped otherwise."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdlib.library._reflink import can_reflink, same_blocks
from sdlib.services import Context, dedupe
from sdlib.services.store import store_status
from tests.support import trees
from tests.support.trees import sha256

SIZE = 8 << 20


@pytest.fixture
def clonable(tmp_path: Path) -> Iterator[Path]:
    """A fresh folder on a filesystem that makes reflinks."""
    if can_reflink(str(tmp_path)):
        yield tmp_path
        return
    where = os.environ.get("SDLIB_TEST_REFLINK_DIR")
    if not where or not os.path.isdir(where) or not can_reflink(where):
        pytest.skip(f"{tmp_path} is on a filesystem without reflinks (FICLONE refused) and "
                    "SDLIB_TEST_REFLINK_DIR names no folder on one")  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="sdlib-reflink-", dir=where))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _two_roots(base: Path) -> tuple[Path, Path, Path, Path]:
    a, b = trees.a1111(base / "A webui"), trees.a1111(base / "B webui")
    kept = a / "models" / "Stable-diffusion" / "model [v1].safetensors"
    copy = b / "models" / "Stable-diffusion" / "model copy (2).safetensors"
    kept.parent.mkdir(parents=True)
    copy.parent.mkdir(parents=True)
    kept.write_bytes(os.urandom(SIZE))  # real data blocks, not a sparse file
    shutil.copyfile(kept, copy)
    os.chmod(copy, 0o640)
    os.utime(copy, ns=(1_700_000_000_000_000_000, 1_700_000_000_987_654_321))
    return a, b, kept, copy


def _free(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def test_reflinks_where_the_filesystem_clones(ctx: Context, clonable: Path) -> None:
    a, b, kept, copy = _two_roots(clonable)
    digest, inode = sha256(copy), copy.stat().st_ino
    meta = (copy.stat().st_mode & 0o7777, copy.stat().st_mtime_ns)

    plan = dedupe.plan(ctx, [a, b])
    assert [op.action for op in plan.ops] == ["reflink"]
    assert plan.reclaimable == SIZE
    assert any("reflinks" in note for note in plan.notes)
    free = _free(clonable)
    done = dedupe.apply(ctx, [a, b])
    assert done.done == 1 and not done.failed
    assert _free(clonable) - free >= SIZE // 2  # the copy's blocks were freed

    st = copy.stat()
    assert st.st_ino != inode and st.st_nlink == 1  # a file of its own, not a hard link
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == meta
    assert sha256(copy) == digest == sha256(kept)
    assert same_blocks(str(copy), str(kept))
    assert store_status(ctx, clonable).dedupe_bytes == SIZE

    again = dedupe.plan(ctx, [a, b])
    assert again.ops == [] and again.reclaimable == 0
    assert {c.role for g in again.groups for c in g.copies} == {"keep", "reflinked"}

    undone = dedupe.undo(ctx, [a, b])
    assert undone.done == 1 and not undone.failed
    assert sha256(copy) == digest and copy.stat().st_nlink == 1
    assert (copy.stat().st_mode & 0o7777, copy.stat().st_mtime_ns) == meta


def test_no_reflink_makes_hard_links_anyway(ctx: Context, clonable: Path) -> None:
    a, b, kept, copy = _two_roots(clonable)
    plan = dedupe.plan(ctx, [a, b], reflink=False)
    assert [op.action for op in plan.ops] == ["link"]
    dedupe.apply(ctx, [a, b], reflink=False)
    assert os.path.samefile(kept, copy)


def test_hard_links_where_the_filesystem_cannot_clone(ctx: Context, tmp_path: Path) -> None:
    if can_reflink(str(tmp_path)):
        pytest.skip(f"{tmp_path} makes reflinks: the fall-back is not reached here")
    a, b, kept, copy = _two_roots(tmp_path)
    plan = dedupe.plan(ctx, [a, b])
    assert [op.action for op in plan.ops] == ["link"]
    assert any("hard links (this filesystem makes no reflinks)" in n for n in plan.notes)
    done = dedupe.apply(ctx, [a, b])
    assert done.done == 1 and os.path.samefile(kept, copy)
