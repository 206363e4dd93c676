"""``sdlib store status``: the store, what each kind folder holds, the webUIs it is linked
into, and the space it and ``sdlib dedupe`` save (re-exported by :mod:`sdlib.services.store`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.services._context import Context
    from sdlib.store.record import LinkRecord
    from sdlib.store.savings import View

__all__ = ["StoreStatus", "store_status", "view"]


@dataclass(frozen=True)
class StoreStatus:
    path: str | None
    exists: bool
    #: (store folder, model files, bytes) per kind folder that exists.
    folders: tuple[tuple[str, int, int], ...]
    #: Recorded links into webUIs: root, ui, method, created, intact (every link still there).
    links: tuple[dict[str, Any], ...]
    #: Bytes the linked webUIs would otherwise hold as copies: each store file seen by N of
    #: them counts (N - 1) x its size; and how many files that is.
    shared_bytes: int = 0
    shared_files: int = 0
    #: Bytes (and names) `sdlib dedupe --apply` hard links still save.
    dedupe_bytes: int = 0
    dedupe_files: int = 0

    @property
    def reclaimed(self) -> int:
        """All the space the store and dedupe save."""
        return self.shared_bytes + self.dedupe_bytes

    @property
    def files(self) -> int:
        return sum(f[1] for f in self.folders)

    @property
    def bytes(self) -> int:
        return sum(f[2] for f in self.folders)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "exists": self.exists, "files": self.files, "bytes": self.bytes,
            "folders": [{"folder": f, "files": n, "bytes": b} for f, n, b in self.folders],
            "links": list(self.links),
            "reclaimed": {"bytes": self.reclaimed,
                          "shared": {"bytes": self.shared_bytes, "files": self.shared_files},
                          "dedupe": {"bytes": self.dedupe_bytes, "files": self.dedupe_files}},
        }  # fmt: skip


def store_status(ctx: Context, store: str | os.PathLike[str] | None = None) -> StoreStatus:
    """The store (``store``, default ``[store] path``), what each kind folder holds, the
    webUIs it is linked into (whether each link is still in place), and the space it and
    ``sdlib dedupe`` save."""
    from sdlib.library.dedupe import linked_savings
    from sdlib.store.links import same_target
    from sdlib.store.record import FILE_NAME, load_records, same_path
    from sdlib.store.savings import shared_savings
    from sdlib.store.tree import present, sized_files

    raw = store if store is not None else ctx.settings.store.path
    path = Path(os.path.abspath(Path(raw).expanduser())) if raw else None
    exists = path is not None and path.is_dir()
    files = {f: sized_files(path / f) for f in present(path)} if path and exists else {}
    counts = tuple((f, len(entries), sum(size for _, size in entries))
                   for f, entries in files.items())  # fmt: skip
    links = []
    views = []
    for record in load_records(Path(ctx.settings.data_dir) / FILE_NAME):
        if path is None or not same_path(record.store, str(path)):
            continue
        views.append(view(record, str(path)))
        intact = all(
            same_target(a.path, a.target) if a.op in ("symlink", "junction")
            else os.path.lexists(a.path)
            for a in record.actions if a.op != "mkdir"
        )  # fmt: skip
        links.append({"root": record.root, "ui": record.ui, "method": record.method,
                      "created": record.created, "intact": intact})  # fmt: skip
    shared, shared_n = shared_savings(files, views)
    deduped, deduped_n = linked_savings(Path(ctx.settings.data_dir))
    return StoreStatus(str(path) if path else None, exists, counts, tuple(links),
                       shared, shared_n, deduped, deduped_n)  # fmt: skip


def view(record: LinkRecord, store: str) -> View:
    """What of the store the webUI of ``record`` sees now: links still leading to the store,
    config edits still in their file, hard links still the store's inode."""
    from sdlib.store.folders import COMFY_KEYS, SDNEXT_KEYS
    from sdlib.store.links import same_target
    from sdlib.store.savings import View
    from sdlib.store.tree import present

    folders: list[str] = []
    files: list[tuple[str, str]] = []
    for action in record.actions:
        if action.op in ("symlink", "junction") and same_target(action.path, action.target):
            folders.append(os.path.basename(action.target))
        elif action.op in ("yaml", "json") and os.path.isfile(action.path):
            keys = COMFY_KEYS if action.op == "yaml" else SDNEXT_KEYS
            folders += [f for f in present(Path(store)) if f in keys]
        elif action.op == "hardlink" and _same_file(action.path, action.target):
            rel = os.path.relpath(action.target, store).split(os.sep)
            files.append((rel[0], "/".join(rel[1:])))
    return View(frozenset(folders), frozenset(files))


def _same_file(a: str, b: str) -> bool:
    try:
        return not os.path.islink(a) and os.path.samefile(a, b)
    except OSError:
        return False
