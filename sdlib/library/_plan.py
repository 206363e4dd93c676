"""An organize plan and where its journals live (the planner is :mod:`sdlib.library.organize`).

A plan is the list of file operations organize would make, with the folders it may touch
and the index its rows are in; its ``header`` is the first line of the journal that
carries it out (:mod:`sdlib.library._journal`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdlib.errors import UsageError
from sdlib.library._journal import Journal, Op
from sdlib.library._status import display

DEDUPE = ("keep", "hardlink", "delete")


@dataclass(frozen=True)
class OrganizeOptions:
    by_base: bool = False
    dedupe: str = "keep"

    def __post_init__(self) -> None:
        if self.dedupe not in DEDUPE:
            raise UsageError(f"--dedupe must be one of {', '.join(DEDUPE)}")


@dataclass
class Plan:
    root: str
    ui: str
    options: OrganizeOptions
    ops: list[Op] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Real folders the plan may change files in (the journal checks them again).
    wall: tuple[str, ...] = ()
    #: The library index the scan wrote: its rows follow the files (``_follow``).
    index: str | None = None

    def header(self) -> dict[str, Any]:
        return {
            "root": self.root, "ui": self.ui, "by_base": self.options.by_base,
            "dedupe": self.options.dedupe, "wall": list(self.wall),
            "ops": [op.to_dict() for op in self.ops],
            **({"index": self.index} if self.index else {}),
        }  # fmt: skip

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.action] = counts.get(op.action, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "ui": self.ui, "by_base": self.options.by_base,
            "dedupe": self.options.dedupe, "actions": [op_dict(op, self.root) for op in self.ops],
            "notes": list(self.notes), "summary": self.summary(),
        }  # fmt: skip


def op_dict(op: Op, root: str) -> dict[str, Any]:
    data = op.to_dict()
    for key in ("path", "dst", "keep"):
        if key in data:
            data[f"{key}_rel"] = display(root, data[key])
    return data


def journal_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "organize"


def find_journal(directory: Path, root: str, states: tuple[str, ...]) -> Journal | None:
    """The newest journal for ``root`` whose state is one of ``states``."""
    for journal in reversed(Journal.all(directory)):
        if os.path.normcase(journal.root) == os.path.normcase(root) and journal.state in states:
            return journal
    return None
