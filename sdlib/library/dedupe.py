"""``dedupe``: identical model files inside and across webUI roots, replaced by hard links.

The plan groups model files by size first (a stat, no read), then by SHA256 for the sizes
two or more inodes share; SHA256 comes from the scan's index row while the file is
unchanged, else from the hash cache, so a second run reads no model file. Names that are
already one inode (hard links) are already deduped; a symlinked file is a name for another
file, never a copy, and is left alone, like anything that resolves outside the roots.

On each volume (``st_dev``) one copy stays (the inode with the most names, else the first
found, roots in the order given) and every other copy there becomes a hard link to it, or,
where the volume makes reflinks (tried once per volume, :mod:`sdlib.library._reflink`) and
the caller asks, a reflink: a copy-on-write clone that is still a file of its own (its own
mode and mtime; writing one name never changes another), which ``undo`` leaves as it is. A
clone made earlier shares the kept file's blocks and is already deduped. The
kept copy is never touched, and each name keeps its own sidecars (``.civitai.info``,
previews...), which are separate files beside it. Copies on other volumes cannot be hard
links: they are reported with the bytes a shared store (``sdlib store``) would save.

Applying goes through the organize journal (:mod:`sdlib.library._journal`): the whole plan
is written and fsynced first, then each copy is linked to a temporary name beside it,
checked to be the kept inode, and ``os.replace``\\ d over the copy, so the name never goes
missing and always holds the same bytes. A run killed at any point is finished by running
it again or reverted by ``undo``, which gives every name its own bytes back (copied from
the kept file, verified by SHA256, with its old mtime and mode). Journals are named
``dedupe-*.jsonl`` beside organize's and share its lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdlib.errors import UsageError
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
from sdlib.library._reflink import can_reflink, same_blocks
from sdlib.library.scan import FileReport
from sdlib.library.wall import Wall

__all__ = [
    "Copy",
    "DedupePlan",
    "DupeGroup",
    "RunReport",
    "Source",
    "apply_dedupe",
    "find_dedupe_journal",
    "linked_savings",
    "make_plan",
    "norm_roots",
    "undo_dedupe",
]

PREFIX = "dedupe"
#: Files whose bytes cannot be read: nothing to compare.
_UNREADABLE = ("unreadable", "broken-link", "link-outside-root")


@dataclass(frozen=True)
class Source:
    """One root to dedupe: the folder, its webUI, the folders it may change files in (the
    wall) and the model files a scan of it found."""

    root: str
    ui: str
    wall: Wall
    files: tuple[FileReport, ...]


@dataclass(frozen=True)
class Copy:
    """One name of a duplicated model. ``role``: ``keep`` (stays as it is), ``link`` (becomes
    a hard link to the kept copy), ``linked`` (already the kept copy's inode)."""

    path: str
    root: str
    role: str
    dev: int
    ino: int
    nlink: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "root": self.root, "role": self.role, "volume": self.dev,
                "inode": self.ino, "nlink": self.nlink}  # fmt: skip


@dataclass(frozen=True)
class DupeGroup:
    """Identical bytes under several inodes. ``reclaimable``: bytes ``--apply`` frees;
    ``other_volume``: bytes in copies on other volumes (only a shared store frees them)."""

    sha256: str
    size: int
    copies: tuple[Copy, ...]
    reclaimable: int
    other_volume: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "reclaimable": self.reclaimable,
                "other_volume": self.other_volume,
                "copies": [c.to_dict() for c in self.copies]}  # fmt: skip


@dataclass
class DedupePlan:
    roots: tuple[str, ...]
    uis: tuple[str, ...]
    groups: list[DupeGroup] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall: tuple[str, ...] = ()
    index: str | None = None
    #: Model files compared, and how many of them had to be hashed (read) for this plan.
    files: int = 0
    hashed: int = 0
    #: Make reflinks where the volume can (else hard links); what each volume answered.
    reflink: bool = False
    clones: dict[int, bool] = field(default_factory=dict)

    def can_clone(self, dev: int, folder: str) -> bool:
        """Whether the volume ``dev`` (probed once, in ``folder``) takes reflinks."""
        if not self.reflink:
            return False
        if dev not in self.clones:
            self.clones[dev] = can_reflink(folder)
            how = ("reflinks (copy-on-write clones: each name stays a file of its own; the "
                   "blocks are shared until one is written)") if self.clones[dev] else (
                   "hard links (this filesystem makes no reflinks)")  # fmt: skip
            self.notes.append(f"on the volume of {folder}: {how}")
        return self.clones[dev]

    @property
    def reclaimable(self) -> int:
        return sum(g.reclaimable for g in self.groups)

    @property
    def other_volume(self) -> int:
        return sum(g.other_volume for g in self.groups)

    def header(self) -> dict[str, Any]:
        return {"command": "dedupe", "root": self.roots[0], "roots": list(self.roots),
                "uis": list(self.uis), "wall": list(self.wall),
                "ops": [op.to_dict() for op in self.ops],
                **({"index": self.index} if self.index else {})}  # fmt: skip

    def summary(self) -> dict[str, int]:
        return {"files": self.files, "hashed": self.hashed, "groups": len(self.groups),
                "copies": sum(len(g.copies) for g in self.groups), "links": len(self.ops),
                "reflinks": sum(1 for op in self.ops if op.action == "reflink"),
                "reclaimable_bytes": self.reclaimable,
                "other_volume_bytes": self.other_volume}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": [{"root": r, "ui": u} for r, u in zip(self.roots, self.uis, strict=True)],
            "groups": [g.to_dict() for g in self.groups],
            "actions": [op.to_dict() for op in self.ops],
            "notes": list(self.notes), "summary": self.summary(),
        }  # fmt: skip


# --- the plan --------------------------------------------------------------------------------


@dataclass
class _Name:
    path: str
    root: str
    order: int
    st: os.stat_result
    report: FileReport


def make_plan(sources: Sequence[Source], sha256_of: Sha256Of, *, index: str | None = None,
              cached: Sha256Of | None = None, reflink: bool = False,
              on_hash: Callable[[int, int, str], None] | None = None) -> DedupePlan:  # fmt: skip
    """Group identical model files of ``sources`` and plan a hard link for each extra copy
    (with ``reflink``, a reflink on a volume that can make them: tried once per volume).

    Only files whose size another inode shares are compared. Their SHA256 comes from the
    index row while it describes the current bytes, else from ``cached`` (the hash cache,
    never reading), else ``sha256_of`` reads the file (``hashed`` counts those);
    ``on_hash(done, total, path)`` is told before each read.
    """
    if not sources:
        raise UsageError("give at least one folder to dedupe")
    wall: list[str] = []
    for s in sources:
        wall += [r for r in s.wall.roots if r not in wall]
    plan = DedupePlan(tuple(s.root for s in sources), tuple(s.ui for s in sources),
                      wall=tuple(wall), index=index, reflink=reflink)  # fmt: skip
    names = _names(sources, plan)
    plan.files = len(names)
    by_size: dict[int, list[_Name]] = {}
    for n in names:
        by_size.setdefault(n.st.st_size, []).append(n)
    candidates = [g for size, g in by_size.items() if size > 0 and len(_inodes(g)) > 1]
    sha: dict[tuple[int, int], str] = {}
    todo = []
    for n in (n for g in candidates for n in g):
        known = _known_sha(n) or (cached(n.path) if cached is not None else None)
        if known is not None:
            sha[(n.st.st_dev, n.st.st_ino)] = known.upper()
        else:
            todo.append(n)
    for i, n in enumerate(todo, 1):
        key = (n.st.st_dev, n.st.st_ino)
        if key in sha:
            continue  # another name of an inode already hashed
        if on_hash is not None:
            on_hash(i, len(todo), n.path)
        digest = sha256_of(n.path)
        plan.hashed += 1
        if digest is None:
            plan.notes.append(f"{n.path}: left alone: it could not be read")
            continue
        sha[key] = digest.upper()
    by_sha: dict[tuple[str, int], list[_Name]] = {}
    for g in candidates:
        for n in g:
            digest = sha.get((n.st.st_dev, n.st.st_ino))
            if digest is not None:
                by_sha.setdefault((digest, n.st.st_size), []).append(n)
    for (digest, size), group in sorted(by_sha.items(), key=lambda kv: kv[1][0].order):
        if len(_inodes(group)) > 1:
            _plan_group(plan, digest, size, group)
    return plan


def _names(sources: Sequence[Source], plan: DedupePlan) -> list[_Name]:
    """Every model file of the sources that is a real file inside the wall, once each."""
    out: list[_Name] = []
    seen: set[str] = set()
    beyond = 0
    for source in sources:
        for f in sorted(source.files, key=lambda f: f.path):
            if f.role != "model" or f.path in seen:
                continue
            seen.add(f.path)
            if any(s in f.status for s in _UNREADABLE):
                continue
            if is_link(f.path):
                continue  # a symlinked file names another file: not a copy
            if not source.wall.holds(f.path):
                beyond += 1  # behind a folder link leading out (a shared store...)
                continue
            try:
                st = os.lstat(f.path)
            except OSError:
                continue
            out.append(_Name(f.path, source.root, len(out), st, f))
    if beyond:
        files = f"{beyond} model file" + ("s" if beyond != 1 else "")
        plan.notes.append(f"{files} behind links that lead outside the roots (a shared "
                          "store?) left alone: a linked file is not a copy")  # fmt: skip
    return out


def _inodes(names: Sequence[_Name]) -> set[tuple[int, int]]:
    return {(n.st.st_dev, n.st.st_ino) for n in names}


def _known_sha(n: _Name) -> str | None:
    """The SHA256 the index holds for these exact bytes (same inode, size and mtime)."""
    row = n.report.row
    st = n.st
    if row.sha256 and (row.dev, row.ino, row.size, row.mtime_ns) == (
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
    ):  # fmt: skip
        return row.sha256.upper()
    return None


def _plan_group(plan: DedupePlan, digest: str, size: int, group: list[_Name]) -> None:
    by_dev: dict[int, dict[int, list[_Name]]] = {}
    for n in group:
        by_dev.setdefault(n.st.st_dev, {}).setdefault(n.st.st_ino, []).append(n)
    copies: list[Copy] = []
    reclaimable = 0
    # The volume with the most copies is "here"; every other volume's copy is extra.
    volumes = sorted(by_dev.items(), key=lambda kv: (-len(kv[1]), min(n.order for ns in
                     kv[1].values() for n in ns)))  # fmt: skip
    for dev, inodes in volumes:
        # Keep the inode that has the most names (some maybe outside the roots), else the
        # first found: its bytes stay where they are.
        keep_ino, keep_names = min(inodes.items(), key=lambda kv: (-kv[1][0].st.st_nlink,
                                   min(n.order for n in kv[1])))  # fmt: skip
        keep = min(keep_names, key=lambda n: n.order)
        clones = plan.can_clone(dev, os.path.dirname(keep.path))
        for ino, names in sorted(inodes.items(), key=lambda kv: min(n.order for n in kv[1])):
            # A reflink made earlier: its own inode, but the kept file's very blocks.
            cloned = ino != keep_ino and clones and same_blocks(names[0].path, keep.path)
            for n in sorted(names, key=lambda n: n.order):
                role = ("keep" if n is keep else "linked" if ino == keep_ino else
                        "reflinked" if cloned else "reflink" if clones else "link")  # fmt: skip
                copies.append(Copy(n.path, n.root, role, dev, ino, n.st.st_nlink))
                if role in ("link", "reflink"):
                    _link_op(plan, n, keep, digest, role)
            if ino != keep_ino and not cloned and names[0].st.st_nlink <= len(names):
                reclaimable += size  # every name of this inode becomes the kept one
    other = size * (len(volumes) - 1)
    if len(volumes) > 1:
        far = [c.path for c in copies if c.dev != volumes[0][0] and c.role == "keep"]
        plan.notes.append(
            f"{len(far)} more copies of {os.path.basename(group[0].path)} on another volume "
            f"({', '.join(far)}): hard links cannot cross volumes; one shared store "
            "(sdlib store) would keep a single copy for every webUI"
        )
    plan.groups.append(DupeGroup(digest, size, tuple(copies), reclaimable, other))


def _link_op(plan: DedupePlan, n: _Name, keep: _Name, digest: str, how: str) -> None:
    st = n.st
    plan.ops.append(Op(
        how, n.path, keep=keep.path, size=st.st_size, mtime_ns=st.st_mtime_ns,
        mode=st.st_mode & 0o7777, sha256=digest, group=len(plan.ops) + 1,
        why=f"same bytes as {keep.path}",
    ))  # fmt: skip


# --- running it through the journal ------------------------------------------------------------


def norm_roots(roots: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Absolute roots, in the order given, each once."""
    out: list[str] = []
    for r in roots:
        path = os.path.abspath(os.path.expanduser(os.fspath(r)))
        if path not in out:
            out.append(path)
    return tuple(out)


def _same_roots(journal: Journal, roots: Sequence[str]) -> bool:
    theirs = journal.header.get("roots")
    if not isinstance(theirs, list):
        return False
    return sorted(map(os.path.normcase, theirs)) == sorted(map(os.path.normcase, roots))


def find_dedupe_journal(data_dir: Path, roots: Sequence[str], states: tuple[str, ...]
                        ) -> Journal | None:  # fmt: skip
    """The newest dedupe journal for exactly these roots whose state is one of ``states``."""
    for journal in reversed(Journal.all(journal_dir(data_dir), PREFIX)):
        if _same_roots(journal, roots) and journal.state in states:
            return journal
    return None


def apply_dedupe(data_dir: Path, roots: Sequence[str], make: Callable[[], DedupePlan],
                 sha256_of: Sha256Of, on_step: OnStep | None = None
                 ) -> tuple[Journal | None, RunReport | None, DedupePlan | None]:  # fmt: skip
    """Finish an interrupted apply on ``roots``, or make a plan (``make()``) and carry it out
    through a new journal. (journal, report, plan): no journal when there was nothing to do;
    no plan when an interrupted run was finished."""
    jdir = journal_dir(data_dir)
    with locked(jdir):
        if find_dedupe_journal(data_dir, roots, ("undoing",)):
            raise UsageError("a dedupe --undo was interrupted here; run dedupe --undo again")
        journal = find_dedupe_journal(data_dir, roots, ("applying",))
        plan = None
        if journal is None:
            plan = make()
            if not plan.ops:
                return None, None, plan
            journal = Journal.create(jdir, plan.header(), PREFIX)
        return journal, apply_journal(journal, sha256_of, on_step), plan


def undo_dedupe(data_dir: Path, roots: Sequence[str], sha256_of: Sha256Of,
                on_step: OnStep | None = None) -> tuple[Journal, RunReport]:  # fmt: skip
    """Give every name the last dedupe of ``roots`` linked its own bytes back."""
    with locked(journal_dir(data_dir)):
        journal = find_dedupe_journal(data_dir, roots, ("undoing", "applying", "complete"))
        if journal is None:
            raise UsageError(f"no dedupe run to undo for {', '.join(roots)}")
        return journal, undo_journal(journal, sha256_of, on_step)


def linked_savings(data_dir: Path) -> tuple[int, int]:
    """(bytes, names) dedupe's hard links and reflinks still save: every copy a finished or
    interrupted ``--apply`` linked that is still the kept file's inode (a reflink: still its
    blocks), not undone, not replaced since.
    Each name counts once however many runs linked it."""
    seen: set[str] = set()
    saved = 0
    for journal in Journal.all(journal_dir(data_dir), PREFIX):
        if journal.state not in ("applying", "complete"):
            continue
        for i in journal.marks("done"):
            op = journal.ops[i] if i < len(journal.ops) else None
            if op is None or op.action not in ("link", "reflink") or op.keep is None:
                continue
            if op.path in seen:
                continue
            try:
                same = not is_link(op.path) and (
                    os.path.samefile if op.action == "link" else same_blocks
                )(op.path, op.keep)
            except OSError:
                continue
            if same:
                seen.add(op.path)
                saved += op.size or 0
    return saved, len(seen)
