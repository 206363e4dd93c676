"""``sdlib link --move-existing``: the webUI's own model files moved into the store it is
linked to, and back on ``sdlib unlink`` (used by :mod:`sdlib.services.store`).

Which folders: exactly those the link shows the store in. For sub-folder links each linked
webUI folder (``models/Lora`` for ``models/Lora/sdlib-store -> STORE/Lora``); for ComfyUI's
YAML and SD.Next's config.json the webUI's own folder of each kind the edit points at the
store. A webUI folder shown two store folders (Forge's ``models/Lora``: Lora and LyCORIS)
moves into the first. The moves themselves are :mod:`sdlib.library.move_in`'s, journaled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.library.move_in import MovePlan
    from sdlib.services._context import Context
    from sdlib.store.plan import Plan

__all__ = ["MoveReport", "move_pairs", "plan_moves", "run_moves", "undo_moves"]

#: ``on_progress(done, total)`` before each move.
OnMove = Callable[[int, int], None]


@dataclass(frozen=True)
class MoveReport:
    """What a run of the moves did. ``journal``: where it is recorded."""

    journal: str
    moved: int
    bytes: int
    #: (path, why) of each file left where it was.
    skipped: tuple[tuple[str, str], ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    #: Copies removed because the store has the very same bytes under that name (moving
    #: back: copied back from the store). Counted in ``moved`` and ``bytes`` too.
    same: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "journal": self.journal, "moved": self.moved, "bytes": self.bytes,
            "same_as_store": self.same,
            "skipped": [{"path": p, "why": w} for p, w in self.skipped],
            "failed": [{"path": p, "why": w} for p, w in self.failed],
        }  # fmt: skip


def move_pairs(
    plan: Plan, root: str, store: str, folders: tuple[str, ...]
) -> list[tuple[str, str]]:
    """(webUI folder, store folder) for each folder the link shows the store in."""
    from sdlib.store.folders import COMFY_KEYS, SDNEXT_KEYS, link_spots

    pairs: list[tuple[str, str]] = []
    for action in plan.actions:
        if action.op in ("symlink", "junction"):
            pairs.append((os.path.dirname(action.path), action.target))
        elif action.op in ("yaml", "json"):
            keys = COMFY_KEYS if action.op == "yaml" else SDNEXT_KEYS
            ui = "comfyui" if action.op == "yaml" else "sdnext"
            pairs += [
                (os.path.join(root, *spot.ui_folder.split("/")),
                 os.path.join(store, spot.store_folder))
                for spot in link_spots(ui, folders) if spot.store_folder in keys
            ]  # fmt: skip
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for ui_folder, store_folder in pairs:
        if os.path.normcase(ui_folder) not in seen:
            seen.add(os.path.normcase(ui_folder))
            out.append((ui_folder, store_folder))
    return out


def plan_moves(ctx: Context, plan: Plan, root: str, store: str,
               folders: tuple[str, ...]) -> MovePlan:  # fmt: skip
    from sdlib.library import move_in

    pairs = move_pairs(plan, root, store, folders)
    return move_in.plan_moves(root, store, pairs, index=str(ctx.index.path),
                              sha256_of=ctx.sha256_of())  # fmt: skip


def start(ctx: Context, moves: MovePlan) -> str:
    """The journal of ``moves``, written before any file moves."""
    from sdlib.library.move_in import create_journal

    return str(create_journal(Path(ctx.settings.data_dir), moves).path)


def run_moves(ctx: Context, journal: str, on_progress: OnMove | None = None) -> MoveReport:
    """Carry out (or finish) the moves recorded in ``journal``."""
    from sdlib.errors import LibraryError
    from sdlib.library.move_in import apply_moves, load_moves

    found = load_moves(journal)
    if found is None:
        raise LibraryError(f"the move journal {journal} is gone", path=journal)
    report = apply_moves(Path(ctx.settings.data_dir), found, ctx.sha256_of(), on_progress)
    return _report(found, report)


def undo_moves(ctx: Context, journal: str,
               on_progress: OnMove | None = None) -> MoveReport | None:  # fmt: skip
    """Move back what ``journal`` moved; None when there is nothing (left) to move back."""
    from sdlib.library.move_in import load_moves
    from sdlib.library.move_in import undo_moves as undo

    found = load_moves(journal)
    if found is None:
        return None
    report = undo(Path(ctx.settings.data_dir), found, ctx.sha256_of(), on_progress)
    return _report(found, report) if report is not None else None


def interrupted(journal: str | None) -> bool:
    """The moves of ``journal`` were started and not finished (nor undone)."""
    from sdlib.library.move_in import load_moves

    found = load_moves(journal) if journal else None
    return found is not None and found.state == "applying"


def _report(journal: Any, report: Any) -> MoveReport:
    ops = journal.ops
    moved = [ops[i] for i in report.done if ops[i].action in ("move", "delete")]
    return MoveReport(
        str(journal.path), len(moved), sum(op.size or 0 for op in moved),
        tuple((ops[i].path, why) for i, why in report.skipped),
        tuple((ops[i].path, why) for i, why in report.failed),
        sum(1 for op in moved if op.action == "delete"),
    )  # fmt: skip
