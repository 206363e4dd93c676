"""The Library screen's operations, each a plain function run in a worker thread.

They call the library services the CLI uses (``scan``, ``Identifier``, ``check_updates``,
``inspect_file``, ``convert_file``) with the app's index, hash cache and HTTP client, so
the TUI and ``sdlib scan/identify/updates/convert`` always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.library.trash import TRASH_DIR

if TYPE_CHECKING:
    from sdlib.hashing import FileHashes
    from sdlib.library._journal import Journal, RunReport
    from sdlib.library.identify import IdentifyResult
    from sdlib.library.layouts import Layout
    from sdlib.library.organize import Plan
    from sdlib.library.scan import FileReport, ScanProgress, ScanResult
    from sdlib.library.trash import TrashResult
    from sdlib.library.updates import UpdatesReport
    from sdlib.transform.convert import ConvertResult
    from sdlib.tui.services import Services

__all__ = [
    "TRASH_DIR",
    "Evidence",
    "OrganizeOutcome",
    "Verification",
    "check_updates",
    "convert",
    "evidence",
    "identify",
    "organize_apply",
    "organize_plan",
    "organize_undo",
    "scan_library",
    "trash",
    "verify",
]


def scan_library(
    services: Services, on_progress: Callable[[ScanProgress], None] | None = None
) -> ScanResult:
    """Scan the configured webUI folder (incremental: unchanged files are not read)."""
    from sdlib.library.scan import scan

    root, layout = services.library_root()
    return scan(root, layout, services.index, services.hashes, on_progress=on_progress)


@dataclass(frozen=True)
class Evidence:
    """Why sdlib thinks a file is what it is (``inspect_file``), and its cached hashes."""

    path: str
    summary: str
    lines: tuple[str, ...]
    hashes: FileHashes | None
    #: The preview sidecar to draw, if any.
    preview: str | None


def evidence(report: FileReport, services: Services) -> Evidence:
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
    return Evidence(
        report.path, summary, tuple(lines), services.hashes.lookup(report.path), preview
    )


def _is_image(path: str) -> bool:
    return path.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".gif"))


@dataclass(frozen=True)
class Verification:
    path: str
    hashes: FileHashes
    #: What the SHA256 was compared with, and whether it matched ("" when nothing to compare).
    against: str
    ok: bool | None


def verify(report: FileReport, services: Services) -> Verification:
    """Hash the whole file again and compare with what the index and Civitai recorded."""
    from sdlib.hashing import hash_file
    from sdlib.library.sidecars import read_json

    hashes = hash_file(report.path)
    services.hashes.store(report.path, hashes)
    published = _published_sha256(report, read_json)
    if published is not None:
        return Verification(
            report.path,
            hashes,
            "Civitai's published SHA256",
            published.upper() == hashes.sha256.upper(),
        )
    if report.row.sha256:
        return Verification(
            report.path,
            hashes,
            "the SHA256 recorded at the last scan",
            report.row.sha256.upper() == hashes.sha256.upper(),
        )
    return Verification(report.path, hashes, "", None)


def _published_sha256(report: FileReport, read_json: Callable[[Path], Any]) -> str | None:
    """SHA256 of this file in its ``.civitai.info`` (by file id, else by file name)."""
    info = next((s for s in report.sidecars if s.endswith(".civitai.info")), None)
    if info is None:
        return None
    data = read_json(Path(info))
    if not isinstance(data, dict):
        return None
    files = [f for f in data.get("files") or [] if isinstance(f, dict)]
    wanted = report.row.civitai_file_id
    name = Path(report.path).name
    for f in files:
        if (wanted is not None and f.get("id") == wanted) or f.get("name") == name:
            sha = (f.get("hashes") or {}).get("SHA256")
            if isinstance(sha, str) and sha:
                return sha
    return None


def identify(reports: Sequence[FileReport], services: Services) -> list[IdentifyResult]:
    """Look files up on Civitai by hash and write their sidecars (as ``sdlib identify``)."""
    from sdlib.library._remote import RateLimiter, Remote
    from sdlib.library.identify import Identifier, IdentifyOptions
    from sdlib.library.wall import Wall

    root, layout = services.library_root()
    remote = Remote(
        services.http, services.settings.civitai.base_url, services.index, RateLimiter(4.0)
    )
    options = IdentifyOptions.for_layout(
        layout.name, nsfw=services.settings.civitai.nsfw, wall=Wall.for_layout(root, layout)
    )
    identifier = Identifier(services.index, services.hashes, remote, options)
    return identifier.run([r.row for r in reports if r.role == "model"])


def check_updates(reports: Sequence[FileReport], services: Services) -> UpdatesReport:
    """Newer Civitai versions of identified models (as ``sdlib updates``)."""
    from sdlib.library._remote import RateLimiter, Remote
    from sdlib.library.updates import check_updates as check

    remote = Remote(
        services.http, services.settings.civitai.base_url, services.index, RateLimiter(4.0)
    )
    return check([r.row for r in reports if r.role == "model"], remote)


def convert(report: FileReport) -> ConvertResult:
    """A safetensors copy of a pickle checkpoint beside it (the pickle is never executed).

    The output is ``<stem>.safetensors``, or ``<stem>.converted[-N].safetensors`` when that
    name is taken (often by the safetensors file the same model was published as).
    """
    from sdlib.transform.convert import convert_file, default_output

    source = Path(report.path)
    output = default_output(source)
    n = 1
    while output.exists():
        suffix = ".converted" if n == 1 else f".converted-{n}"
        output = source.with_name(f"{source.stem}{suffix}.safetensors")
        n += 1
    return convert_file(source, output)


# --- organize and trash -----------------------------------------------------------------------


def _sha256_of(services: Services) -> Callable[[str], str | None]:
    from sdlib.errors import SdlibError

    def sha256_of(path: str) -> str | None:
        try:
            return services.hashes.get(path)[0].sha256
        except (OSError, SdlibError):
            return None

    return sha256_of


def organize_plan(services: Services, result: ScanResult) -> Plan:
    """The moves that fix what the scan found (``sdlib organize`` without ``--apply``)."""
    from sdlib.library.organize import OrganizeOptions, make_plan

    return make_plan(result, OrganizeOptions(), _sha256_of(services))


@dataclass(frozen=True)
class OrganizeOutcome:
    done: int
    skipped: tuple[str, ...]
    failed: tuple[str, ...]
    journal: str | None


def organize_apply(services: Services, plan: Plan) -> OrganizeOutcome:
    """Carry out ``plan`` through a journal (``sdlib organize --apply``; ``--undo`` reverts)."""
    from sdlib.errors import UsageError
    from sdlib.library._journal import Journal, apply_journal, locked
    from sdlib.library.organize import find_journal, journal_dir

    if not plan.ops:
        return OrganizeOutcome(0, (), (), None)
    jdir = journal_dir(services.settings.data_dir)
    with locked(jdir):
        if find_journal(jdir, plan.root, ("applying", "undoing")):
            raise UsageError(
                "an earlier organize run was interrupted here: finish it with "
                "`sdlib organize --apply` (or --undo) first"
            )
        journal = Journal.create(jdir, plan.header())
        report = apply_journal(journal, _sha256_of(services))
    return _outcome(journal, report)


def organize_undo(services: Services) -> OrganizeOutcome:
    """Put back what the last organize run in this webUI folder changed."""
    import os

    from sdlib.errors import UsageError
    from sdlib.library._journal import locked, undo_journal
    from sdlib.library.organize import find_journal, journal_dir

    root, _layout = services.library_root()
    jdir = journal_dir(services.settings.data_dir)
    with locked(jdir):
        journal = find_journal(jdir, os.path.abspath(root), ("undoing", "applying", "complete"))
        if journal is None:
            raise UsageError("no organize run to undo in this webUI folder")
        report = undo_journal(journal, _sha256_of(services))
    return _outcome(journal, report)


def _outcome(journal: Journal, report: RunReport) -> OrganizeOutcome:
    ops = journal.ops
    return OrganizeOutcome(
        len(report.done),
        tuple(f"{ops[i].path}: {why}" for i, why in report.skipped),
        tuple(f"{ops[i].path}: {why}" for i, why in report.failed),
        str(journal.path),
    )


def trash(report: FileReport, root: Path, layout: Layout | None = None) -> TrashResult:
    """Move a file and its sidecars to the system trash (else ``<root>/.sdlib-trash``):
    :func:`sdlib.library.trash.move_to_trash`, sidecars first, the model last. Only inside
    the root and the folders ``layout`` is configured to read elsewhere."""
    from sdlib.library.trash import move_to_trash
    from sdlib.library.wall import Wall

    wall = Wall.for_layout(root, layout) if layout is not None else None
    return move_to_trash([*report.sidecars, report.path], root, wall=wall)
