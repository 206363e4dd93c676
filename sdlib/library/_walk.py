"""Walk a layout's model folders: every model file, sidecar and broken link, with its stat.

Reads directory entries and stats only, never file contents. The root is a wall
(:mod:`sdlib.library.wall`): a symlink or junction (folder or file) that resolves outside it
is reported as a ``link`` entry with ``outside`` set. The webUI loads models through such
links (Stability Matrix links ``models/Stable-diffusion/sd`` to its shared store), so the
walk still lists what is behind a folder link, with ``outside`` set on every entry found
there: those files are read and reported, never moved, renamed or deleted. Links are followed
(as A1111 and ComfyUI do) unless they lead to a folder the walk reaches anyway (a layout
folder, or inside one) or to one of their own ancestors (``loop -> ..``): each real directory
is visited once, under its own name, so a loop or two links to one folder can neither list a
file twice nor make organize nest files one level deeper on every run. Skips hidden folders,
diffusers folders (a ``model_index.json`` inside) and sdlib's own temporary files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from sdlib.library.layouts import MODEL_EXTENSIONS, FolderRule, Layout
from sdlib.library.sidecars import SIDECAR_SUFFIXES, is_preview_name
from sdlib.library.wall import Wall, is_link, real, within

#: Names that are work in progress, not files a front end should see.
_TEMP_SUFFIXES = (".part", ".sdlib-tmp", ".sdlib-part", ".tmp", ".downloading")


@dataclass(frozen=True)
class Entry:
    """One file the walk found."""

    path: str
    #: The layout folder it was found through, as the layout names it.
    folder: str
    folder_abs: str
    #: ``path`` relative to ``folder_abs`` (OS separators).
    rel: str
    #: model | sidecar | link (a symlink whose target is missing, or that leads outside)
    role: str
    st: os.stat_result | None
    is_link: bool = False
    name: str = ""
    directory: str = ""
    #: Outside the wall: a link (to a file or a folder) that resolves outside the root, or
    #: a file found behind a folder link that does. Read and reported, never changed.
    outside: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", os.path.basename(self.path))
        if not self.directory:
            object.__setattr__(self, "directory", os.path.dirname(self.path))

    @property
    def stat_key(self) -> tuple[int, int, int, int] | None:
        if self.st is None:
            return None
        return (self.st.st_dev, self.st.st_ino, self.st.st_size, self.st.st_mtime_ns)


def role_of(name: str) -> str | None:
    """model, sidecar, or None for files a scan ignores."""
    low = name.lower()
    if low.endswith(_TEMP_SUFFIXES) or (low.startswith(".") and ".sdlib" in low):
        return None
    if low.endswith(MODEL_EXTENSIONS):
        return "model"
    if low.endswith(SIDECAR_SUFFIXES) or is_preview_name(name):
        return "sidecar"
    return None


def folder_path(root: str, folder: str) -> str:
    """A layout folder (relative to ``root``, or absolute) as an absolute, normal path."""
    return os.path.normpath(os.path.join(root, folder))


def walk(root: str, layout: Layout, wall: Wall | None = None) -> tuple[list[Entry], list[str]]:
    """(entries, absolute folders walked) for every folder of ``layout`` under ``root``.

    ``wall``: where links may lead (default: ``root`` plus the layout's folders configured
    outside it).
    """
    wall = wall or Wall.for_layout(root, layout)
    folders = [(f, folder_path(root, f)) for f in layout.scan_folders()]
    own = {a for _, a in folders}
    recursive = {f: any(r.recursive for r in layout.rules if f in r.folders) for f, _ in folders}
    reals = {a: real(a) for _, a in folders}
    #: Real folders the walk reaches under their own names: a link into one is an alias.
    covered = [(reals[a], recursive[f]) for f, a in folders if os.path.isdir(a)]
    visited: set[tuple[int, int]] = set()
    entries: list[Entry] = []
    for folder, folder_abs in folders:
        if not os.path.lexists(folder_abs):
            continue  # a folder the layout names but the user does not have
        beyond = not wall.holds_real(reals[folder_abs])
        if beyond:
            entries.append(_outside(folder_abs, folder, folder_abs))
        stack = [(folder_abs, reals[folder_abs], beyond)]
        while stack:
            directory, directory_real, beyond = stack.pop()
            try:
                dst = os.stat(directory)
            except OSError:
                continue
            if not stat.S_ISDIR(dst.st_mode) or (dst.st_dev, dst.st_ino) in visited:
                continue
            visited.add((dst.st_dev, dst.st_ino))
            subdirs = _scan_dir(directory, folder, folder_abs, entries, wall, beyond)
            if not recursive[folder]:
                continue
            follow: list[tuple[str, str, bool]] = []
            for path, linked in subdirs:
                if path in own:
                    continue
                if not linked:
                    name = os.path.normcase(os.path.basename(path))
                    follow.append((path, os.path.join(directory_real, name), beyond))
                    continue
                target = real(path)
                leaves = not wall.holds_real(target)
                if leaves and not beyond:
                    entries.append(_outside(path, folder, folder_abs))
                if not within(directory_real, target) and not any(
                    target == c or (rec and within(target, c)) for c, rec in covered
                ):
                    follow.append((path, target, beyond or leaves))  # else a loop, or reached
            stack += sorted(follow, reverse=True)
    return entries, [a for _, a in folders]


def _outside(path: str, folder: str, folder_abs: str) -> Entry:
    prefix = folder_abs.rstrip(os.sep) + os.sep
    rel = path[len(prefix) :] if path.startswith(prefix) else os.path.basename(path)
    return Entry(path, folder, folder_abs, rel, "link", None, True, outside=True)


def walk_files(paths: Iterable[str], folder_abs: str) -> list[Entry]:
    """Entries for just these files and the sidecars beside them (``identify FILE``)."""
    entries: list[Entry] = []
    wanted = {os.path.abspath(p) for p in paths}
    by_dir: dict[str, set[str]] = {}
    for p in wanted:
        by_dir.setdefault(os.path.dirname(p), set()).add(os.path.basename(p))
    for directory, names in by_dir.items():
        stems = {os.path.splitext(n)[0] for n in names}
        found: list[Entry] = []
        _scan_dir(directory, ".", folder_abs, found)
        for e in found:
            if e.name in names or (
                e.role == "sidecar" and any(e.name.startswith(s + ".") for s in stems)
            ):
                entries.append(e)
    return entries


def _scan_dir(
    directory: str,
    folder: str,
    folder_abs: str,
    out: list[Entry],
    wall: Wall | None = None,
    beyond: bool = False,
) -> list[tuple[str, bool]]:
    """Append the files of one directory to ``out``; return its subdirectories to visit
    (path, whether it is a link). A file link that resolves outside ``wall``, and every file
    of a directory ``beyond`` it, is marked ``outside``."""
    subdirs: list[tuple[str, bool]] = []
    try:
        it = os.scandir(directory)
    except OSError:
        return subdirs
    with it:
        for e in it:
            name = e.name
            try:
                if e.is_dir():
                    if name.startswith(".") or name == "__pycache__":
                        continue
                    if os.path.exists(os.path.join(e.path, "model_index.json")):
                        continue  # a diffusers folder: one model, not files to sort
                    subdirs.append((e.path, is_link(e)))
                    continue
                linked = e.is_symlink()
            except OSError:
                continue
            outside = beyond or (linked and wall is not None and not wall.holds(e.path))
            try:
                st: os.stat_result | None = e.stat()  # follows symlinks
            except OSError:
                if not linked:
                    continue
                st = None  # missing target, or a loop
            if st is not None and not stat.S_ISREG(st.st_mode):
                continue
            role = "link" if st is None else role_of(name)
            if role is None:
                continue
            prefix = folder_abs.rstrip(os.sep) + os.sep
            rel = e.path[len(prefix) :] if e.path.startswith(prefix) else e.name
            out.append(
                Entry(e.path, folder, folder_abs, rel, role, st, linked, name, directory, outside)
            )
    return subdirs


def rules_listing(layout: Layout, folder: str, name: str) -> list[FolderRule]:
    """Rules under which the front end lists ``name`` in ``folder`` (case ignored)."""
    low = name.lower()
    return [
        r
        for r in layout.rules
        if folder in r.folders
        and any(low.endswith(x.lower()) for x in r.extensions)
        and not any(low.endswith(x) for x in r.exclude)
    ]
