"""The organize journal, and the file operations it drives forward (apply) or back (undo).

**Journal.** One JSON-lines file per organize run in ``<data dir>/organize/``. The first
line is the whole plan, written to a temporary name, fsynced and renamed into place before
any file is touched. Then one line per finished operation (``done``, ``skip``, ``fail``),
``complete`` at the end; an undo appends ``undo-start``, ``undo-done`` per operation and
``undone``. Each line is flushed and fsynced. A torn last line (a crash mid-write) is
ignored when reading.

**Crash safety.** The marks are a record, not the source of truth: before acting, every
operation inspects the file system and finds itself pending, applied, half-way, or blocked
(something else changed the files; then it is skipped, never forced). Each step is atomic
or leaves a state the check recognises:

- move, same device: ``link(src, dst)`` then ``unlink(src)`` (``rename`` where hard links
  are not supported). Half-way, both names are one inode: finishing means unlinking src.
- move, across devices: copy to ``.<name>.sdlib-part`` beside dst, fsync, re-read and
  compare SHA256 with the source, ``os.replace`` to dst, fsync the folder, then unlink src.
  A part file is always a redundant copy and is removed on resume; with both src and dst
  present, dst is verified again before src is removed.
- link (dedupe): ``link(kept, tmp)``, then ``os.replace(tmp, dup)``: the name never goes
  missing and always holds the same bytes.
- reflink (dedupe, where the filesystem clones): the same with a clone for ``tmp``; undo
  leaves it, a file of its own already.
- delete (``--dedupe delete`` only): only while the kept copy exists with the same SHA256.
- mkdir: idempotent; undo removes the folder only if empty.

So bytes are never lost: nothing is unlinked before another name holds the same bytes.
And nothing outside the root is touched: right before each step (forward or back), every
path of the operation must still resolve inside the wall the plan recorded; a folder
swapped for a link to elsewhere since the plan blocks the step.
Undo runs the operations backwards with the same checks, so it too can be interrupted and
run again.

**The index follows.** The plan names the library index it was made from; after each step
(forward or back) the file's row follows it there (a move takes the row, and so the Civitai
identity and history, to the new path; a deleted copy's row is marked gone and comes back
with the copy). A scan would find most of this by inode, but not a name that now holds
another inode (a hard link) or a copy a step wrote; the index is a record that never
blocks a step. ``SDLIB_TEST_CRASH_AFTER=N`` makes the process exit (137) after N steps and
``SDLIB_TEST_STEP_DELAY`` sleeps between steps: hooks for the kill tests.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdlib.errors import LibraryError, UsageError
from sdlib.library._fileops import Steps as _Steps
from sdlib.library._fileops import (
    copy,
    fsync_dir,
    is_link,
    name,
    part_path,
    remove,
    same_device,
    sha256,
)
from sdlib.library._follow import Follow as _Follow
from sdlib.library._reflink import reflink_over, same_blocks
from sdlib.library.wall import Wall

__all__ = ["Journal", "Op", "RunReport", "apply_journal", "undo_journal"]

VERSION = 1
PENDING, APPLIED, PARTIAL = "pending", "applied", "partial"

Sha256Of = Callable[[str], "str | None"]
OnStep = Callable[[int, int], None]


@dataclass(frozen=True)
class Op:
    """One file operation of a plan. ``path`` is the file acted on (a move's source)."""

    action: str  # mkdir | move | link | delete
    path: str
    dst: str | None = None  # move: where to
    keep: str | None = None  # link/delete: the identical copy that stays
    size: int | None = None
    mtime_ns: int | None = None
    mode: int | None = None
    sha256: str | None = None
    #: Operations of one model and its sidecars share a group: one failing stops the rest.
    group: int | None = None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Op:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class RunReport:
    journal: str
    done: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


# --- the journal file -------------------------------------------------------------------------


class Journal:
    def __init__(self, path: Path, header: dict[str, Any], records: list[dict[str, Any]]):
        self.path = path
        self.header = header
        self.ops = [Op.from_dict(o) for o in header.get("ops", [])]
        self.records = records

    @property
    def root(self) -> str:
        return str(self.header.get("root", ""))

    @property
    def wall(self) -> Wall:
        """The real folders this run may change (older journals: the root)."""
        roots = self.header.get("wall")
        if isinstance(roots, list) and roots and all(isinstance(r, str) for r in roots):
            return Wall(tuple(roots))
        return Wall.of(self.root)

    def marks(self, kind: str) -> dict[int, dict[str, Any]]:
        return {r["op"]: r for r in self.records if r.get("type") == kind and "op" in r}

    @property
    def state(self) -> str:
        types = {r.get("type") for r in self.records}
        if "undone" in types:
            return "undone"
        if "undo-start" in types:
            return "undoing"
        return "complete" if "complete" in types else "applying"

    @classmethod
    def create(cls, directory: Path, header: dict[str, Any], prefix: str = "organize") -> Journal:
        """A new journal; ``prefix`` names the command (``dedupe`` runs share the folder)."""
        directory.mkdir(parents=True, exist_ok=True)
        # Names sort oldest first: a timestamp, then nanoseconds within the second.
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
        path = directory / f"{prefix}-{stamp}-{os.getpid()}.jsonl"
        header = {"type": "plan", "version": VERSION, "created": time.time(), **header}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(header) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
        return cls(path, header, [])

    @classmethod
    def load(cls, path: Path) -> Journal:
        try:
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                # A line torn by a crash while writing: that step was not recorded. Cut it
                # off so the next record starts on a line of its own.
                data = data[: data.rfind(b"\n") + 1]
                with open(path, "r+b") as fh:
                    fh.truncate(len(data))
            lines = data.decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LibraryError(f"cannot read the organize journal: {exc}", path=str(path)) from None
        try:
            records = [json.loads(line) for line in lines if line.strip()]
        except ValueError:
            raise LibraryError("the organize journal is damaged", path=str(path)) from None
        if not records or records[0].get("type") != "plan":
            raise LibraryError("not an sdlib organize journal", path=str(path))
        if records[0].get("version") != VERSION:
            raise LibraryError("organize journal from another sdlib version", path=str(path))
        return cls(path, records[0], records[1:])

    @classmethod
    def all(cls, directory: Path, prefix: str = "organize") -> list[Journal]:
        """Every journal of ``prefix`` runs in ``directory``, oldest first."""
        if not directory.is_dir():
            return []
        # Names start with a timestamp: sorting by name is oldest first.
        return [cls.load(p) for p in sorted(directory.glob(f"{prefix}-*.jsonl"))]

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One organize or dedupe at a time (the OS drops the lock if the process dies)."""
    from sdlib._filelock import try_lock, unlock

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "organize.lock", "a+b") as fh:
        if not try_lock(fh):
            raise LibraryError("another sdlib organize or dedupe is running; wait for it")
        try:
            yield
        finally:
            unlock(fh)


# --- running ---------------------------------------------------------------------------------


def apply_journal(journal: Journal, sha256_of: Sha256Of, on_step: OnStep | None = None
                  ) -> RunReport:  # fmt: skip
    """Carry out every operation not yet done; safe to call again after any crash.
    ``on_step(done, total)`` is told before each operation (progress)."""
    if journal.state in ("undoing", "undone"):
        raise UsageError("that organize run was undone (or is being undone); plan again")
    steps = _Steps()
    wall = journal.wall
    report = RunReport(str(journal.path))
    finished = {**journal.marks("done"), **journal.marks("skip"), **journal.marks("fail")}
    broken = {journal.ops[i].group for i in {**journal.marks("skip"), **journal.marks("fail")}}
    follow = _Follow.of(journal)
    for i, op in enumerate(journal.ops):
        if on_step is not None:
            on_step(i, len(journal.ops))
        if i in finished:
            if i in journal.marks("done"):
                report.done.append(i)
            continue
        if op.group is not None and op.group in broken:
            _mark(
                journal, report, "skip", i, "an earlier step for this model did not happen", steps
            )
            continue
        try:
            _inside_wall(op, wall)
            state = _state(op, sha256_of)
            if state not in (APPLIED,):
                _forward(op, state, sha256_of, steps)
            follow.forward(op)
            _mark(journal, report, "done", i, None, steps)
        except _Blocked as exc:
            broken.add(op.group)
            _mark(journal, report, "skip", i, str(exc), steps)
        except OSError as exc:
            broken.add(op.group)
            _mark(journal, report, "fail", i, f"{exc.strerror or exc}", steps)
    follow.close()
    journal.append({"type": "complete", "at": time.time()})
    return report


def undo_journal(journal: Journal, sha256_of: Sha256Of, on_step: OnStep | None = None
                 ) -> RunReport:  # fmt: skip
    """Put every file back where the plan found it; safe to call again after any crash.
    ``on_step(done, total)`` is told before each operation (progress)."""
    if journal.state == "undone":
        raise UsageError("that organize run is already undone")
    steps = _Steps()
    wall = journal.wall
    if journal.state != "undoing":
        journal.append({"type": "undo-start", "at": time.time()})
    report = RunReport(str(journal.path))
    finished = journal.marks("undo-done")
    never = journal.marks("skip")  # refused before touching anything: nothing to undo
    follow = _Follow.of(journal)
    for i in range(len(journal.ops) - 1, -1, -1):
        op = journal.ops[i]
        if on_step is not None:
            on_step(len(journal.ops) - 1 - i, len(journal.ops))
        if i in finished:
            report.done.append(i)
            continue
        if i in never:
            continue
        try:
            _inside_wall(op, wall)
            _backward(op, sha256_of, steps)
            follow.backward(op)
            journal.append({"type": "undo-done", "op": i})
            report.done.append(i)
            steps()
        except _Blocked as exc:
            journal.append({"type": "undo-skip", "op": i, "why": str(exc)})
            report.skipped.append((i, str(exc)))
        except OSError as exc:
            journal.append({"type": "undo-fail", "op": i, "why": f"{exc.strerror or exc}"})
            report.failed.append((i, f"{exc.strerror or exc}"))
    follow.close()
    journal.append({"type": "undone", "at": time.time()})
    return report


def _mark(
    journal: Journal, report: RunReport, kind: str, i: int, why: str | None, steps: _Steps
) -> None:
    journal.append({"type": kind, "op": i, **({"why": why} if why else {})})
    if kind == "done":
        report.done.append(i)
    elif kind == "skip":
        report.skipped.append((i, why or ""))
    else:
        report.failed.append((i, why or ""))
    steps()


class _Blocked(Exception):
    """The files are not as the plan left them: skip, never force."""


def _inside_wall(op: Op, wall: Wall) -> None:
    for path in (op.path, op.dst, op.keep):
        if path is not None and not wall.holds(path):
            raise _Blocked(f"{name(path)} now resolves outside the root (a link?)")


# --- one operation, forward and back ----------------------------------------------------------


def _state(op: Op, sha256_of: Sha256Of) -> str:
    if op.action == "mkdir":
        return APPLIED if os.path.isdir(op.path) else PENDING
    if op.action == "move":
        assert op.dst is not None
        return _move_state(op, op.path, op.dst, sha256_of)
    assert op.keep is not None
    if op.action in ("link", "reflink"):
        if not (os.path.lexists(op.path) and os.path.exists(op.keep)):
            raise _Blocked(f"{name(op.path)} or the copy it links to is gone")
        if is_link(op.path) or is_link(op.keep):  # made for a file: refused
            raise _Blocked(f"{name(op.path)} or the copy it links to is now a link")
        if (os.path.samefile if op.action == "link" else same_blocks)(op.path, op.keep):
            return APPLIED
        _check_same(op, op.path, sha256_of)
        return PENDING
    if op.action == "delete":
        if not os.path.exists(op.keep):
            raise _Blocked(f"the copy that was to stay ({name(op.keep)}) is gone")
        if not os.path.lexists(op.path):
            _check_same(op, op.keep, sha256_of)
            return APPLIED
        if os.path.samefile(op.path, op.keep):
            raise _Blocked("it is the same file as the copy that stays")
        _check_same(op, op.path, sha256_of)
        return PENDING
    raise LibraryError(f"unknown journal action {op.action!r}")


def _check_same(op: Op, path: str, sha256_of: Sha256Of) -> None:
    assert op.keep is not None
    if not (sha256_of(path) == op.sha256 == sha256_of(op.keep)):
        raise _Blocked(f"{name(path)} changed since the plan: not the same bytes any more")


def _move_state(op: Op, src: str, dst: str, sha256_of: Sha256Of) -> str:
    s, d = os.path.lexists(src), os.path.lexists(dst)
    if (s and is_link(src)) or (d and is_link(dst)):  # planned for files: never through one
        raise _Blocked(f"{name(src if s and is_link(src) else dst)} is now a link: not moved")
    if s and not d:
        if not _matches(src, op):
            raise _Blocked(f"{name(src)} changed since the plan")
        return PENDING
    if d and not s:
        if not _matches(dst, op):
            raise _Blocked(f"{name(dst)} is there but is not the file that was moved")
        return APPLIED
    if s and d:
        if os.path.samefile(src, dst):
            return PARTIAL  # linked, not yet unlinked
        if _matches(dst, op) and _matches(src, op) and sha256(src) == sha256(dst):
            return PARTIAL  # copied and verified, source not yet removed
        raise _Blocked(f"{name(dst)} already exists and holds other bytes")
    raise _Blocked(f"{name(src)} is gone")


def _forward(op: Op, state: str, sha256_of: Sha256Of, steps: _Steps) -> None:
    if op.action == "mkdir":
        os.makedirs(op.path, exist_ok=True)
    elif op.action == "move":
        assert op.dst is not None
        _move(op.path, op.dst, state, steps)
    elif op.action == "link":
        assert op.keep is not None
        tmp = part_path(op.path)
        remove(tmp)
        os.link(op.keep, tmp)
        if not os.path.samefile(tmp, op.keep):  # the new name must be the kept inode
            remove(tmp)
            raise OSError(errno.EIO, f"the link beside {name(op.path)} is not the kept file")
        steps()
        os.replace(tmp, op.path)
    elif op.action == "reflink":  # a clone of the kept file, with this name's mode and mtime
        reflink_over(op.keep or "", op.path, op.mode, op.mtime_ns, steps)
    elif op.action == "delete":
        os.unlink(op.path)
    steps()


def _backward(op: Op, sha256_of: Sha256Of, steps: _Steps) -> None:
    if op.action == "mkdir":
        with contextlib.suppress(OSError):
            os.rmdir(op.path)  # only if empty: anything the user put there stays
        return
    if op.action == "move":
        assert op.dst is not None
        state = _move_state(op, op.dst, op.path, sha256_of) if os.path.lexists(op.dst) else None
        if state is None:
            if not os.path.lexists(op.path):
                raise _Blocked(f"{name(op.path)} is gone from both places")
            remove(part_path(op.dst))
            return  # never moved, or already back
        if state != APPLIED:
            _move(op.dst, op.path, state, steps)
        return
    assert op.keep is not None
    if op.action in ("link", "reflink"):  # a reflink is a file of its own already
        if os.path.lexists(op.path) and os.path.exists(op.keep):
            if os.path.samefile(op.path, op.keep):
                _restorecopy(op, steps)  # give the name its own bytes again
            remove(part_path(op.path))
            return
        raise _Blocked(f"{name(op.path)} or {name(op.keep)} is gone")
    if op.action == "delete":
        if os.path.lexists(op.path):
            remove(part_path(op.path))
            return
        if not os.path.exists(op.keep) or sha256_of(op.keep) != op.sha256:
            raise _Blocked(f"cannot restore {name(op.path)}: its identical copy is gone")
        _restorecopy(op, steps)


def _move(src: str, dst: str, state: str, steps: _Steps) -> None:
    tmp = part_path(dst)
    remove(tmp)  # a part file is never the only copy
    if state == PARTIAL:
        os.unlink(src)
        fsync_dir(os.path.dirname(src))
        return
    if not steps.force_copy and same_device(src, dst):
        try:
            os.link(src, dst)  # organize never moves symlinks themselves
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise _Blocked(f"{name(dst)} appeared meanwhile") from None
            if os.path.lexists(dst):
                raise
            os.rename(src, dst)  # no hard links here (FAT, some shares): rename is atomic too
            fsync_dir(os.path.dirname(dst))
            return
        steps()
        os.unlink(src)
        fsync_dir(os.path.dirname(dst))
        return
    digest = copy(src, tmp)
    steps()
    if sha256(tmp) != digest:
        remove(tmp)
        raise OSError(errno.EIO, f"the copy of {name(src)} does not read back the same")
    os.replace(tmp, dst)
    fsync_dir(os.path.dirname(dst))
    steps()
    os.unlink(src)
    fsync_dir(os.path.dirname(src))


def _restorecopy(op: Op, steps: _Steps) -> None:
    assert op.keep is not None
    tmp = part_path(op.path)
    digest = copy(op.keep, tmp)
    if digest != op.sha256 or sha256(tmp) != digest:
        remove(tmp)
        raise _Blocked(f"the copy kept for {name(op.path)} no longer has its bytes")
    if op.mtime_ns is not None:
        os.utime(tmp, ns=(op.mtime_ns, op.mtime_ns))
    if op.mode is not None:
        os.chmod(tmp, op.mode & 0o7777)
    steps()
    os.replace(tmp, op.path)
    fsync_dir(os.path.dirname(op.path))


# --- small helpers ----------------------------------------------------------------------------


def _matches(path: str, op: Op) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (op.size is None or st.st_size == op.size) and (
        op.mtime_ns is None or st.st_mtime_ns == op.mtime_ns
    )
