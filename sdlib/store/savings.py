"""The space a shared store saves: what the linked webUIs would otherwise hold as copies.

Each store file seen by N webUIs (through a folder link, a config key, or a hard link made by
``sdlib link --method hardlink``) would be N copies without the store: it saves (N - 1) times
its size. A file no linked webUI sees saves nothing. Pure counting; the caller gathers which
folders and files each webUI sees, and the files' sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["View", "shared_savings"]


@dataclass(frozen=True)
class View:
    """What one linked webUI sees of the store: whole kind folders (links, config keys) and
    single files (hard links: ``(folder, path relative to it)``)."""

    folders: frozenset[str] = frozenset()
    files: frozenset[tuple[str, str]] = frozenset()


def shared_savings(
    files: Mapping[str, Sequence[tuple[str, int]]], views: Iterable[View]
) -> tuple[int, int]:
    """(bytes saved, files seen by more than one webUI). ``files``: store folder -> its
    model files as (path relative to the folder, size)."""
    views = list(views)
    saved = 0
    shared = 0
    for folder, entries in files.items():
        whole = sum(1 for v in views if folder in v.folders)
        for rel, size in entries:
            n = whole + sum(1 for v in views if (folder, rel) in v.files)
            if n > 1:
                saved += (n - 1) * size
                shared += 1
    return saved, shared
