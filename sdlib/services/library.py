"""Operations on the user's webUI folders, one implementation for the CLI, the TUI and scripts.

Each takes a :class:`~sdlib.services.Context` and plain values, reports progress through an
optional callback, and returns a typed result; none prints or draws. ``sdlib scan``,
``identify``, ``updates``, ``organize``, ``verify``-style checks and the TUI's Library screen
all call these.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.hashing import FileHashes
    from sdlib.library.identify import IdentifyEvent, IdentifyResult
    from sdlib.library.layouts import Layout
    from sdlib.library.organize import OrganizeOptions, Plan
    from sdlib.library.scan import FileReport, ScanProgress, ScanResult
    from sdlib.library.trash import TrashResult
    from sdlib.library.updates import UpdatesReport
    from sdlib.lookup import Lookup
    from sdlib.services._context import Context
    from sdlib.services.verify import FileCheck

__all__ = [
    "Evidence",
    "OrganizeOutcome",
    "check_updates",
    "evidence",
    "identify",
    "organize_apply",
    "organize_plan",
    "organize_undo",
    "scan",
    "trash",
    "verify",
]


def scan(
    ctx: Context,
    root: str | Path | None = None,
    ui: str | None = None,
    *,
    layout: Layout | None = None,
    only: Sequence[str | os.PathLike[str]] | None = None,
    hash_all: bool = False,
    on_progress: Callable[[ScanProgress], None] | None = None,
    workers: int | None = None,
) -> ScanResult:
    """Scan a webUI folder (default: the configured one); unchanged files are not read.

    ``layout`` replaces the one ``ui`` names (``root`` is then required); ``only`` scans
    just these files of it.
    """
    from sdlib.library.scan import scan as scan_tree

    if layout is None:
        path, layout = ctx.library_root(root, ui)
    else:
        if root is None:
            raise ValueError("a layout needs its root")
        path = Path(root).expanduser()
    return scan_tree(
        path, layout, ctx.index, ctx.hashes,
        hash_all=hash_all, only=only, on_progress=on_progress, workers=workers,
    )  # fmt: skip


def identify(
    ctx: Context,
    reports: Sequence[FileReport],
    *,
    root: str | Path | None = None,
    layout: Layout | None = None,
    refresh: bool = False,
    previews: bool = True,
    jobs: int = 4,
    rate: float = 4.0,
    remote: Lookup | None = None,
    on_event: Callable[[IdentifyEvent], None] | None = None,
) -> list[IdentifyResult]:
    """Look model files up at the source (Civitai) by hash and write their sidecars.

    ``root``/``layout``: the webUI folder the files were scanned in; sidecars are never
    written behind a link that leads outside it. Without ``root`` (files named one by one),
    sidecars go beside each file. ``remote``: share one paced, counted lookup
    (``Context.remote``) across calls (default: a new one at ``rate`` requests a second).
    """
    from sdlib.library.identify import Identifier, IdentifyOptions
    from sdlib.library.wall import Wall

    wall = Wall.for_layout(root, layout) if root is not None and layout is not None else None
    options = IdentifyOptions.for_layout(
        layout.name if layout is not None else "plain",
        refresh=refresh, previews=previews, nsfw=ctx.settings.civitai.nsfw, jobs=jobs,
        wall=wall,
    )  # fmt: skip
    identifier = Identifier(
        ctx.index, ctx.hashes, remote or ctx.remote(rate), options,
        **({"on_event": on_event} if on_event is not None else {}),
    )  # fmt: skip
    return identifier.run([r.row for r in reports if r.role == "model"])


def check_updates(
    ctx: Context,
    reports: Sequence[FileReport],
    *,
    ttl: float = 24 * 3600.0,
    refresh: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> UpdatesReport:
    """Newer Civitai versions of the identified models among ``reports``."""
    from sdlib.library.updates import check_updates as check

    rows = [r.row for r in reports if r.role == "model"]
    return check(rows, ctx.remote(), ttl=ttl, refresh=refresh, on_progress=on_progress)


# --- what a file is, and whether it is intact -------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Why sdlib thinks a file is what it is (``inspect_file``), and its cached hashes."""

    path: str
    summary: str
    lines: tuple[str, ...]
    hashes: FileHashes | None
    #: The preview sidecar to draw, if any.
    preview: str | None


def evidence(ctx: Context, report: FileReport) -> Evidence:
    """Classification with evidence (reads the header only) and hashes from the cache."""
    from sdlib.errors import SdlibError
    from sdlib.inspect import inspect_file

    lines: list[str] = []
    summary = ""
    try:
        result = inspect_file(report.path)
    except SdlibError as exc:
        summary = f"cannot read: {exc.message}"
    else:
        cls = result.classification
        bits = [str(result.container)]
        if cls is not None:
            bits = [
                str(cls.kind),
                str(cls.base),
                *([cls.variant] if cls.variant else []),
                str(cls.precision or cls.quantization or "?"),
                str(cls.weights),
                str(result.container),
            ]
            lines += list(cls.evidence)
            if cls.lora is not None:
                lines.append(
                    f"LoRA: {cls.lora.algo}, rank {cls.lora.rank}, "
                    f"targets {', '.join(cls.lora.targets)}"
                )
        elif result.note:
            lines.append(result.note)
        if result.safety is not None:
            lines.append(f"pickle scan: {result.safety.verdict}")
        summary = " · ".join(bits)
    preview = next((s for s in report.sidecars if _is_image(s)), None)
    return Evidence(report.path, summary, tuple(lines), ctx.hashes.lookup(report.path), preview)


def _is_image(path: str) -> bool:
    return path.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".gif"))


def verify(ctx: Context, report: FileReport) -> FileCheck:
    """Hash one scanned file again and compare it with every SHA256 known for it: the
    check ``sdlib verify`` makes (:func:`sdlib.services.verify.check_file`)."""
    from sdlib.services.verify import check_file

    return check_file(ctx, report)


def trash(report: FileReport, root: Path, layout: Layout | None = None) -> TrashResult:
    """Move a file and its sidecars to the system trash (else ``<root>/.sdlib-trash``),
    sidecars first, the model last; only inside the root and the folders ``layout`` is
    configured to read elsewhere."""
    from sdlib.library.trash import move_to_trash
    from sdlib.library.wall import Wall

    wall = Wall.for_layout(root, layout) if layout is not None else None
    return move_to_trash([*report.sidecars, report.path], root, wall=wall)


# --- organize ----------------------------------------------------------------------------------


def organize_plan(ctx: Context, result: ScanResult, options: OrganizeOptions | None = None) -> Plan:
    """The moves that fix what the scan found (nothing changes)."""
    from sdlib.library.organize import OrganizeOptions, make_plan

    return make_plan(result, options or OrganizeOptions(), ctx.sha256_of())


@dataclass(frozen=True)
class OrganizeOutcome:
    """What an apply or undo did. ``actions``/``skipped``/``failed`` are ``op_dict`` records
    (with ``why`` for the last two); ``resumed``: an interrupted apply was finished."""

    action: str
    root: str
    journal: str | None
    resumed: bool
    done: int
    actions: tuple[dict[str, Any], ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()
    failed: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "root": self.root, "journal": self.journal,
            "resumed": self.resumed, "actions": list(self.actions), "done": self.done,
            "skipped": list(self.skipped), "failed": list(self.failed),
        }  # fmt: skip


def interrupted(ctx: Context, root: str | Path) -> str | None:
    """The journal of an organize run on ``root`` that was interrupted, if any."""
    from sdlib.library.organize import find_journal, journal_dir

    pending = find_journal(journal_dir(ctx.settings.data_dir), _abs(root), ("applying", "undoing"))
    return str(pending.path) if pending else None


def journal_ui(ctx: Context, root: str | Path, *, undo: bool) -> str | None:
    """The webUI layout an earlier apply on ``root`` used (undo and resume need only the
    root); None when there is no journal to undo or finish."""
    from sdlib.library.organize import find_journal, journal_dir

    states = ("undoing", "applying", "complete") if undo else ("applying",)
    journal = find_journal(journal_dir(ctx.settings.data_dir), _abs(root), states)
    ui = journal.header.get("ui") if journal is not None else None
    return ui if isinstance(ui, str) and ui else None


def organize_apply(
    ctx: Context,
    root: str | Path,
    make: Callable[[], Plan],
) -> OrganizeOutcome:
    """Finish an interrupted apply on ``root``, or carry out a new plan (``make()`` is
    called only then) through a journal; :func:`organize_undo` reverts it."""
    from sdlib.errors import UsageError
    from sdlib.library.organize import Journal, apply_journal, find_journal, journal_dir, locked

    root_s = _abs(root)
    jdir = journal_dir(ctx.settings.data_dir)
    with locked(jdir):
        if find_journal(jdir, root_s, ("undoing",)):
            raise UsageError("an organize --undo was interrupted here; run organize --undo again")
        journal = find_journal(jdir, root_s, ("applying",))
        resumed = journal is not None
        if journal is None:
            plan = make()
            if not plan.ops:
                return OrganizeOutcome("apply", root_s, None, False, 0)
            journal = Journal.create(jdir, plan.header())
        report = apply_journal(journal, ctx.sha256_of())
    return _outcome("apply", root_s, journal, report, resumed)


def organize_undo(ctx: Context, root: str | Path) -> OrganizeOutcome:
    """Put back what the last organize run on ``root`` changed (or finish an undo)."""
    from sdlib.errors import UsageError
    from sdlib.library.organize import find_journal, journal_dir, locked, undo_journal

    root_s = _abs(root)
    jdir = journal_dir(ctx.settings.data_dir)
    with locked(jdir):
        journal = find_journal(jdir, root_s, ("undoing", "applying", "complete"))
        if journal is None:
            raise UsageError(f"no organize run to undo for {root_s}")
        report = undo_journal(journal, ctx.sha256_of())
    return _outcome("undo", root_s, journal, report, False)


def _outcome(action: str, root: str, journal: Any, report: Any, resumed: bool) -> OrganizeOutcome:
    from sdlib.library.organize import op_dict

    ops = journal.ops
    return OrganizeOutcome(
        action, root, str(journal.path), resumed, len(report.done),
        tuple(op_dict(op, root) for op in ops),
        tuple({**op_dict(ops[i], root), "why": why} for i, why in report.skipped),
        tuple({**op_dict(ops[i], root), "why": why} for i, why in report.failed),
    )  # fmt: skip


def _abs(root: str | Path) -> str:
    return os.path.abspath(os.path.expanduser(str(root)))
