"""Move files to the trash: the operating system's (``send2trash``: the Recycle Bin, the
macOS Trash, the freedesktop trash), or, where there is none, sdlib's own folder.

The fallback is ``<root>/.sdlib-trash/<time>/``, keeping each file's path inside the root,
with a ``restore.json`` that says where each came from: a same-disk rename (instant,
nothing copied) into a folder no webUI loads models from. It is used only when the system
trash refuses a file (no trash on that volume, no permission, a read-only file...).

Only files whose names lie inside the root are touched (:mod:`sdlib.library.wall`); a link
is trashed as the link, never through it. One implementation for the TUI and, later, the CLI.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sdlib.errors import LibraryError
from sdlib.library.wall import Wall, real

__all__ = ["TRASH_DIR", "TrashResult", "move_to_trash"]

TRASH_DIR = ".sdlib-trash"


@dataclass(frozen=True)
class TrashResult:
    #: Paths that went to the system trash, and to the fallback folder.
    system: tuple[str, ...]
    fallback: tuple[str, ...]
    #: The fallback folder (None when the system trash took everything).
    folder: Path | None

    @property
    def where(self) -> str:
        if self.folder is None:
            return "the system trash"
        return str(self.folder) if not self.system else f"the system trash and {self.folder}"


def _system_trash(path: str) -> None:
    from send2trash import send2trash

    send2trash(path)


def move_to_trash(
    paths: Sequence[str | os.PathLike[str]],
    root: str | os.PathLike[str],
    *,
    wall: Wall | None = None,
    system: Callable[[str], None] | None = None,
) -> TrashResult:
    """Move ``paths`` (in this order: put a model last, after its sidecars) to the trash.

    Refuses, before touching anything, a path whose name lies outside ``wall`` (default:
    the root). Files already gone are skipped; if none was there, LibraryError.
    """
    send = system or _system_trash
    top = Path(os.path.abspath(os.fspath(root)))
    wall = wall or Wall.of(top)
    names = [os.path.abspath(os.fspath(p)) for p in paths]
    for name in names:
        # The name, not its target: a link is trashed as the link.
        if not wall.holds_real(os.path.join(real(os.path.dirname(name)), _case(name))):
            raise LibraryError("outside the webUI folder: not moved to the trash", path=name)
    to_system: list[str] = []
    to_folder: list[str] = []
    folder: Path | None = None
    try:
        for name in names:
            if not os.path.lexists(name):
                continue
            if folder is None:
                try:
                    send(name)
                except OSError:  # TrashPermissionError too: no usable trash for this file
                    if not os.path.lexists(name):
                        continue  # vanished meanwhile
                    folder = _new_folder(top)
                else:
                    to_system.append(name)
                    continue
            _into_folder(name, top, folder)
            to_folder.append(name)
    finally:
        if folder is not None and to_folder:  # even when a later file failed
            restore = {str(_target(n, top, folder)): n for n in to_folder}
            (folder / "restore.json").write_text(json.dumps(restore, indent=2), encoding="utf-8")
    if not to_system and not to_folder:
        raise LibraryError("the file is gone already", path=names[-1] if names else None)
    return TrashResult(tuple(to_system), tuple(to_folder), folder)


def _case(path: str) -> str:
    return os.path.normcase(os.path.basename(path))


def _new_folder(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = root / TRASH_DIR / stamp, 1
    while folder.exists():
        n += 1
        folder = root / TRASH_DIR / f"{stamp}-{n}"
    return folder


def _target(name: str, root: Path, folder: Path) -> Path:
    try:
        rel = Path(name).relative_to(root)
    except ValueError:
        rel = Path(Path(name).name)
    return folder / rel


def _into_folder(name: str, root: Path, folder: Path) -> None:
    dst = _target(name, root, folder)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(name, dst)
    except OSError as exc:
        raise LibraryError(
            f"cannot move it to the trash: {exc.strerror or exc}", path=name
        ) from None
