"""The organize journal, and the file operations it drives forward (apply) or back (undo).

**Journal.** One JSON-lines file per organize run in ``<data dir>/organize/``. The first
line is the whole plan, written to a temporary name, fsynced and renamed into place before
any file is touched. Then one line per finished operation (``done``, ``skip``, ``fail``),
``complete`` at the end; an undo appends ``undo-start``, ``undo-done`` per operation and
``undone``. Each line is flushed and fsynced. A torn last line (a crash mid-write) is
ignored when reading.

**Crash safety.** The marks are a record, not the source of truth: each operation finds
itself pending, applied, half-way or blocked from the file system before acting
(:mod:`sdlib.library._journal_steps` says how each step is atomic or recognisable), so
bytes are never lost and nothing outside the root is touched. Undo runs the operations
backwards with the same checks, so it too can be interrupted and run again.

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
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdlib.errors import LibraryError, UsageError
from sdlib.library._fileops import Steps as _Steps
from sdlib.library._fileops import fsync_dir
from sdlib.library._follow import Follow as _Follow
from sdlib.library._journal_steps import (
    APPLIED,
    Blocked,
    Sha256Of,
    backward,
    forward,
    inside_wall,
    state_of,
)
from sdlib.library.wall import Wall

__all__ = ["Journal", "OnStep", "Op", "RunReport", "Sha256Of", "apply_journal", "undo_journal"]

VERSION = 1

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
            inside_wall(op, wall)
            state = state_of(op, sha256_of)
            if state not in (APPLIED,):
                forward(op, state, sha256_of, steps)
            follow.forward(op)
            _mark(journal, report, "done", i, None, steps)
        except Blocked as exc:
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
            inside_wall(op, wall)
            backward(op, sha256_of, steps)
            follow.backward(op)
            journal.append({"type": "undo-done", "op": i})
            report.done.append(i)
            steps()
        except Blocked as exc:
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
