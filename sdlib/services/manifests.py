"""Manifests and lock files: export a library to one, install a library from one.

``sdlib export`` and ``sdlib install -f`` (and scripts) call these. Installing is two
steps so a caller can build its installer (with its own progress display) for the
manifest's destination in between: :func:`load_manifest` reads the manifest and its lock
and says where files go, :func:`install_manifest` installs and writes the new lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdlib.bulk import BulkReport, EntryResult
    from sdlib.export import Export
    from sdlib.install import Installer
    from sdlib.library.placement import Destination
    from sdlib.library.scan import ScanProgress
    from sdlib.manifest import LockEntry, Manifest
    from sdlib.services._context import Context

__all__ = [
    "ManifestPlan",
    "check_export_target",
    "export_library",
    "install_manifest",
    "load_manifest",
    "write_export",
]


@dataclass(frozen=True)
class ManifestPlan:
    """A parsed manifest, its lock (empty when there is none yet) and its destination."""

    manifest: Manifest
    path: Path
    lock_path: Path
    lock: dict[str, LockEntry]
    destination: Destination


def load_manifest(
    manifest_path: str | os.PathLike[str],
    *,
    lock_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    ui: str | None = None,
    frozen: bool = False,
) -> ManifestPlan:
    """Read ``manifest_path`` (TOML) and its lock (default: beside it, ``.lock``).

    ``root``/``ui`` win over the manifest's ``[target]``; a relative target root is
    relative to the manifest's folder. ``frozen`` needs a lock. Raises ``ManifestError``
    (exit 2) naming the file and line for anything wrong.
    """
    from sdlib.bulk import destination_for, read_lock
    from sdlib.errors import ManifestError
    from sdlib.manifest import parse_manifest

    path = Path(manifest_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read: {exc}", path=str(path)) from None
    manifest = parse_manifest(text, str(path))
    lock_file = Path(lock_path) if lock_path is not None else path.with_suffix(".lock")
    lock = read_lock(lock_file)
    if frozen and not lock:
        raise ManifestError("--frozen needs a lock file", path=str(lock_file))
    root_path = Path(root).expanduser() if root is not None else None
    destination = destination_for(manifest.target, root_path, ui, path.parent)
    return ManifestPlan(manifest, path, lock_file, lock, destination)


def install_manifest(
    ctx: Context,
    plan: ManifestPlan,
    *,
    installer: Installer | None = None,
    jobs: int = 3,
    frozen: bool = False,
    dry_run: bool = False,
    on_result: Callable[[EntryResult], None] | None = None,
    accept_mismatch: bool = False,
) -> BulkReport:
    """Install every entry of ``plan`` (``jobs`` at a time) and write the new lock.

    A second run with nothing changed downloads nothing and makes no request; ``frozen``
    installs exactly the locked files and fails where the manifest drifted; ``dry_run``
    plans only and writes no lock. One failing entry never stops the others: see the
    report's ``exit_code``. ``installer``: one built by the caller for
    ``plan.destination`` (default: :meth:`Context.installer`). ``accept_mismatch`` keeps
    files whose size or deciding hash differs from what the source publishes, marked
    unverified (``install -f --accept-mismatch``); it applies to the default installer.
    """
    from sdlib.bulk import BulkInstaller, write_lock
    from sdlib.errors import UsageError

    if installer is not None and accept_mismatch:
        raise UsageError("accept_mismatch applies to the default installer; build yours with "
                         "ctx.installer(overrides={'accept_mismatch': True})")  # fmt: skip
    if installer is None:
        overrides = {"accept_mismatch": True} if accept_mismatch else None
        installer = ctx.installer(destination=plan.destination, overrides=overrides)
    bulk = BulkInstaller(
        installer, plan.manifest, plan.lock,
        jobs=jobs, frozen=frozen, dry_run=dry_run,
        **({"on_result": on_result} if on_result is not None else {}),
    )  # fmt: skip
    report = bulk.run()
    if not dry_run:
        write_lock(plan.lock_path, bulk.new_lock(report))
    return report


def export_library(
    ctx: Context,
    root: str | Path | None = None,
    ui: str | None = None,
    *,
    on_progress: Callable[[ScanProgress], None] | None = None,
) -> Export:
    """Scan the webUI folder and list every identified model, pinned to its exact file.

    Models that cannot go in a manifest (not identified, no SHA256, outside the root) are
    in ``Export.skipped`` with the reason: never dropped without a word.
    """
    from sdlib.export import build_export
    from sdlib.services.library import scan

    path, layout = ctx.library_root(root, ui)
    result = scan(ctx, path, layout=layout, on_progress=on_progress)
    # Absolute: a relative root would be read relative to wherever the manifest is written.
    return build_export(result, ctx.hashes, ctx.settings.civitai.base_url, str(path.resolve()))


def write_export(
    export: Export, output: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``output`` (the manifest) and its lock beside it, each atomically; the lock's
    path is returned. Refuses (``UsageError``) to replace either unless ``overwrite``."""
    from sdlib.bulk import write_lock
    from sdlib.library.sidecars import write_bytes_atomic
    from sdlib.manifest import dump_manifest

    out = Path(output)
    lock_path = check_export_target(out, overwrite=overwrite)
    header = (
        f"Exported by `sdlib export` from {export.target.root}.\n"
        "Rebuild with: sdlib install -f THIS_FILE --frozen [--root NEW_ROOT]"
    )
    write_bytes_atomic(out, dump_manifest(export.target, export.entries, header).encode())
    write_lock(lock_path, export.lock)
    return lock_path


def check_export_target(output: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """The lock path beside ``output``; ``UsageError`` when either exists and not
    ``overwrite`` (a caller checks this before spending a scan)."""
    from sdlib.errors import UsageError

    out = Path(output)
    lock_path = out.with_suffix(".lock")
    if not overwrite and (out.exists() or lock_path.exists()):
        raise UsageError(f"{out} or {lock_path} exists; pass --overwrite to replace them")
    return lock_path
