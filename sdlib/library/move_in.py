"""``sdlib link --move-existing``: a webUI's own model files moved into the shared store,
journaled as organize's moves are (:mod:`sdlib.library._journal`), and moved back on unlink.

The caller (the service layer, which knows the store's folders) names each pair (a webUI
folder, the store folder that is shown to the UI in its place). The plan walks each webUI
folder without following any link and takes every model file with its sidecars (same
folder, same stem: ``.civitai.info``, previews...), keeping sub-folders:
``models/Lora/styles/a.safetensors`` goes to ``STORE/Lora/styles/a.safetensors``. What is
not a model or its sidecar (a git-tracked placeholder, a config) stays, as do links (file or
folder: a link is never moved, nor anything through it), and hidden and temporary files.
Where the store already has the name with the very same bytes (same size and SHA256), the
webUI's copy is removed instead (the journal's ``delete``, made only while the store's copy
still has that SHA256; undo copies it back, verified); a name the store has with other bytes
leaves the model and its sidecars where they are (said in a note).

The journal's moves never lose a byte: on one volume a hard link to the new name, then the
old name removed (or a rename where hard links are not possible); across volumes a copy
beside the target, fsynced, re-read and compared by SHA256, renamed into place, and only
then the original removed. A run killed at any point is finished by running it again, or
reverted by undo, which moves every file back to its original path with its bytes, mtime
and mode. Only the webUI root and the store (the journal's wall) are ever touched.
Journals are ``store-move-*.jsonl`` beside organize's and share its lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdlib.library._fileops import is_link
from sdlib.library._journal import (
    Journal,
    OnStep,
    Op,
    RunReport,
    Sha256Of,
    apply_journal,
    locked,
    undo_journal,
)
from sdlib.library._plan import journal_dir
from sdlib.library.layouts import MODEL_EXTENSIONS
from sdlib.library.sidecars import sidecars_of
from sdlib.library.wall import Wall

__all__ = [
    "MovePlan", "RunReport", "apply_moves", "create_journal", "load_moves", "plan_moves",
    "undo_moves",
]  # fmt: skip

PREFIX = "store-move"
_TEMP = (".part", ".sdlib-part", ".sdlib-tmp", ".tmp", ".downloading")


@dataclass
class MovePlan:
    root: str
    store: str
    ops: list[Op] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall: tuple[str, ...] = ()
    index: str | None = None

    @property
    def files(self) -> int:
        return sum(1 for op in self.ops if op.action in ("move", "delete"))

    @property
    def bytes(self) -> int:
        return sum(op.size or 0 for op in self.ops if op.action in ("move", "delete"))

    def header(self) -> dict[str, Any]:
        return {"command": "store-move", "root": self.root, "store": self.store,
                "wall": list(self.wall), "ops": [op.to_dict() for op in self.ops],
                **({"index": self.index} if self.index else {})}  # fmt: skip


def _is_model(name: str) -> bool:
    low = name.lower()
    return low.endswith(MODEL_EXTENSIONS) and not low.endswith(_TEMP)


def _files(folder: str) -> list[str]:
    """Regular files under ``folder``: hidden names and links (files or folders) skipped."""
    out: list[str] = []
    stack = [folder]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or is_link(e.path):
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
            elif e.is_file(follow_symlinks=False):
                out.append(e.path)
    return sorted(out)


def plan_moves(
    root: str, store: str, pairs: Sequence[tuple[str, str]], *, index: str | None = None,
    sha256_of: Callable[[str], str | None] | None = None,
) -> MovePlan:  # fmt: skip
    """Moves of the model files (and sidecars) in each ``(webUI folder, store folder)``.

    Folders that do not exist, are links, or resolve outside ``root`` are skipped.
    ``sha256_of`` tells a name the store has with the same bytes (then the copy goes).
    """
    wall = Wall.of(root, [store])
    plan = MovePlan(root, store, wall=wall.roots, index=index)
    inside = Wall.of(root)
    taken: set[str] = set()
    made: set[str] = set()
    for ui_folder, store_folder in pairs:
        if not os.path.isdir(ui_folder) or is_link(ui_folder) or not inside.holds(ui_folder):
            continue
        claimed: set[str] = set()
        for path in _files(ui_folder):
            if path in claimed or not _is_model(os.path.basename(path)):
                continue
            group = [path] + [
                str(p) for p in sidecars_of(Path(path))
                if not is_link(str(p)) and str(p) not in claimed
            ]  # fmt: skip
            claimed.update(group)
            _plan_group(plan, group, ui_folder, store_folder, taken, made, sha256_of)
    return plan


def _plan_group(
    plan: MovePlan, group: list[str], ui_folder: str, store_folder: str,
    taken: set[str], made: set[str], sha256_of: Callable[[str], str | None] | None,
) -> None:  # fmt: skip
    dsts = [os.path.join(store_folder, os.path.relpath(p, ui_folder)) for p in group]
    same: dict[str, str] = {}  # src -> the SHA256 the store's copy of that name has too
    for src, dst in zip(group, dsts, strict=True):
        digest = None
        if os.path.normcase(dst) not in taken and os.path.lexists(dst):
            digest = _same_bytes(src, dst, sha256_of)
        if os.path.normcase(dst) in taken or (os.path.lexists(dst) and digest is None):
            plan.notes.append(f"{group[0]}: left where it is: the store already has {dst}, "
                              "with other bytes")  # fmt: skip
            return
        if digest is not None:
            same[src] = digest
    number = 1 + max((op.group or 0 for op in plan.ops), default=0)
    for src, dst in zip(group, dsts, strict=True):
        st = os.lstat(src)
        size, mtime, mode = st.st_size, st.st_mtime_ns, st.st_mode & 0o7777
        if src in same:
            plan.ops.append(Op("delete", src, keep=dst, size=size, mtime_ns=mtime, mode=mode,
                               sha256=same[src], group=number,
                               why="the store has the same bytes"))  # fmt: skip
            continue
        _mkdirs(plan, os.path.dirname(dst), store_folder, made)
        plan.ops.append(Op("move", src, dst=dst, size=size, mtime_ns=mtime, mode=mode,
                           group=number, why="into the shared store"))  # fmt: skip
        taken.add(os.path.normcase(dst))


def _same_bytes(src: str, dst: str, sha256_of: Callable[[str], str | None] | None) -> str | None:
    """The SHA256 ``src`` and the store's ``dst`` share (a regular file, same size), else None."""
    if sha256_of is None or is_link(dst) or not os.path.isfile(dst):
        return None
    if os.lstat(src).st_size != os.lstat(dst).st_size:
        return None
    a, b = sha256_of(src), sha256_of(dst)
    return a.upper() if a is not None and b is not None and a.upper() == b.upper() else None


def _mkdirs(plan: MovePlan, folder: str, top: str, made: set[str]) -> None:
    missing: list[str] = []
    while folder not in made and not os.path.isdir(folder) and len(folder) >= len(top):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        plan.ops.append(Op("mkdir", path))
        made.add(path)


def load_moves(path: str) -> Journal | None:
    """The move journal at ``path`` (None if it is gone)."""
    p = Path(path)
    return Journal.load(p) if p.is_file() else None


def create_journal(data_dir: Path, plan: MovePlan) -> Journal:
    """The plan written (and fsynced) as a new journal, before any file is touched."""
    with locked(journal_dir(data_dir)):
        return Journal.create(journal_dir(data_dir), plan.header(), PREFIX)


def apply_moves(
    data_dir: Path, journal: Journal, sha256_of: Sha256Of, on_step: OnStep | None = None
) -> RunReport:
    """Carry out (or finish) the moves of ``journal``."""
    with locked(journal_dir(data_dir)):
        return apply_journal(Journal.load(journal.path), sha256_of, on_step)


def undo_moves(
    data_dir: Path, journal: Journal, sha256_of: Sha256Of, on_step: OnStep | None = None
) -> RunReport | None:
    """Move every file back to where it was (or finish an interrupted undo); None when it
    was undone already."""
    with locked(journal_dir(data_dir)):
        fresh = Journal.load(journal.path)
        if fresh.state == "undone":
            return None
        return undo_journal(fresh, sha256_of, on_step)
