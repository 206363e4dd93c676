"""Install every entry of a manifest, write the lock, and rebuild exactly with ``--frozen``.

Per entry, in order of preference:
1. the lock has it, the entry is unchanged, and the locked file is in place with its SHA256
   (hash cache: no re-read) -> up to date, no network at all;
2. ``--frozen`` (or a lock entry whose file went missing) -> install exactly the locked file,
   refusing a file that changed upstream;
3. otherwise resolve afresh through the API and install.
A failing entry never stops the others; the report lists each entry's result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.errors import ManifestError, NotFound, SdlibError, UsageError
from sdlib.install import FileChoice, Installer, InstallResult

if TYPE_CHECKING:
    from sdlib.sources.protocol import RemoteFile
from sdlib.library.layouts import Layout
from sdlib.library.placement import Destination
from sdlib.manifest import Entry, LockEntry, Manifest, Target


@dataclass(frozen=True)
class EntryResult:
    ref: str
    line: int
    #: up-to-date | installed | already-present | would-install | failed
    status: str
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    message: str | None = None
    exit_code: int = 0
    lock: LockEntry | None = None
    warnings: tuple[str, ...] = ()
    #: ``Verification.to_dict()`` of a file just downloaded (None otherwise).
    verification: dict[str, Any] | None = None
    #: Where the bytes came from ("mirror", "upstream", "cache"; None: nothing fetched), and
    #: the mirror's answer to publishing them ("created", "exists").
    came_from: str | None = None
    published: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "line": self.line, "status": self.status, "path": self.path,
            "size": self.size, "sha256": self.sha256, "error": self.message,
            "exit_code": self.exit_code, "warnings": list(self.warnings),
            "verification": self.verification, "from": self.came_from,
            "published": self.published,
        }  # fmt: skip


@dataclass
class BulkReport:
    results: list[EntryResult] = field(default_factory=list)

    @property
    def failed(self) -> list[EntryResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        return max((r.exit_code for r in self.failed), default=0)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return {"entries": [r.to_dict() for r in self.results], "summary": counts}


def destination_for(
    target: Target, root_override: Path | None, ui_override: str | None, base_dir: Path
) -> Destination:
    """The manifest's ``[target]``, with the command line's --root/--ui winning.

    A relative ``root`` in the manifest is relative to the manifest's own folder.
    """
    root = root_override or (base_dir / Path(target.root).expanduser() if target.root else None)
    if root is None:
        raise UsageError("the manifest has no [target] root; pass --root DIR")
    ui = ui_override or target.ui
    if ui:
        if ui.lower() != "auto":
            root.mkdir(parents=True, exist_ok=True)  # installing onto a fresh machine
        return Destination.for_ui(root, ui)
    if target.folders:
        from sdlib.manifest import resolve_folder

        for value in target.folders.values():
            resolve_folder(root, value)  # never a folder that resolves outside the root
        overrides: dict[str, str] = dict(target.folders)
        layout = Layout("folders", "manifest folders", (), markers=())
        return Destination(root, layout.with_overrides(overrides))
    return Destination.folder(root)


class BulkInstaller:
    def __init__(
        self,
        installer: Installer,
        manifest: Manifest,
        lock: dict[str, LockEntry],
        *,
        jobs: int = 3,
        frozen: bool = False,
        dry_run: bool = False,
        on_result: Callable[[EntryResult], None] = lambda _r: None,
    ) -> None:
        self.installer = installer
        self.manifest = manifest
        self.lock = lock
        self.jobs = max(1, jobs)
        self.frozen = frozen
        self.dry_run = dry_run
        self.on_result = on_result
        self._lock = threading.Lock()
        if frozen:
            self._check_frozen()
        self._check_folders()

    @property
    def root(self) -> Path:
        return self.installer.destination.root

    def _check_folders(self) -> None:
        """Every ``folder =`` resolves inside the root, checked before anything downloads."""
        from sdlib.manifest import resolve_folder

        for entry in self.manifest.entries:
            if entry.folder is not None:
                try:
                    resolve_folder(self.root, entry.folder)
                except ManifestError as exc:
                    raise ManifestError(exc.message, path=self.manifest.path,
                                        line=entry.line) from None  # fmt: skip

    def _check_frozen(self) -> None:
        missing = [e for e in self.manifest.entries if e.ref not in self.lock]
        changed = [e for e in self.manifest.entries
                   if e.ref in self.lock and self.lock[e.ref].key != e.key()]  # fmt: skip
        extra = set(self.lock) - {e.ref for e in self.manifest.entries}
        problems = [f"line {e.line}: {e.ref} is not in the lock" for e in missing]
        problems += [f"line {e.line}: {e.ref} changed since the lock was written" for e in changed]
        problems += [f"{ref} is locked but no longer in the manifest" for ref in sorted(extra)]
        if problems:
            raise ManifestError(
                "--frozen: the manifest and the lock disagree: "
                + "; ".join(problems)
                + " (run without --frozen to update the lock)"
            )

    def run(self) -> BulkReport:
        from sdlib.install import run_all

        return BulkReport(run_all(self.installer, self._one, self.manifest.entries, self.jobs))

    def new_lock(self, report: BulkReport) -> list[LockEntry]:
        """Lock entries in manifest order: fresh ones, or the old one for a failed entry."""
        out: list[LockEntry] = []
        for entry, result in zip(self.manifest.entries, report.results, strict=True):
            lock = result.lock or self.lock.get(entry.ref)
            if lock is not None:
                out.append(lock)
        return out

    # -- one entry ----------------------------------------------------------------------------
    def _one(self, entry: Entry) -> EntryResult:
        try:
            result = self._install(entry)
        except SdlibError as exc:
            result = EntryResult(entry.ref, entry.line, "failed", message=str(exc),
                                 exit_code=exc.exit_code)  # fmt: skip
        except OSError as exc:  # the disk, not the entry: still only this entry fails
            where = f"{exc.filename}: " if isinstance(exc.filename, str) else ""
            result = EntryResult(entry.ref, entry.line, "failed",
                                 message=f"{where}{exc.strerror or exc}", exit_code=1)  # fmt: skip
        except Exception as exc:  # a bug must not cost the other entries their install
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            result = EntryResult(entry.ref, entry.line, "failed",
                                 message=f"internal error: {why}", exit_code=1)  # fmt: skip
        self.on_result(result)
        return result

    def _install(self, entry: Entry) -> EntryResult:
        locked = self.lock.get(entry.ref)
        if locked is not None and locked.key == entry.key():
            present = self._present(locked)
            if present is not None:
                return EntryResult(entry.ref, entry.line, "up-to-date", str(present),
                                   locked.size, locked.sha256, lock=locked)  # fmt: skip
            return self._install_locked(entry, locked)
        return self._install_fresh(entry)

    def _present(self, locked: LockEntry) -> Path | None:
        path = Path(locked.path)
        path = path if path.is_absolute() else self.root / path
        if not path.is_file():
            return None
        want = locked.converted_sha256 or locked.sha256
        got, _ = self.installer.hashes.get(path)
        return path if got.sha256.upper() == want.upper() else None

    def _destination(self, entry: Entry) -> Destination | None:
        if entry.folder is None:
            return None
        from sdlib.manifest import resolve_folder

        return Destination.folder(resolve_folder(self.root, entry.folder))

    def _install_locked(self, entry: Entry, locked: LockEntry) -> EntryResult:
        if locked.version_id is None and locked.pinned:
            ref, choice = locked.pinned, FileChoice()  # a Hub file at its locked commit
        else:
            ref = f"{locked.model_id or ''}@{locked.version_id}"
            choice = FileChoice(file_id=locked.file_id)
        if self.dry_run:
            return EntryResult(entry.ref, entry.line, "would-install", None, locked.size,
                               locked.sha256, lock=locked)  # fmt: skip
        result = self.installer.install(
            ref, choice, file_name=entry.name, destination=self._destination(entry),
            expect_sha256=locked.sha256,
        )  # fmt: skip
        return self._finish(entry, result)

    def _install_fresh(self, entry: Entry) -> EntryResult:
        ref = entry.ref
        hub = self.installer.hub is not None and self.installer.hub.claims(ref)
        if entry.version is not None and not ref.lower().startswith("sha256:") and not hub:
            parsed = self.installer.civitai.parse_ref(ref)
            if parsed.version_id is None:
                ref = f"{parsed.model_id}@{entry.version}"
        choice = FileChoice(entry.type, entry.format, entry.size, entry.fp, entry.file_id)
        if hub:
            choice = FileChoice()  # [defaults] filters are Civitai's; a Hub ref is one file
        try:
            resolved = self.installer.resolve(ref, choice)
        except NotFound:
            if not entry.defaulted:
                raise
            # [defaults] are preferences: fall back to the version's own pick.
            loose = replace(choice, **{k: None for k in entry.defaulted})
            resolved = self.installer.resolve(ref, loose)
        target = resolved
        done = self._already_converted(entry, target)
        if done is not None:
            return done
        if self.dry_run:
            dest = self._destination(entry) or self.installer.destination
            folder = dest.folder_for(target.kind, target.base)
            return EntryResult(entry.ref, entry.line, "would-install",
                               str(folder / (entry.name or target.file_name)), target.size,
                               target.sha256)  # fmt: skip
        result = self.installer.install(
            ref, file_name=entry.name, destination=self._destination(entry), resolved=resolved
        )
        return self._finish(entry, result)

    def _already_converted(self, entry: Entry, target: RemoteFile) -> EntryResult | None:
        """A ``convert`` entry whose safetensors output from this very file is in place."""
        from sdlib.taxonomy import Container

        safetensors = target.container is Container.SAFETENSORS
        if entry.convert != "safetensors" or safetensors or not target.sha256:
            return None
        from sdlib.files.safetensors import read_table

        dest = self._destination(entry) or self.installer.destination
        folder = dest.folder_for(target.kind, target.base)
        path = folder / (Path(entry.name or target.file_name).stem + ".safetensors")
        try:
            source = read_table(path).metadata.get("sdlib.source_sha256", "")
        except (OSError, SdlibError):
            return None
        if source.upper() != target.sha256.upper():
            return None
        sha = self.installer.hashes.get(path)[0].sha256
        lock = self._lock_entry(entry, target.model_id, target.version_id, target.file_id,
                                target.file_name, target.size or 0, target.sha256, None,
                                path, sha, pinned=target.pinned_ref, url=target.url)  # fmt: skip
        return EntryResult(entry.ref, entry.line, "already-present", str(path), target.size,
                           target.sha256, lock=lock)  # fmt: skip

    def _lock_entry(
        self, entry: Entry, model_id: int | None, version_id: int | None, file_id: int | None,
        file_name: str, size: int, sha256: str, blake3: str | None, path: Path,
        converted: str | None, *, pinned: str | None = None, url: str | None = None,
    ) -> LockEntry:  # fmt: skip
        """What the lock keeps of an installed entry: Civitai's version and file ids, or
        for another source the reference pinned to its exact revision."""
        if version_id is not None and file_id is not None:
            from sdlib.sources.civitai import download_url

            download = download_url(self.installer.civitai.base_url, version_id, file_id)
            pinned = None
        elif pinned and url:
            download = url
        else:
            raise ManifestError(f"{entry.ref}: the source named no exact file to lock",
                                path=self.manifest.path, line=entry.line)  # fmt: skip
        return LockEntry(
            ref=entry.ref, key=entry.key(), model_id=model_id, version_id=version_id,
            file_id=file_id, file_name=file_name, size=size, sha256=sha256, download=download,
            path=_relative(path, self.root), blake3=blake3, converted_sha256=converted,
            pinned=pinned,
        )  # fmt: skip

    def _finish(self, entry: Entry, result: InstallResult) -> EntryResult:
        path, converted = result.path, None
        if entry.convert == "safetensors" and result.path.suffix.lower() != ".safetensors":
            path, converted = self._convert(result.path)
        blake3 = self.installer.hashes.get(result.path if converted is None else path)[0].blake3
        lock = self._lock_entry(
            entry,
            result.model_id,
            result.version_id,
            result.file_id,
            result.path.name,
            result.size,
            result.sha256,
            blake3 if converted is None else None,
            path,
            converted,
            pinned=result.pinned_ref,
            url=result.url,
        )
        status = "installed" if result.status == "downloaded" else result.status
        verdict = result.verification.to_dict() if result.verification is not None else None
        return EntryResult(entry.ref, entry.line, status, str(path), result.size,
                           result.sha256, lock=lock, warnings=result.warnings,
                           verification=verdict, came_from=result.came_from,
                           published=result.published)  # fmt: skip

    def _convert(self, source: Path) -> tuple[Path, str]:
        """Pickle -> safetensors beside it; the pickle is removed once the output verified."""
        from sdlib.transform.convert import convert_file

        out = source.with_suffix(".safetensors")
        result = convert_file(source, out, overwrite=False)
        sha = self.installer.hashes.get(result.output)[0].sha256
        source.unlink()
        return result.output, sha


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_lock(path: Path) -> dict[str, LockEntry]:
    from sdlib.manifest import parse_lock

    if not path.is_file():
        return {}
    try:
        return parse_lock(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ManifestError(
            f"cannot read the lock: {exc.strerror or exc}", path=str(path)
        ) from None


def write_lock(path: Path, entries: list[LockEntry]) -> None:
    from sdlib.library.sidecars import write_bytes_atomic
    from sdlib.manifest import dump_lock

    write_bytes_atomic(path, dump_lock(entries).encode("utf-8"))
