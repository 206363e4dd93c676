"""Re-hash model files and compare them with every SHA256 known for them (``sdlib verify``).

A file's bytes can change without its size or modification time changing (a failing disk,
a bad copy, a tool that writes in place and restores the time), so nothing cached is trusted:
each file is read whole again, and the result compared with what Civitai published for it
(its ``.civitai.info``), the SHA256 the library index recorded at an earlier scan, and the
one the hash cache holds for the same (device, inode, size, mtime). A file with none of these
has "no reference": it is hashed and the hashes cached, but it cannot be judged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.library.scan import FileReport
    from sdlib.services._context import Context

__all__ = ["SOURCES", "FileCheck", "VerifyProgress", "VerifyReport", "check_file", "verify_paths"]

#: A file's verdict.
OK, MISMATCH, NO_REFERENCE, ERROR = "ok", "mismatch", "no-reference", "error"
#: Where a reference SHA256 comes from (the keys of ``--json``), and in words.
SOURCES = {
    "civitai-info": "Civitai's published SHA256 (.civitai.info)",
    "index": "the library index (an earlier scan)",
    "hash-cache": "the hash cache",
}


@dataclass(frozen=True)
class VerifyProgress:
    """Reading file ``index`` (1-based) of ``total``: ``done`` of its ``size`` bytes."""

    path: str
    index: int
    total: int
    done: int
    size: int


@dataclass(frozen=True)
class FileCheck:
    path: str
    #: ok, mismatch, no-reference or error.
    state: str
    #: The SHA256 read now (uppercase; None when the file could not be read).
    sha256: str | None
    #: (source, the SHA256 expected) for each reference found; sources: ``SOURCES``.
    references: tuple[tuple[str, str], ...] = ()
    error: str | None = None

    @property
    def mismatched(self) -> tuple[str, ...]:
        """The references this file no longer matches."""
        actual = (self.sha256 or "").upper()
        return tuple(where for where, sha in self.references if sha.upper() != actual)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "state": self.state, "sha256": self.sha256,
            "references": [{"source": w, "sha256": s.upper()} for w, s in self.references],
            "mismatched": list(self.mismatched), "error": self.error,
        }  # fmt: skip


@dataclass(frozen=True)
class VerifyReport:
    files: tuple[FileCheck, ...]

    def count(self, state: str) -> int:
        return sum(1 for f in self.files if f.state == state)

    @property
    def exit_code(self) -> int:
        """4 when a file does not match, else 1 when one could not be read, else 0."""
        if self.count(MISMATCH):
            return 4
        return 1 if self.count(ERROR) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [f.to_dict() for f in self.files],
            "summary": {s: self.count(s) for s in (OK, MISMATCH, NO_REFERENCE, ERROR)},
        }


def verify_paths(
    ctx: Context,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    root: str | Path | None = None,
    ui: str | None = None,
    on_progress: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Verify the model files at ``paths`` (files, or folders: every model in them), or
    with no paths every model of the webUI folder ``root`` (default: the configured one).

    ``cancel`` stops before the next file (the files checked so far are returned).
    """
    reports, not_models = _models(ctx, paths, root, ui)
    checks = [FileCheck(p, ERROR, None, error="not a model file") for p in not_models]
    for i, report in enumerate(reports, 1):
        if cancel is not None and cancel.is_set():
            break
        checks.append(check_file(ctx, report, i, len(reports), on_progress))
    return VerifyReport(tuple(checks))


def check_file(
    ctx: Context,
    report: FileReport,
    index: int = 1,
    total: int = 1,
    on_progress: Callable[[VerifyProgress], None] | None = None,
) -> FileCheck:
    """Hash one scanned model again and compare it with every reference known for it."""
    from sdlib.errors import SdlibError
    from sdlib.hashing import hash_file

    path = report.path
    refs: list[tuple[str, str]] = []
    published = _published_sha256(report)
    if published and not _accepted(report.row.verification, published):
        refs.append(("civitai-info", published))
    if report.row.sha256:
        refs.append(("index", report.row.sha256))
    cached = ctx.hashes.lookup(path)  # before the new hashes replace it
    if cached is not None:
        refs.append(("hash-cache", cached.sha256))
    size = report.size or 0
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(VerifyProgress(path, index, total, done, size))

    if on_progress is not None:
        on_progress(VerifyProgress(path, index, total, 0, size))
    try:
        hashes = hash_file(path, advance)
    except (OSError, SdlibError) as exc:
        message = exc.message if isinstance(exc, SdlibError) else (exc.strerror or str(exc))
        return FileCheck(path, ERROR, None, tuple(refs), message)
    check = FileCheck(path, NO_REFERENCE, hashes.sha256.upper(), tuple(refs))
    if not refs:
        ctx.hashes.store(path, hashes)
        return check
    if check.mismatched:
        # The cache keeps what it had: a later verify must still see the difference.
        return FileCheck(path, MISMATCH, check.sha256, check.references)
    ctx.hashes.store(path, hashes)
    return FileCheck(path, OK, check.sha256, check.references)


def _accepted(verification: str | None, published: str) -> bool:
    """Whether the download kept these bytes knowing that Civitai publishes ``published`` as
    their SHA256 (``--accept-mismatch``, recorded in the index): not a reference then."""
    import json

    try:
        data = json.loads(verification) if verification else None
    except ValueError:
        return False
    if not isinstance(data, dict) or data.get("accepted_mismatch") is not True:
        return False
    return any(
        isinstance(d, dict) and d.get("hash") == "SHA256"
        and str(d.get("published") or "").upper() == published.upper()
        for d in data.get("disagreements") or ()
    )  # fmt: skip


def _published_sha256(report: FileReport) -> str | None:
    """SHA256 of this file in its ``.civitai.info`` (by file id, else by file name)."""
    from sdlib.library.sidecars import read_json

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


def _models(
    ctx: Context, paths: Sequence[str | os.PathLike[str]], root: str | Path | None, ui: str | None
) -> tuple[list[FileReport], list[str]]:
    """The scanned model files (with their sidecars and index rows) that ``paths`` name, and
    the files named that are no model (a sidecar, a text file). Paths are found in their
    webUI folder as ``identify`` finds them (``services.paths``)."""
    from sdlib.errors import UsageError
    from sdlib.services.library import scan
    from sdlib.services.paths import locate, model_files

    if not paths:
        folder, layout = ctx.library_root(root, ui)
        return scan(ctx, folder, layout=layout, workers=None).models, []
    for raw in paths:
        if not os.path.exists(Path(raw).expanduser()):
            raise UsageError(f"{raw}: no such file or folder")
    found = [report for _target, report in model_files(ctx, locate(ctx, paths, ui))]
    seen = {os.path.abspath(r.path) for r in found}
    named = [os.path.abspath(Path(p).expanduser()) for p in paths]
    not_models = [p for p in named if not os.path.isdir(p) and p not in seen]
    return found, not_models
