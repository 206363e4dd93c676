"""Walk a layout's model folders: every model file, sidecar and broken link, with its stat.

Reads directory entries and stats only, never file contents. Follows symlinked folders (as
A1111 and ComfyUI do) but visits each real directory once, so a link loop or two links to
one folder cannot list a file twice. Skips hidden folders, diffusers folders (a
``model_index.json`` inside) and sdlib's own temporary files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from sdlib.library.layouts import MODEL_EXTENSIONS, FolderRule, Layout
from sdlib.library.sidecars import SIDECAR_SUFFIXES, is_preview_name

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
    #: model | sidecar | link (a symlink whose target is missing)
    role: str
    st: os.stat_result | None
    is_link: bool = False
    name: str = ""
    directory: str = ""

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


def walk(root: str, layout: Layout) -> tuple[list[Entry], list[str]]:
    """(entries, absolute folders walked) for every folder of ``layout`` under ``root``."""
    folders = [(f, folder_path(root, f)) for f in layout.scan_folders()]
    own = {a for _, a in folders}
    recursive = {f: any(r.recursive for r in layout.rules if f in r.folders) for f, _ in folders}
    visited: set[tuple[int, int]] = set()
    entries: list[Entry] = []
    for folder, folder_abs in folders:
        stack = [folder_abs]
        while stack:
            directory = stack.pop()
            try:
                dst = os.stat(directory)
            except OSError:
                continue  # a folder the layout names but the user does not have
            if not stat.S_ISDIR(dst.st_mode) or (dst.st_dev, dst.st_ino) in visited:
                continue
            visited.add((dst.st_dev, dst.st_ino))
            subdirs = _scan_dir(directory, folder, folder_abs, entries)
            if recursive[folder]:
                stack += sorted((d for d in subdirs if d not in own), reverse=True)
    return entries, [a for _, a in folders]


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


def _scan_dir(directory: str, folder: str, folder_abs: str, out: list[Entry]) -> list[str]:
    """Append the files of one directory to ``out``; return its subdirectories to visit."""
    subdirs: list[str] = []
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
                    subdirs.append(e.path)
                    continue
                is_link = e.is_symlink()
            except OSError:
                continue
            try:
                st: os.stat_result | None = e.stat()  # follows symlinks
            except OSError:
                if not is_link:
                    continue
                st = None  # missing target, or a loop
            if st is not None and not stat.S_ISREG(st.st_mode):
                continue
            role = "link" if st is None else role_of(name)
            if role is None:
                continue
            prefix = folder_abs.rstrip(os.sep) + os.sep
            rel = e.path[len(prefix) :] if e.path.startswith(prefix) else e.name
            out.append(Entry(e.path, folder, folder_abs, rel, role, st, is_link, name, directory))
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
