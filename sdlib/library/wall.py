"""The root is a wall: the real folders sdlib may move, link or delete files in.

A webUI root, plus the folders the webUI itself is configured to read elsewhere (ComfyUI's
``extra_model_paths.yaml``, the config's ``[library] folders``). A path is judged by where
it *resolves* (symlinks and Windows junctions followed), never by how it is spelled: a
``models/Lora/shared -> /elsewhere`` link is outside the wall even though its name is
inside the root. The walker does not follow such links, organize plans nothing through
them, and the journal checks every path again right before it acts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdlib.library.layouts import Layout

__all__ = ["Wall", "is_link", "real", "within"]


def real(path: str | os.PathLike[str]) -> str:
    """``path`` with every symlink and junction resolved, case-normalised on Windows."""
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it (both already :func:`real`)."""
    try:
        return os.path.commonpath([folder, path]) == folder
    except ValueError:  # another drive on Windows
        return False


def is_link(entry: os.DirEntry[str]) -> bool:
    """A symlink or (Windows) a junction: a name that leads somewhere else."""
    try:
        if entry.is_symlink():
            return True
        junction = getattr(entry, "is_junction", None)  # Python 3.12+
        if junction is not None:
            return bool(junction())
    except OSError:
        return False
    if os.name == "nt":  # 3.10/3.11: a junction is a folder whose real path is elsewhere
        parent = real(os.path.dirname(entry.path))
        return real(entry.path) != os.path.join(parent, os.path.normcase(entry.name))
    return False


@dataclass(frozen=True)
class Wall:
    """Real folders (resolved, normcased) inside which sdlib may change files."""

    roots: tuple[str, ...]

    @classmethod
    def of(cls, root: str | os.PathLike[str], extra: Iterable[str] = ()) -> Wall:
        roots = [real(root)]
        roots += [r for r in (real(e) for e in extra) if r not in roots]
        return cls(tuple(roots))

    @classmethod
    def for_layout(cls, root: str | os.PathLike[str], layout: Layout) -> Wall:
        """``root`` plus the layout's folders that are configured to be outside it.

        A folder named inside the root (``models/Lora``) never widens the wall, even when it
        is a link to elsewhere: only a folder the configuration places outside does.
        """
        top = os.path.normcase(os.path.abspath(os.fspath(root)))
        extra = []
        for folder in layout.scan_folders():
            spelled = os.path.normcase(os.path.normpath(os.path.join(top, folder)))
            if not within(spelled, top):
                extra.append(spelled)
        return cls.of(root, extra)

    def holds(self, path: str | os.PathLike[str]) -> bool:
        """``path`` resolves inside the wall (a path that does not exist yet: its folder)."""
        return self.holds_real(real(path))

    def holds_real(self, resolved: str) -> bool:
        return any(within(resolved, r) for r in self.roots)
