"""``scan``: walk a webUI's model folders, understand every file, remember it in the index.

Incremental by design. The walk reads directory entries and stats only. A file whose
(device, inode, size, mtime_ns) equals what the index recorded is not opened again: its
classification, pickle verdict, preview type and SHA256 come from the index. A new or
changed model file is classified from its header (``inspect_file``: a bounded read); a new
preview has its first 16 bytes read. SHA256 is computed lazily, only where it decides
something: files that share a size with another file (possible duplicates), new files
whose size matches a file that vanished (a move across devices), or everything with
``hash_all``. Hashes go through the shared ``HashCache`` so downloads and scans never hash
the same bytes twice.

A path that vanished and a new path with the same inode (or, failing that, the same
SHA256) are one file that moved: its row, history and Civitai ids follow it.

Problems per file are worked out in :mod:`sdlib.library._status`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.errors import SdlibError, UsageError
from sdlib.files import CLASSIFIER_VERSION
from sdlib.files.opening import UNREADABLE_PREFIXES, open_regular
from sdlib.library import sidecars
from sdlib.library._inspect import inspect_columns
from sdlib.library._pool import biggest_first, cpu_count, inspect_here, inspect_shared
from sdlib.library._scan_write import with_changes, write_scan
from sdlib.library._status import FileReport, build_reports
from sdlib.library._walk import Entry, walk, walk_files
from sdlib.library.adopt import SIDECAR_SOURCES, adopt_rows
from sdlib.library.index import CLASSIFICATION_COLUMNS, CONTENT_COLUMNS, FileRow, Index
from sdlib.library.layouts import PLAIN, Layout, resolve_layout
from sdlib.library.sidecars import is_preview_name, preview_kind

if TYPE_CHECKING:
    from sdlib.hashcache import HashCache

__all__ = ["FileReport", "ScanProgress", "ScanResult", "inspect_columns", "load_layout", "scan"]

#: From this many new or changed model files, headers are also parsed in helper processes.
PARALLEL_FROM = 200


@dataclass(frozen=True)
class ScanProgress:
    """A progress event: ``stage`` is walk, inspect or hash; ``total`` may be None."""

    stage: str
    done: int
    total: int | None
    path: str | None = None
    bytes: int = 0


@dataclass
class ScanResult:
    root: Path
    layout: Layout
    index_path: Path
    files: list[FileReport]
    seconds: float = 0.0
    #: Files whose content was read this time (headers), and files hashed (whole).
    inspected: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    removed: int = 0
    folders: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[FileReport]:
        return [f for f in self.files if f.role == "model"]

    def summary(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for f in self.files:
            for s in f.status:
                by_status[s] = by_status.get(s, 0) + 1
        return {
            "files": len(self.files),
            "models": len(self.models),
            "sidecars": sum(1 for f in self.files if f.role == "sidecar"),
            "problems": sum(1 for f in self.files if f.status != ["ok"]),
            "by_status": dict(sorted(by_status.items())),
            "bytes": sum(f.size or 0 for f in self.models),
            "inspected": self.inspected,
            "hashed": self.hashed,
            "hashed_bytes": self.hashed_bytes,
            "added": self.added,
            "changed": self.changed,
            "moved": self.moved,
            "removed": self.removed,
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "ui": self.layout.name,
            "index": str(self.index_path),
            "files": [f.to_dict() for f in self.files],
            "summary": self.summary(),
        }


def load_layout(root: Path, ui: str, folders: dict[str, str] | None = None) -> Layout:
    """The layout for ``root`` (``--ui auto|NAME``), with config overrides and, for
    ComfyUI, the folders its ``extra_model_paths.yaml`` adds."""
    layout = PLAIN if ui == "folder" else resolve_layout(ui, root)
    if folders and not layout.any_kind:
        layout = layout.with_overrides({k: _relative(root, v) for k, v in folders.items()})
    if layout.name == "comfyui":
        from sdlib.library.comfy_paths import extend_layout, read_extra_paths

        layout = extend_layout(layout, read_extra_paths(root))
    elif layout.name == "sdnext":  # its config.json folder keys (a shared store's, say)
        from sdlib.library import sdnext_paths

        layout = sdnext_paths.extend_layout(layout, root, sdnext_paths.read_sdnext_dirs(root))
    return layout


def _relative(root: Path, folder: str) -> str:
    """A configured folder inside ``root`` as a path relative to it (so that it compares
    with the layout's folders); other folders as they are."""
    path = Path(folder).expanduser()
    if not path.is_absolute():
        return folder
    try:
        return path.relative_to(root.expanduser().absolute()).as_posix() or "."
    except ValueError:
        return folder


def scan(
    root: str | os.PathLike[str],
    layout: Layout,
    index: Index,
    hashes: HashCache,
    *,
    hash_all: bool = False,
    only: Iterable[str | os.PathLike[str]] | None = None,
    on_progress: Callable[[ScanProgress], None] | None = None,
    workers: int | None = 1,
) -> ScanResult:
    """Scan ``root`` (every model folder of ``layout``; or just the files in ``only``).

    ``workers``: processes that parse headers when many files are new (None: one per CPU).
    More than one spawns processes, so a script calling this needs the usual
    ``if __name__ == "__main__":`` guard; the CLI passes None.
    """
    started = time.perf_counter()
    root_s = os.path.abspath(os.fspath(Path(root).expanduser()))
    if not os.path.isdir(root_s):
        raise UsageError(f"{root_s} is not a folder")
    emit = on_progress or (lambda _e: None)
    if only is not None:
        wanted = [os.path.abspath(os.fspath(p)) for p in only]
        entries = walk_files(wanted, root_s)
        rows = [r for p in {e.path for e in entries} | set(wanted) if (r := index.file_at(p))]
        folders = [root_s]
    else:
        entries, folders = walk(root_s, layout)
        rows = index.files_under(folders)
    emit(ScanProgress("walk", len(entries), len(entries)))
    result = ScanResult(Path(root_s), layout, index.path, [], folders=folders)
    job = _Job(index, hashes, hash_all, emit, result)
    job.workers = workers if workers is not None else min(cpu_count(), 8)
    final = job.run(entries, rows)
    result.files = build_reports(root_s, layout, entries, final)
    for rep in result.files:
        if rep.path in job.refused:
            rep.notes.append(job.refused[rep.path])
    result.seconds = time.perf_counter() - started
    return result


class _Job:
    """One scan: reconcile the walk with the index, read what changed, write it back."""

    def __init__(
        self,
        index: Index,
        hashes: HashCache,
        hash_all: bool,
        emit: Callable[[ScanProgress], None],
        result: ScanResult,
    ) -> None:
        self.index = index
        self.hashes = hashes
        self.hash_all = hash_all
        self.emit = emit
        self.result = result
        self.now = time.time()
        self.workers = 1
        #: Files whose identity came from a sidecar this time: path -> sidecar suffix.
        self.adopted: dict[str, str] = {}
        #: Files whose identity sidecar describes other bytes: path -> why it was not taken.
        self.refused: dict[str, str] = {}
        #: Identity sidecars read ahead (while helpers parse): path -> their JSON, or None.
        self.sidecars: dict[str, Any] = {}

    def run(self, entries: list[Entry], rows: list[FileRow]) -> dict[str, FileRow]:
        by_path = {r.path: r for r in rows}
        seen = {e.path for e in entries}
        vanished = [r for p, r in by_path.items() if p not in seen]
        vanished_by_key = {r.stat_key: r for r in vanished if r.dev is not None}
        final: dict[str, FileRow] = {}
        todo: list[tuple[Entry, FileRow | None]] = []
        moves: dict[str, FileRow] = {}
        any_gone = self.index.any_gone()  # none on a first scan: no query per new file
        for e in entries:
            row = by_path.get(e.path)
            same = row is not None and (
                row.stat_key == e.stat_key or (e.st is None and row.dev is None)
            )
            if row is not None and same and row.role == e.role and not _outdated(row):
                final[e.path] = row  # unchanged: not opened
                continue
            if row is None and e.stat_key is not None:
                old = vanished_by_key.pop(e.stat_key, None)
                if old is None and any_gone:
                    old = self.index.gone_matching(*e.stat_key)
                if old is None and (vanished or any_gone):
                    # Copied across drives with its mtime (mv, shutil.move): a new inode,
                    # but the same size and the same nanosecond mtime.
                    old = self._twin(e, vanished, moves, any_gone)
                if old is not None and old.role == e.role:
                    assert e.st is not None
                    moves[e.path] = old
                    final[e.path] = replace(
                        old, path=e.path, present=1, dev=e.st.st_dev, ino=e.st.st_ino
                    )
                    continue
            todo.append((e, row))
        by_size = _models_by_size(entries)
        fresh = self._read(todo, by_size)
        final.update(fresh)
        gone_ids = {r.id for r in final.values()}
        vanished = [r for r in vanished if r.id not in gone_ids]
        self._hash(entries, final, vanished, moves, by_size)
        # Identities other tools wrote beside files never looked up (sdlib.library.adopt).
        known = functools.partial(_cached_sha256, self.hashes)
        candidates = _adoption_candidates(entries, by_path, final)
        read = functools.partial(_sidecar_json, self.sidecars)
        self.adopted, self.refused = adopt_rows(candidates, final, known, self.now, read)
        counts = write_scan(self.index, self.now, by_path, final, moves, vanished, self.adopted)
        res = self.result
        res.added, res.changed = res.added + counts["added"], res.changed + counts["changed"]
        res.moved, res.removed = res.moved + counts["moved"], res.removed + counts["removed"]
        return final

    def _twin(
        self, e: Entry, vanished: list[FileRow], moves: dict[str, FileRow], any_gone: bool
    ) -> FileRow | None:
        assert e.st is not None
        taken = {m.id for m in moves.values()}
        size, mtime = e.st.st_size, e.st.st_mtime_ns
        pool = [r for r in vanished if (r.size, r.mtime_ns) == (size, mtime) and r.id not in taken]
        if not pool and any_gone:
            pool = [r for r in self.index.gone_twins(size, mtime) if r.id not in taken]
        return pool[0] if len(pool) == 1 and pool[0].role == e.role else None

    # -- reading content ----------------------------------------------------------------------

    def _read(
        self, todo: list[tuple[Entry, FileRow | None]], by_size: dict[int, set[tuple[int, int]]]
    ) -> dict[str, FileRow]:
        """Rows for ``todo`` from the files' content. ``by_size``: the model files' inodes by
        size (``_models_by_size``), to hash ahead what ``_hash`` will ask for."""
        out: dict[str, FileRow] = {}
        plans: list[tuple[Entry, FileRow, dict[str, Any], bool]] = []
        for e, row in todo:
            base = row or FileRow(path=e.path, role=e.role, first_seen=self.now)
            if row is not None and row.role != e.role:
                base = FileRow(path=e.path, role=e.role, first_seen=row.first_seen, id=row.id)
            st = e.st
            stat_cols: dict[str, Any] = {"role": e.role, "present": 1, "last_seen": self.now}
            if st is not None:
                stat_cols.update(
                    dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns
                )
            # Only the inode changed (copied back with its mtime): the content did not.
            same_bytes = (
                row is not None
                and st is not None
                and row.role == e.role
                and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)
            )
            plans.append((e, base, stat_cols, same_bytes))
        wanted = [e.path for e, base, _, same in plans
                  if e.role == "model" and e.st and (not same or _outdated(base))]  # fmt: skip
        sizes = {e.path: e.st.st_size for e, *_ in plans if e.st is not None}
        # Work that needs no header, done while helper processes parse (see _pool).
        previews = [e.path for e, _, _, same in plans if not same and e.role == "sidecar"
                    and e.st is not None and is_preview_name(e.name)]  # fmt: skip
        infos = [e.path for e, _, _, same in plans if not same and e.role == "sidecar"
                 and e.st is not None and e.path.casefold().endswith(SIDECAR_SOURCES)]  # fmt: skip
        kinds: dict[str, str] = {}
        side: deque[Callable[[], object]] = deque()
        for i in range(0, len(previews), _SIDE_CHUNK):
            chunk = previews[i : i + _SIDE_CHUNK]
            side.append(functools.partial(_sniff_previews, chunk, kinds))
        for i in range(0, len(infos), _SIDE_CHUNK):
            chunk = infos[i : i + _SIDE_CHUNK]
            side.append(functools.partial(_read_sidecars, chunk, self.sidecars))
        # Hashing that ``_hash`` will ask for, while helpers parse: new or changed models
        # sharing their size with another model file (on a first scan, all it hashes).
        # The hashes wait in the hash cache.
        side.extend(functools.partial(self._sha256, e.path) for e, _, _, same in plans
                    if not same and e.role == "model" and e.st is not None
                    and (self.hash_all or len(by_size[e.st.st_size]) > 1))  # fmt: skip
        contents = self._inspect_all(wanted, sizes, side)
        cleared = {c: None for c in CONTENT_COLUMNS}
        for e, base, stat_cols, same_bytes in plans:
            if same_bytes:
                # The same bytes: keep hashes and Civitai ids; only a classification made
                # by an older classifier is replaced.
                again = contents.get(e.path)
                fresh = {c: again.get(c) for c in CLASSIFICATION_COLUMNS} if again else {}
                out[e.path] = replace(base, **{**stat_cols, **fresh})
                continue
            content: dict[str, Any] = contents.get(e.path, {})
            if e.role == "sidecar" and e.st is not None and is_preview_name(e.name):
                content = {"true_ext": kinds.get(e.path) or _preview_kind(e.path)}
            out[e.path] = with_changes(base, **{**cleared, **stat_cols, **content})
        return out

    def _inspect_all(
        self, paths: list[str], sizes: dict[str, int], side: deque[Callable[[], object]]
    ) -> dict[str, dict[str, Any]]:
        """Classify model files from their headers; with helper processes when there are
        many (parsing big headers is CPU work, and a first scan may meet thousands). The
        ``side`` tasks are run too, while helpers parse where there are any."""
        out: dict[str, dict[str, Any]] = {}
        total = len(paths)

        def done(path: str, content: dict[str, Any]) -> None:
            out[path] = content
            self.emit(ScanProgress("inspect", len(out), total, path))

        if total >= PARALLEL_FROM and self.workers > 1:
            paths = biggest_first(paths, sizes)
            # No processes here (sandbox, frozen app...): what is not done yet is done
            # below, in this process.
            with contextlib.suppress(OSError, RuntimeError):
                inspect_shared(paths, self.workers - 1, done, side)
        inspect_here([p for p in paths if p not in out], done)
        while side:
            side.popleft()()
        self.result.inspected += total
        return out

    # -- hashing ------------------------------------------------------------------------------

    def _hash(
        self,
        entries: list[Entry],
        final: dict[str, FileRow],
        vanished: list[FileRow],
        moves: dict[str, FileRow],
        inodes_by_size: dict[int, set[tuple[int, int]]],
    ) -> None:
        """SHA256 where it decides something; then match vanished files by content.
        ``inodes_by_size``: ``_models_by_size(entries)``."""
        models = [e for e in entries if e.role == "model" and e.st is not None]
        gone_sizes = {r.size for r in vanished if r.sha256 and r.role == "model"}
        gone_sizes |= self.index.gone_sizes()
        new_paths = {p for p, r in final.items() if r.id is None}
        wanted = [
            e
            for e in models
            if final[e.path].sha256 is None
            and not (final[e.path].problem or "").startswith(UNREADABLE_PREFIXES)
            and (
                self.hash_all
                or len(inodes_by_size[e.st.st_size if e.st else 0]) > 1
                or (e.path in new_paths and e.st is not None and e.st.st_size in gone_sizes)
            )
        ]
        total = len(wanted)
        for i, e in enumerate(wanted, 1):
            self.emit(ScanProgress("hash", i, total, e.path, e.st.st_size if e.st else 0))
            sha = self._sha256(e.path)
            if sha is not None:
                final[e.path] = replace(final[e.path], sha256=sha)
        # New files that are vanished ones moved across devices (same bytes, new inode).
        by_sha: dict[tuple[str, int], list[FileRow]] = {}
        for r in vanished:
            if r.sha256 and r.size is not None:
                by_sha.setdefault((r.sha256, r.size), []).append(r)
        for path in new_paths:
            row = final[path]
            if row.role != "model" or not row.sha256 or row.size is None:
                continue
            pool = by_sha.get((row.sha256, row.size)) or self.index.gone_with_sha(
                row.sha256, row.size
            )
            taken = {m.id for m in moves.values()}
            old = next((r for r in pool if r.id not in taken), None)
            if old is None:
                continue
            moves[path] = old
            keep = {c: getattr(old, c) for c in CONTENT_COLUMNS if getattr(old, c) is not None}
            final[path] = replace(row, **keep, id=old.id, first_seen=old.first_seen)
        vanished[:] = [r for r in vanished if r.id not in {m.id for m in moves.values()}]

    def _sha256(self, path: str) -> str | None:
        cached = self.hashes.lookup(path)
        if cached is not None:
            return cached.sha256
        try:
            hashes, _ = self.hashes.get(path)
        except (OSError, SdlibError):
            return None
        self.result.hashed += 1
        self.result.hashed_bytes += hashes.size
        return hashes.sha256


def _models_by_size(entries: list[Entry]) -> dict[int, set[tuple[int, int]]]:
    """The (device, inode) of each model file, by size: a size held by two inodes is
    worth a hash (a copy, or a file moved in from another drive)."""
    out: dict[int, set[tuple[int, int]]] = {}
    for e in entries:
        if e.role == "model" and e.st is not None:
            out.setdefault(e.st.st_size, set()).add((e.st.st_dev, e.st.st_ino))
    return out


def _adoption_candidates(
    entries: list[Entry], before: dict[str, FileRow], final: dict[str, FileRow]
) -> list[Entry]:
    """The entries whose sidecars may say something new: every sidecar, and the model
    files that are new or changed (a SHA256 learned this scan changes the row), whose
    identity sidecar is, or whose SHA256 is known while they have no identity (a sidecar
    may then be refused, with a note, on every scan). An unchanged file beside an unchanged
    sidecar gives nothing new: a re-scan does not open thousands of sidecars again to learn
    that, nor one it already held to the file's SHA256."""
    fresh = {p for p, r in final.items() if before.get(p) is not r}
    stems = {
        p[: -len(suffix)].casefold()
        for p in fresh
        for suffix in SIDECAR_SOURCES
        if p.casefold().endswith(suffix)
    }
    return [
        e
        for e in entries
        if e.role != "model"
        or e.path in fresh
        or (e.path in final and final[e.path].sha256 and final[e.path].civitai_version_id is None)
        or os.path.splitext(e.path)[0].casefold() in stems
    ]


def _outdated(row: FileRow) -> bool:
    """A model file classified by an older sdlib: read its header again."""
    return row.role == "model" and (row.classified_by or 1) < CLASSIFIER_VERSION


def _cached_sha256(hashes: HashCache, path: str) -> str | None:
    """The SHA256 the hash cache already holds for ``path`` (never hashes)."""
    try:
        known = hashes.lookup(path)
    except (OSError, SdlibError):
        return None
    return known.sha256 if known is not None else None


#: Previews sniffed, or sidecars read, per side task: small enough that helpers never run
#: out of queued headers meanwhile.
_SIDE_CHUNK = 64


def _sniff_previews(paths: list[str], into: dict[str, str]) -> None:
    into.update((p, _preview_kind(p)) for p in paths)


def _read_sidecars(paths: list[str], into: dict[str, Any]) -> None:
    into.update((p, sidecars.read_json(Path(p))) for p in paths)


def _sidecar_json(ahead: dict[str, Any], path: str) -> Any:
    """A sidecar's JSON: as read ahead in this scan, else read now."""
    return ahead[path] if path in ahead else sidecars.read_json(Path(path))


def _preview_kind(path: str) -> str:
    try:
        with open_regular(path) as fh:
            return preview_kind(fh.read(16))
    except (OSError, SdlibError):
        return "unknown"
