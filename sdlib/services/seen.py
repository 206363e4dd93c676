"""Which webUIs see each model file (store, linked, hardlink, copy): the Library screen's
column, and the same answer for scripts.

    from sdlib.services import Context, seen

    with Context() as ctx:
        report = seen.seen_by(ctx, ["~/stable-diffusion-webui/models/Lora/x.safetensors"])
        for path, who in report.files.items():
            print(path, who.compact())          # "A1111, ComfyUI (store)"

The webUI roots sdlib knows are the configured one (``[library] root``), every root
``sdlib link`` recorded, and the roots of dedupe runs not undone. Other names of a file are
found in the library index (what scans of those roots recorded) and checked against the
disk as it is now; SHA256 comes from the index or the hash cache, never by reading a model
file, so a copy nobody hashed yet is not named. Links are resolved to read where they lead,
never followed to change anything. The rules are in :mod:`sdlib.store.seen`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.library.index import FileRow
    from sdlib.services._context import Context
    from sdlib.store.seen import Name, Seen, UiRoot

__all__ = ["DedupeRun", "SeenReport", "dedupe_runs", "known_uis", "seen_by"]


@dataclass(frozen=True)
class SeenReport:
    """The known webUI roots, and for each file asked about who sees it."""

    uis: tuple[UiRoot, ...]
    files: Mapping[str, Seen] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"uis": [u.to_dict() for u in self.uis],
                "files": [s.to_dict() for s in self.files.values()]}  # fmt: skip


@dataclass(frozen=True)
class DedupeRun:
    """A dedupe of ``roots`` (with their ``uis``) that is not undone: ``state`` applying
    (interrupted) or complete; ``journal``: its file."""

    roots: tuple[str, ...]
    uis: tuple[str, ...]
    state: str
    journal: str
    #: Copies it replaced by hard links, and their bytes (what an undo needs again).
    links: int = 0
    bytes: int = 0


def dedupe_runs(ctx: Context) -> list[DedupeRun]:
    """Dedupe runs whose links are (or may be) in place, newest first."""
    from sdlib.library.dedupe import PREFIX
    from sdlib.library.organize import Journal, journal_dir

    out: list[DedupeRun] = []
    try:
        journals = Journal.all(journal_dir(Path(ctx.settings.data_dir)), PREFIX)
    except (OSError, ValueError):
        return out
    for journal in reversed(journals):
        roots, uis = journal.header.get("roots"), journal.header.get("uis")
        if not isinstance(roots, list) or journal.state in ("undone", "undoing"):
            continue
        names = [str(u) for u in uis] if isinstance(uis, list) else []
        names += ["auto"] * (len(roots) - len(names))
        links = [op for op in journal.ops if op.action == "link"]
        out.append(DedupeRun(tuple(map(str, roots)), tuple(names[: len(roots)]),
                             journal.state, str(journal.path), len(links),
                             sum(op.size or 0 for op in links)))  # fmt: skip
    return out


def known_uis(ctx: Context) -> tuple[UiRoot, ...]:
    """The webUI roots sdlib knows, the configured one first, each once (by real path)."""
    from sdlib.store.seen import UiRoot, label_for

    found: list[tuple[str, str, tuple[str, ...]]] = []  # (root, ui, shows)
    if ctx.settings.library.root:
        from sdlib.errors import SdlibError

        try:
            home, layout = ctx.library_root()
            found.append((os.path.abspath(home), layout.name, ()))
        except (SdlibError, OSError):  # no usable configured root: the others still count
            pass
    found += _linked(ctx)
    for run in dedupe_runs(ctx):
        found += [(r, u, ()) for r, u in zip(run.roots, run.uis, strict=True)]
    out: list[UiRoot] = []
    reals: dict[str, int] = {}
    for root, ui, shows in found:
        if not os.path.isdir(root):
            continue
        key = os.path.normcase(os.path.realpath(root))
        if key in reals:  # the same root again: keep the first, add what it is shown
            i = reals[key]
            if shows:
                merged = tuple(dict.fromkeys((*out[i].shows, *shows)))
                out[i] = UiRoot(out[i].label, out[i].ui, out[i].root, merged)
            continue
        if ui in ("auto", ""):
            ui = _detect(root)
        reals[key] = len(out)
        out.append(UiRoot(label_for(ui, root, (u.label for u in out)), ui, root, shows))
    return tuple(out)


def _detect(root: str) -> str:
    from sdlib.library.layouts import detect

    layout = detect(root)
    return layout.name if layout is not None else "plain"


def _linked(ctx: Context) -> list[tuple[str, str, tuple[str, ...]]]:
    """(root, ui, store folders it is shown) for every recorded ``sdlib link``."""
    from sdlib.errors import SdlibError
    from sdlib.services.store_status import view
    from sdlib.store.record import FILE_NAME, load_records

    try:
        records = load_records(Path(ctx.settings.data_dir) / FILE_NAME)
    except SdlibError:
        return []
    out = []
    for record in records:
        # What store status counts as seen (links still leading there, config edits still
        # in their file), as real paths.
        folders = sorted(view(record, record.store).folders)
        shows = tuple(os.path.realpath(os.path.join(record.store, f)) for f in folders)
        out.append((os.path.abspath(record.root), record.ui, shows))
    return out


def seen_by(
    ctx: Context,
    paths: Iterable[str | os.PathLike[str]],
    *,
    uis: Sequence[UiRoot] | None = None,
    rows: Mapping[str, FileRow] | None = None,
) -> SeenReport:
    """Who of the known webUIs (``uis``, default :func:`known_uis`) sees each of ``paths``.

    ``rows``: index rows the caller has at hand (a scan's), by path, so their SHA256 need
    not be looked up again. A path that cannot be read now is left out.
    """
    from sdlib.store.seen import sightings

    roots = tuple(uis) if uis is not None else known_uis(ctx)
    by_inode: dict[tuple[int, int], list[FileRow]] = {}
    by_size: dict[int, list[FileRow]] = {}
    seen_paths: set[str] = set()
    for ui in roots:
        for row in ctx.index.files_under([ui.root]):
            if row.role != "model" or row.path in seen_paths or row.dev is None:
                continue
            seen_paths.add(row.path)
            by_inode.setdefault((row.dev, row.ino or 0), []).append(row)
            if row.size:
                by_size.setdefault(row.size, []).append(row)
    given = rows or {}
    names: dict[str, Name | None] = {}
    out: dict[str, Seen] = {}
    for raw in paths:
        path = os.path.abspath(os.fspath(raw))
        target = _name(ctx, path, given.get(path), names, roots, want_sha=False)
        if target is None:
            continue
        near = [r for r in by_inode.get((target.dev, target.ino), ()) if r.path != path]
        same_size = [
            r
            for r in by_size.get(target.size, ())
            if r.path != path and (r.dev, r.ino) != (target.dev, target.ino)
        ]
        others = [_name(ctx, r.path, r, names, roots, want_sha=False) for r in near]
        if same_size:  # a copy is told by its SHA256: only now is it looked up
            target = _with_sha(ctx, target, given.get(path))
            others += [_name(ctx, r.path, r, names, roots, want_sha=True) for r in same_size]
        home = next((u.root for u in roots if _inside(path, u.root)), None)
        out[path] = sightings(target, roots, [o for o in others if o is not None], home=home)
    return SeenReport(roots, out)


def _inside(path: str, root: str) -> bool:
    from sdlib.store.seen import inside

    return inside(path, root)


def _name(
    ctx: Context,
    path: str,
    row: FileRow | None,
    cache: dict[str, Name | None],
    roots: Sequence[UiRoot],
    *,
    want_sha: bool,
) -> Name | None:
    """The name as it is now on disk (None: gone or unreadable); stat follows links, which
    only reads where they lead."""
    from sdlib.store.seen import Name

    if path in cache:
        known = cache[path]
        if known is None or not want_sha or known.sha256 is not None:
            return known
        cache[path] = _with_sha(ctx, known, row)
        return cache[path]
    try:
        st = os.stat(path)
        real = os.path.realpath(path)
    except (OSError, ValueError):
        cache[path] = None
        return None
    home = next((u.root for u in roots if _inside(path, u.root)), None)
    if home is not None:
        expected = os.path.join(os.path.realpath(home), os.path.relpath(path, home))
        linked = os.path.normcase(os.path.normpath(expected)) != os.path.normcase(real)
    else:
        linked = os.path.islink(path)
    name = Name(path, real, st.st_dev, st.st_ino, st.st_size, linked, None, st.st_nlink)
    cache[path] = _with_sha(ctx, name, row) if want_sha else name
    return cache[path]


def _with_sha(ctx: Context, name: Name, row: FileRow | None) -> Name:
    """``name`` with its SHA256 from the index row (while it describes these bytes) or the
    hash cache; never read from the file."""
    from dataclasses import replace

    if name.sha256 is not None:
        return name
    sha = None
    if row is not None and row.sha256:
        try:
            st = os.stat(name.path)
            if (row.dev, row.ino, row.size, row.mtime_ns) == (
                st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
            ):  # fmt: skip
                sha = row.sha256
        except OSError:
            return name
    if sha is None:
        cached = ctx.hashes.lookup(name.path)
        sha = cached.sha256 if cached is not None else None
    return replace(name, sha256=sha.upper()) if sha else name
