"""Move to trash: the operating system's trash first (here a private freedesktop trash under
tmp, never the user's), the webUI's own ``.sdlib-trash`` only where the system refuses."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from sdlib.errors import LibraryError
from sdlib.library.trash import TRASH_DIR, move_to_trash
from tests.support import trees


@pytest.fixture
def system_trash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A freedesktop trash at ``<tmp>/home/.local/share/Trash`` (HOME and XDG_DATA_HOME
    point there; send2trash read XDG_DATA_HOME when imported, so its copy is set too)."""
    import send2trash
    import send2trash.plat_other as freedesktop

    if send2trash.send2trash.__module__ != "send2trash.plat_other":
        pytest.skip("this platform's trash cannot be pointed at a temporary folder")
    home = tmp_path / "home"
    data = home / ".local" / "share"
    data.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setattr(freedesktop, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(freedesktop, "HOMETRASH_B", os.fsencode(data / "Trash"))
    monkeypatch.setattr(freedesktop, "HOMETRASH", str(data / "Trash"))
    return data / "Trash"


def model_with_sidecars(root: Path) -> list[Path]:
    lora = root / "models" / "Lora"
    model = trees.st(lora / "style.safetensors", "lora_sd15_kohya")
    info = trees.touch(lora / "style.civitai.info", '{"id": 1}')
    return [info, model]


def test_files_go_to_the_system_trash(tmp_path: Path, system_trash: Path) -> None:
    root = trees.a1111(tmp_path / "home" / "webui")
    info, model = model_with_sidecars(root)
    sha = trees.sha256(model)
    done = move_to_trash([info, model], root)
    assert done.system == (str(info), str(model)) and done.folder is None
    assert not info.exists() and not model.exists()
    assert trees.sha256(system_trash / "files" / "style.safetensors") == sha
    # freedesktop: an .trashinfo per file records where it came from (for "restore").
    record = (system_trash / "info" / "style.safetensors.trashinfo").read_text()
    assert f"Path={model}" in record.replace("%20", " ")
    assert not (root / TRASH_DIR).exists()


def test_without_a_system_trash_files_go_to_the_webui_trash(tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    info, model = model_with_sidecars(root)
    sha = trees.sha256(model)

    def refuse(path: str) -> None:
        from send2trash import TrashPermissionError

        raise TrashPermissionError(path)

    done = move_to_trash([info, model], root, system=refuse)
    assert done.system == () and done.folder is not None
    assert done.folder.parent == root / TRASH_DIR
    kept = done.folder / "models" / "Lora" / "style.safetensors"
    assert trees.sha256(kept) == sha and not model.exists()
    restore = json.loads((done.folder / "restore.json").read_text())
    assert restore == {str(kept): str(model), str(kept.with_name("style.civitai.info")): str(info)}


def test_a_later_refusal_falls_back_for_the_rest(tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    info, model = model_with_sidecars(root)
    taken: list[str] = []

    def first_only(path: str) -> None:
        if taken:
            raise OSError(errno.EXDEV, "no trash on this volume")
        taken.append(path)
        os.unlink(path)  # what a trash does with it, as far as this folder can tell

    done = move_to_trash([info, model], root, system=first_only)
    assert done.system == (str(info),) and done.fallback == (str(model),)
    assert done.folder is not None and (done.folder / "models/Lora/style.safetensors").is_file()


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_nothing_outside_the_root_is_trashed(tmp_path: Path, system_trash: Path) -> None:
    root = trees.a1111(tmp_path / "home" / "webui")
    outside = trees.st(tmp_path / "elsewhere" / "x.safetensors", "lora_sd15_kohya")
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "ext").symlink_to(outside.parent, target_is_directory=True)
    for path in (outside, root / "models" / "ext" / "x.safetensors", root / ".." / "x"):
        with pytest.raises(LibraryError, match="outside the webUI folder"):
            move_to_trash([path], root)
    assert outside.is_file() and not system_trash.exists()
    # A link inside the root is trashed as the link; its target stays.
    link = root / "models" / "Lora" / "link.safetensors"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    move_to_trash([link], root)
    assert not os.path.lexists(link) and outside.is_file()


def test_a_file_that_is_gone_is_an_error(tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    with pytest.raises(LibraryError, match="gone already"):
        move_to_trash([root / "models" / "Lora" / "nope.safetensors"], root, system=os.unlink)
