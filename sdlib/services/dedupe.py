"""Dedupe model files inside and across webUI roots: plan, apply (reflinks where the
filesystem makes them, else hard links), undo.

One implementation for the CLI, the TUI and scripts:

    from sdlib.services import Context, dedupe

    with Context() as ctx:
        plan = dedupe.plan(ctx, ["~/stable-diffusion-webui", "~/ComfyUI"])
        print(plan.reclaimable, "bytes could be freed")
        done = dedupe.apply(ctx, ["~/stable-diffusion-webui", "~/ComfyUI"])
        dedupe.undo(ctx, ["~/stable-diffusion-webui", "~/ComfyUI"])   # separate files again

Each root is scanned through :func:`sdlib.services.library.scan` (incrementally: unchanged
files are not read); SHA256 comes from the index and the hash cache (``Context.hashes``), so
a second run reads no model file. The rules are in :mod:`sdlib.library.dedupe`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.library.dedupe import DedupePlan
    from sdlib.services._context import Context

__all__ = [
    "DedupeOutcome", "DedupeProgress", "apply", "dedupe_apply", "dedupe_plan", "dedupe_undo",
    "interrupted", "plan", "undo",
]  # fmt: skip

Roots = Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class DedupeProgress:
    """``stage``: scan (a root's scan: inspect or hash), hash (comparing across roots), link
    (applying), undo; ``total`` may be None."""

    stage: str
    done: int
    total: int | None
    path: str | None = None


Progress = Callable[[DedupeProgress], None]


@dataclass(frozen=True)
class DedupeOutcome:
    """What an apply or undo did. ``plan``: the plan a new apply made (None when it finished
    an interrupted run, and for undo); ``journal`` is None when there was nothing to do."""

    action: str
    roots: tuple[str, ...]
    journal: str | None
    resumed: bool
    done: int
    actions: tuple[dict[str, Any], ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()
    failed: tuple[dict[str, Any], ...] = ()
    plan: DedupePlan | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "roots": list(self.roots), "journal": self.journal,
            "resumed": self.resumed, "done": self.done, "actions": list(self.actions),
            "skipped": list(self.skipped), "failed": list(self.failed),
            **({"plan": self.plan.to_dict()} if self.plan is not None else {}),
        }  # fmt: skip


def plan(
    ctx: Context, roots: Roots, ui: str | Sequence[str] | None = None,
    *, on_progress: Progress | None = None, reflink: bool = True,
) -> DedupePlan:  # fmt: skip
    """Scan ``roots`` and plan a hard link for every extra copy (nothing changes); with
    ``reflink``, a reflink instead on each volume that can make them (tried, once).

    ``ui``: one webUI name for every root, one per root, or None (detected per root).
    """
    from sdlib.library.dedupe import Source, make_plan, norm_roots
    from sdlib.library.wall import Wall
    from sdlib.services.library import scan
    from sdlib.services.paths import locate

    emit = on_progress or (lambda _e: None)
    given = norm_roots(roots)
    uis = _uis(ui, len(given))
    sources = []
    for root, name in zip(given, uis, strict=True):
        if not os.path.isdir(root):
            from sdlib.errors import UsageError

            raise UsageError(f"{root} is not a folder")
        target = locate(ctx, [root], name)[0]

        def scanned(event: Any, root: str = root) -> None:
            if event.stage != "walk":
                emit(DedupeProgress("scan", event.done, event.total, event.path or root))

        result = scan(ctx, target.root, layout=target.layout, on_progress=scanned, workers=None)
        within = os.fspath(target.within or target.root)
        files = tuple(f for f in result.models if _inside(f.path, within))
        wall = Wall.for_layout(target.root, target.layout)
        sources.append(Source(root, target.layout.name, wall, files))

    def on_hash(done: int, total: int, path: str) -> None:
        emit(DedupeProgress("hash", done, total, path))

    hashes = ctx.hashes

    def cached(path: str) -> str | None:
        known = hashes.lookup(path)
        return known.sha256 if known is not None else None

    return make_plan(sources, ctx.sha256_of(), index=str(ctx.index.path), cached=cached,
                     reflink=reflink, on_hash=on_hash)  # fmt: skip


def apply(
    ctx: Context, roots: Roots, ui: str | Sequence[str] | None = None,
    *, on_progress: Progress | None = None, reflink: bool = True,
) -> DedupeOutcome:  # fmt: skip
    """Finish an interrupted dedupe of ``roots``, or plan and carry it out (journaled: a
    kill at any point is finished by calling this again or reverted by :func:`undo`)."""
    from sdlib.library.dedupe import apply_dedupe, norm_roots

    given = norm_roots(roots)
    journal, report, made = apply_dedupe(
        ctx.settings.data_dir, given,
        lambda: plan(ctx, given, ui, on_progress=on_progress, reflink=reflink),
        ctx.sha256_of(), _steps(on_progress, "link"),
    )  # fmt: skip
    if journal is None or report is None:
        return DedupeOutcome("apply", given, None, False, 0, plan=made)
    return _outcome("apply", given, journal, report, made is None, made)


def undo(ctx: Context, roots: Roots, *, on_progress: Progress | None = None) -> DedupeOutcome:
    """Give back separate files for what the last dedupe of ``roots`` linked (or finish an
    interrupted undo): each copy's bytes again, verified by SHA256."""
    from sdlib.library.dedupe import norm_roots, undo_dedupe

    given = norm_roots(roots)
    journal, report = undo_dedupe(ctx.settings.data_dir, given, ctx.sha256_of(),
                                  _steps(on_progress, "undo"))  # fmt: skip
    return _outcome("undo", given, journal, report, False, None)


def interrupted(ctx: Context, roots: Roots) -> str | None:
    """The journal of an interrupted dedupe (apply or undo) of exactly these roots."""
    from sdlib.library.dedupe import find_dedupe_journal, norm_roots

    found = find_dedupe_journal(ctx.settings.data_dir, norm_roots(roots), ("applying", "undoing"))
    return str(found.path) if found is not None else None


#: The names ``sdlib`` exports them under (``sdlib.dedupe_plan`` ...).
dedupe_plan = plan
dedupe_apply = apply
dedupe_undo = undo


def _steps(on_progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if on_progress is None:
        return None
    return lambda done, total: on_progress(DedupeProgress(stage, done, total))


def _uis(ui: str | Sequence[str] | None, n: int) -> list[str | None]:
    from sdlib.errors import UsageError

    if ui is None or isinstance(ui, str):
        return [ui] * n
    names: list[str | None] = list(ui)
    if len(names) == 1:
        return names * n
    if len(names) != n:
        raise UsageError(f"give one --ui for every root, or one for all ({n} roots)")
    return names


def _outcome(action: str, roots: tuple[str, ...], journal: Any, report: Any, resumed: bool,
             made: DedupePlan | None) -> DedupeOutcome:  # fmt: skip
    ops = journal.ops
    return DedupeOutcome(
        action, roots, str(journal.path), resumed, len(report.done),
        tuple(op.to_dict() for op in ops),
        tuple({**ops[i].to_dict(), "why": why} for i, why in report.skipped),
        tuple({**ops[i].to_dict(), "why": why} for i, why in report.failed),
        made,
    )  # fmt: skip


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), folder]) == folder
    except ValueError:  # another drive
        return False
