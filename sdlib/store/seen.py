"""Which webUIs see a model file, and how: pure logic over facts the caller gathered.

For one file and the webUI roots sdlib knows (the configured one, every root ``sdlib link``
recorded, the roots of past dedupe runs), each UI that sees the file is named with how:

- ``store``: the file lives in the shared store and the UI is shown that store folder by a
  link or config edit ``sdlib link`` recorded (and that is still in place);
- ``linked``: the UI reaches the file by a symlink or junction (one of its own names leads
  to the same real file, or the file's own name passes through a link);
- ``hardlink``: another name of the same inode is in that UI's folders (after ``sdlib
  dedupe --apply``, say): one copy on disk, deleting one name frees nothing;
- ``copy``: a separate file with the same bytes (same size and SHA256, both known from the
  index or the hash cache; nothing is read to find out), so it costs its size again.

A root that holds the file as a plain file of its own is not named: that is the ordinary
case. Nothing here touches the disk; ``sdlib.services.seen`` stats and resolves names
(never following a link for anything but reading where it leads).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HOWS", "SHORT_NAMES", "Name", "Seen", "Sighting", "UiRoot", "inside", "label_for", "sightings",
]  # fmt: skip

#: The ways a UI sees a file, strongest first (one UI is named once, with the strongest).
HOWS = ("store", "linked", "hardlink", "copy")

#: Compact names for the table column.
SHORT_NAMES: Mapping[str, str] = {
    "a1111": "A1111",
    "forge": "Forge",
    "reforge": "reForge",
    "sdnext": "SD.Next",
    "comfyui": "ComfyUI",
    "stabilitymatrix": "StabilityMatrix",
    "invokeai": "InvokeAI",
    "fooocus": "Fooocus",
    "store": "store",
    "plain": "folder",
}


@dataclass(frozen=True)
class UiRoot:
    """A webUI root sdlib knows. ``shows``: the store folders (absolute, real) it is shown
    through a recorded link or config edit that is still in place."""

    label: str
    ui: str
    root: str
    shows: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "ui": self.ui, "root": self.root, "shows": list(self.shows)}


@dataclass(frozen=True)
class Name:
    """One name of a model file as it is now on disk.

    ``real``: where it resolves; ``dev``/``ino``/``size``: the file it leads to; ``linked``:
    the name is a link or passes through a folder link; ``sha256``: known without reading
    (index or hash cache), else None; ``nlink``: the inode's names on disk.
    """

    path: str
    real: str
    dev: int
    ino: int
    size: int
    linked: bool = False
    sha256: str | None = None
    nlink: int = 1


@dataclass(frozen=True)
class Sighting:
    """``label`` (``root``) sees the file as ``how``; ``path`` is the name it sees it by
    (the store file for ``store``)."""

    label: str
    root: str
    how: str
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"ui": self.label, "root": self.root, "how": self.how, "path": self.path}


@dataclass(frozen=True)
class Seen:
    """Who sees one file. ``elsewhere``: names of its inode outside every known root."""

    path: str
    sightings: tuple[Sighting, ...] = ()
    elsewhere: int = 0

    def compact(self) -> str:
        """``A1111, ComfyUI (store)``: UIs grouped by how, strongest first; empty when no
        other UI sees it and it is a plain file of its own."""
        groups: dict[str, list[str]] = {}
        for s in self.sightings:
            groups.setdefault(s.how, [])
            if s.label not in groups[s.how]:
                groups[s.how].append(s.label)
        return "; ".join(f"{', '.join(groups[h])} ({h})" for h in HOWS if h in groups)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "seen_by": [s.to_dict() for s in self.sightings],
                "elsewhere": self.elsewhere}  # fmt: skip


def label_for(ui: str, root: str, taken: Iterable[str]) -> str:
    """A short name for a UI root; a second root of the same UI adds its folder name."""
    base = SHORT_NAMES.get(ui, ui)
    used = set(taken)
    if base not in used:
        return base
    return f"{base}:{os.path.basename(os.path.normpath(root)) or root}"


def _norm(path: str) -> str:
    return os.path.normcase(os.path.normpath(path))


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies in it (by name: nothing is resolved)."""
    p, f = _norm(path), _norm(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def sightings(
    target: Name, uis: Sequence[UiRoot], others: Iterable[Name], *, home: str | None = None
) -> Seen:
    """Who of ``uis`` sees ``target``; ``others``: names found in the UIs' folders (any of
    them, the target's own name included or not), ``home``: the root ``target`` was found
    in (a plain file there is its own, not a sighting)."""
    names = [o for o in others if _norm(o.path) != _norm(target.path)]
    found: list[Sighting] = []
    for ui in uis:
        how, path = _how(target, ui, names, home)
        if how is not None:
            found.append(Sighting(ui.label, ui.root, how, path))
    # Names of the inode on disk that no known root holds (a symlink is not one of them).
    other_names = {
        _norm(o.real)
        for o in names
        if (o.dev, o.ino) == (target.dev, target.ino) and _norm(o.real) != _norm(target.real)
    }
    elsewhere = max(0, target.nlink - 1 - len(other_names))
    order = {h: i for i, h in enumerate(HOWS)}
    found.sort(key=lambda s: order[s.how])
    return Seen(target.path, tuple(found), elsewhere)


def _how(
    target: Name, ui: UiRoot, names: Sequence[Name], home: str | None
) -> tuple[str | None, str]:
    if any(inside(target.real, folder) for folder in ui.shows):
        return "store", target.real
    mine = [o for o in names if inside(o.path, ui.root)]
    own = home is not None and _norm(home) == _norm(ui.root)
    if own and target.linked:
        return "linked", target.path
    same_real = _norm(target.real)
    for o in mine:
        if _norm(o.real) == same_real and (o.linked or target.linked):
            return "linked", o.path
    for o in mine:
        if (o.dev, o.ino) == (target.dev, target.ino) and _norm(o.real) != same_real:
            return "hardlink", o.path
    if target.sha256:
        for o in mine:
            if (
                o.size == target.size
                and o.sha256 is not None
                and o.sha256.upper() == target.sha256.upper()
                and (o.dev, o.ino) != (target.dev, target.ino)
            ):
                return "copy", o.path
    return None, ""
