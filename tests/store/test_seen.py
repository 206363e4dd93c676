"""Which webUIs see a file: store links, symlinks, hard links and copies on real folders.

The expected answers come from how the files were made here (os.link, os.symlink,
shutil.copyfile, ``sdlib link``), never from sdlib's own output.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.config import LibrarySettings
from sdlib.services import Context, dedupe
from sdlib.services.library import scan
from sdlib.services.seen import known_uis, seen_by
from sdlib.services.store import link_store
from sdlib.store.seen import Name, UiRoot, sightings
from tests.store.conftest import make_root
from tests.support.trees import st

needs_symlinks = pytest.mark.skipif(
    os.name == "nt", reason="symlinks on Windows need admin rights or Developer Mode"
)


def _name(path: str, ino: int, *, real: str | None = None, linked: bool = False,
          sha: str | None = None, nlink: int = 1, size: int = 10) -> Name:  # fmt: skip
    return Name(path, real or path, 1, ino, size, linked, sha, nlink)


def test_rules_on_plain_facts() -> None:
    a = UiRoot("A1111", "a1111", "/a")
    b = UiRoot("ComfyUI", "comfyui", "/b", shows=("/store/Lora",))
    c = UiRoot("Forge", "forge", "/c")
    # A store file reached from A through a folder link; B is shown the store by config.
    target = _name("/a/models/Lora/sdlib-store/x", 1, real="/store/Lora/x", linked=True)
    seen = sightings(target, [a, b, c], [], home="/a")
    assert [(s.label, s.how) for s in seen.sightings] == [("ComfyUI", "store"), ("A1111", "linked")]
    assert seen.compact() == "ComfyUI (store); A1111 (linked)"

    # A plain file of A: A is not named; C holds a hard link; B a copy with the same SHA256.
    target = _name("/a/m/x", 5, sha="ab", nlink=3)
    others = [_name("/c/m/x", 5), _name("/b/m/x", 6, sha="AB"), _name("/b/m/y", 7, sha="cd")]
    seen = sightings(target, [a, b, c], others, home="/a")
    assert [(s.label, s.how, s.path) for s in seen.sightings] == [
        ("Forge", "hardlink", "/c/m/x"), ("ComfyUI", "copy", "/b/m/x")
    ]  # fmt: skip
    assert seen.elsewhere == 1  # three names on disk, two known
    # Same size, unknown SHA256: not called a copy (nothing is read to find out).
    assert sightings(_name("/a/m/x", 5), [a, b], [_name("/b/m/x", 6, sha="AB")]).sightings == ()


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return make_root(tmp_path, "a1111", own_models=False), make_root(
        tmp_path, "comfyui", own_models=False
    )


def _configured(ctx: Context, root: Path) -> Context:
    settings = replace(ctx.settings, library=LibrarySettings(root=str(root), ui="a1111"))
    return Context(settings)


@needs_symlinks
def test_a_store_linked_into_two_uis_is_seen_by_both(
    ctx: Context, store: Path, roots: tuple[Path, Path]
) -> None:
    a1111, comfy = roots
    link_store(ctx, a1111, "a1111", method="symlink")
    link_store(ctx, comfy, "comfyui", method="config")
    with _configured(ctx, a1111) as c:
        uis = known_uis(c)
        assert [(u.label, u.root) for u in uis] == [
            ("A1111", str(a1111)), ("ComfyUI", str(comfy))
        ]  # fmt: skip
        through = a1111 / "models" / "Lora" / "sdlib-store" / "sub" / "shared lora.safetensors"
        in_store = store / "Lora" / "sub" / "shared lora.safetensors"
        report = seen_by(c, [through, in_store])
        for path in (through, in_store):
            who = report.files[str(path)]
            assert {(s.label, s.how) for s in who.sightings} == {
                ("A1111", "store"), ("ComfyUI", "store")
            }  # fmt: skip
            assert who.compact() == "A1111, ComfyUI (store)"


@needs_symlinks
def test_hard_links_symlinks_and_copies_across_roots(
    ctx: Context, roots: tuple[Path, Path]
) -> None:
    a1111, comfy = roots
    mine = a1111 / "models" / "Stable-diffusion"
    theirs = comfy / "models" / "checkpoints"
    st(mine / "twin one.safetensors", "sd15_pruned_fp16", {"n": "1"}, small=True)
    shutil.copyfile(mine / "twin one.safetensors", theirs / "twin [copy].safetensors")
    st(mine / "pointed.safetensors", "sd15_pruned_fp16", {"n": "2"}, small=True)
    os.symlink(mine / "pointed.safetensors", theirs / "pointed.safetensors")
    st(mine / "alone.safetensors", "sd15_pruned_fp16", {"n": "3"}, small=True)
    with _configured(ctx, a1111) as c:
        done = dedupe.apply(c, [a1111, comfy], ["a1111", "comfyui"])
        assert done.done == 1
        # The dedupe run makes the ComfyUI root known; its twin is now one inode with ours.
        assert os.path.samefile(mine / "twin one.safetensors", theirs / "twin [copy].safetensors")
        # A later copy: separate bytes, SHA256 known to the hash cache (as a verify leaves it).
        st(mine / "later.safetensors", "sd15_pruned_fp16", {"n": "4"}, small=True)
        shutil.copyfile(mine / "later.safetensors", theirs / "later.safetensors")
        for path in (mine / "later.safetensors", theirs / "later.safetensors"):
            c.hashes.get(path)
        scan(c, comfy, ui="comfyui")
        scan(c, a1111, ui="a1111")
        report = seen_by(c, sorted(str(p) for p in mine.glob("*.safetensors")))
        got = {os.path.basename(p): s.compact() for p, s in report.files.items()}
    assert got == {
        "twin one.safetensors": "ComfyUI (hardlink)",
        "pointed.safetensors": "ComfyUI (linked)",
        "later.safetensors": "ComfyUI (copy)",
        "alone.safetensors": "",
    }


def test_an_undone_dedupe_no_longer_makes_its_roots_known(
    ctx: Context, roots: tuple[Path, Path]
) -> None:
    a1111, comfy = roots
    st(a1111 / "models" / "Stable-diffusion" / "x.safetensors", "sd15_pruned_fp16", small=True)
    shutil.copyfile(a1111 / "models" / "Stable-diffusion" / "x.safetensors",
                    comfy / "models" / "checkpoints" / "x.safetensors")  # fmt: skip
    with _configured(ctx, a1111) as c:
        dedupe.apply(c, [a1111, comfy], ["a1111", "comfyui"])
        assert [u.label for u in known_uis(c)] == ["A1111", "ComfyUI"]
        dedupe.undo(c, [a1111, comfy])
        assert [u.label for u in known_uis(c)] == ["A1111"]
