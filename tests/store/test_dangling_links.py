"""Links leading out of a webUI root (any link, not only `sdlib link`'s): scan tells a dangling
one (its target is gone) from one that points outside the root, and nothing that deletes or
replaces files (organize --dedupe delete, dedupe --apply, unlink) acts through either."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.conftest import RunCli
from tests.support import trees
from tests.support.trees import st


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root = trees.a1111(tmp_path / "webui")
    outside = tmp_path / "elsewhere"
    lora = root / "models" / "Lora"
    st(lora / "mine.safetensors", "lora_sd15_kohya", {"who": "me"}, small=True)
    # The very bytes of mine.safetensors outside the root, reached through a file link: a
    # duplicate by content, which nothing may delete through the link.
    st(outside / "far.safetensors", "lora_sd15_kohya", {"who": "me"}, small=True)
    (lora / "to far.safetensors").symlink_to(outside / "far.safetensors")
    (lora / "gone far.safetensors").symlink_to(outside / "deleted.safetensors")
    (lora / "gone near.safetensors").symlink_to("missing.safetensors")
    (lora / "shelf").symlink_to(outside, target_is_directory=True)
    (outside / "dead").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    return root, outside


def test_scan_tells_dangling_from_outside(tmp_path: Path, run_cli: RunCli) -> None:
    root, outside = _tree(tmp_path)
    out = run_cli("scan", str(root), "--json")
    assert out.returncode == 0, out.stderr
    import json

    files = {f["rel"]: f for f in json.loads(out.stdout)["files"]}
    # (a duplicate too: the same bytes as mine.safetensors)
    assert "link-outside-root" in files["models/Lora/to far.safetensors"]["status"]
    assert files["models/Lora/shelf"]["status"] == ["link-outside-root"]
    # Both dangling links are broken, wherever they pointed; the outside one says where.
    assert files["models/Lora/gone far.safetensors"]["status"] == ["broken-link"]
    assert files["models/Lora/gone near.safetensors"]["status"] == ["broken-link"]
    note = " ".join(files["models/Lora/gone far.safetensors"]["notes"])
    assert "dangling" in note and str(outside / "deleted.safetensors") in note
    assert "outside the root" in note


def test_nothing_deletes_through_a_link(tmp_path: Path, run_cli: RunCli) -> None:
    root, outside = _tree(tmp_path)
    lora = root / "models" / "Lora"
    far = outside / "far.safetensors"
    want = _sha(far)
    assert want == _sha(lora / "mine.safetensors")
    links = {p: os.readlink(p) for p in lora.iterdir() if p.is_symlink()}

    for args in (
        ("organize", str(root), "--dedupe", "delete", "--apply", "--json"),
        ("organize", str(root), "--dedupe", "hardlink", "--apply", "--json"),
        ("dedupe", str(root), str(tmp_path / "unrelated"), "--apply", "--json"),
    ):
        (tmp_path / "unrelated").mkdir(exist_ok=True)
        done = run_cli(*args)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr
        assert (tmp_path / "data" / "organize").is_dir() or args[0] == "dedupe"
        # The file outside is there with its bytes and its own inode; every link is still
        # the link it was, leading where it led.
        assert far.is_file() and not far.is_symlink() and _sha(far) == want
        assert os.stat(far).st_nlink == 1
        assert {p: os.readlink(p) for p in lora.iterdir() if p.is_symlink()} == links
        assert (lora / "mine.safetensors").is_file()
        assert (outside / "dead").is_symlink()
