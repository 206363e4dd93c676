"""The studio mirror's operations: push, ls, verify, pull (``sdlib mirror ...``).

The mirror itself (layout, S3 and HTTP access, conditional create) is ``sdlib.mirror``; here
are the parts that need the rest of sdlib: what a file is (classification, the library
index, a lock entry) for the sidecar, the hash cache, and the download engine for pulls
(ranges, resume, every hash verified, ``os.replace`` into place).

Each operation goes on past a failing file and reports it in its outcome; the faces turn
the worst outcome into the exit code (``exit_code``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.errors import HashMismatch, NotFound, SdlibError, UsageError
from sdlib.services._mirror_meta import find_locked, lock_bases, meta_for

if TYPE_CHECKING:
    from sdlib.download import DownloadEvent
    from sdlib.library.index import FileRow
    from sdlib.manifest import LockEntry
    from sdlib.mirror import Mirror, MirrorMeta
    from sdlib.services._context import Context

__all__ = [
    "MirrorObject",
    "MirrorProgress",
    "PullOutcome",
    "PushOutcome",
    "VerifyOutcome",
    "exit_code",
    "list_objects",
    "pull_lock",
    "push_files",
    "push_library",
    "push_lock",
    "require_mirror",
    "verify_objects",
]


@dataclass(frozen=True)
class MirrorProgress:
    """``stage`` is "hashing", "uploading" or "verifying"; bytes ``done`` of ``total``."""

    stage: str
    name: str
    done: int
    total: int


OnProgress = Callable[[MirrorProgress], None]


@dataclass(frozen=True)
class PushOutcome:
    path: str
    #: "created", "exists" or "failed".
    status: str
    sha256: str | None = None
    size: int | None = None
    error: str | None = None
    code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "code"}


@dataclass(frozen=True)
class MirrorObject:
    sha256: str
    size: int
    names: tuple[str, ...] = ()
    kind: str | None = None
    base: str | None = None
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["names"], d["sources"] = list(self.names), list(self.sources)
        return d


@dataclass(frozen=True)
class VerifyOutcome:
    sha256: str
    #: "ok", "bad" (the bytes hash to something else) or "missing", or "failed" (unreadable).
    status: str
    size: int | None = None
    actual_sha256: str | None = None
    error: str | None = None
    code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "code"}


@dataclass(frozen=True)
class PullOutcome:
    sha256: str
    name: str
    #: "pulled", "present" (already there, verified), "missing" (not in the mirror), "failed".
    status: str
    path: str | None = None
    size: int | None = None
    error: str | None = None
    code: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "code"}


def exit_code(outcomes: Iterable[PushOutcome | VerifyOutcome | PullOutcome]) -> int:
    """The exit code for a run: 4 when any bytes were not what they claim (integrity wins:
    it is the one that means "something is wrong with the data"), else the first failure's."""
    codes = [o.code for o in outcomes if o.code]
    if 4 in codes:
        return 4
    return codes[0] if codes else 0


def require_mirror(ctx: Context) -> Mirror:
    mirror = ctx.mirror
    if mirror is None:
        raise UsageError(
            "no mirror is configured: set [mirror] url in the config or SDLIB_MIRROR_URL "
            "(s3://BUCKET/PREFIX or https://HOST/PREFIX/)"
        )
    return mirror


# -- push ------------------------------------------------------------------------------------------


def push_files(
    ctx: Context, paths: Sequence[str | os.PathLike[str]], *,
    on_progress: OnProgress | None = None,
) -> list[PushOutcome]:  # fmt: skip
    """Push each file: hashed (hash cache), described (classification, library index), sent
    as a conditional create."""
    mirror = require_mirror(ctx)
    return [_push_one(ctx, mirror, Path(p), None, None, on_progress) for p in paths]


def push_lock(
    ctx: Context, lock_path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
    on_progress: OnProgress | None = None,
) -> list[PushOutcome]:  # fmt: skip
    """Push every file a lock file lists. A relative path is found under ``root``, else the
    manifest's ``[target] root`` beside the lock, else ``[library] root``, else the lock's
    folder. Each file must still hash to the SHA256 the lock records."""
    from sdlib.bulk import read_lock
    from sdlib.errors import ManifestError

    mirror = require_mirror(ctx)
    lock_file = Path(lock_path).expanduser()
    if not lock_file.is_file():
        raise ManifestError("no such lock file", path=str(lock_file))
    entries = read_lock(lock_file)
    bases = lock_bases(ctx, lock_file, root)
    out = []
    for entry in entries.values():
        path = find_locked(entry, bases)
        if path is None:
            out.append(PushOutcome(entry.path, "failed", entry.sha256.lower(), entry.size,
                                   "not found under " + ", ".join(map(str, bases)), 5))  # fmt: skip
            continue
        out.append(_push_one(ctx, mirror, path, entry, None, on_progress))
    return out


def push_library(
    ctx: Context, root: str | os.PathLike[str] | None = None, *, ui: str | None = None,
    on_progress: OnProgress | None = None,
) -> list[PushOutcome]:  # fmt: skip
    """Scan a webUI folder (default: the configured one) and push every model file in it."""
    from sdlib.services.library import scan

    mirror = require_mirror(ctx)
    result = scan(ctx, Path(root) if root is not None else None, ui)
    return [
        _push_one(ctx, mirror, Path(f.path), None, f.row, on_progress)
        for f in result.files
        if f.role == "model"
    ]


def _push_one(
    ctx: Context, mirror: Mirror, path: Path, entry: LockEntry | None, row: FileRow | None,
    on_progress: OnProgress | None,
) -> PushOutcome:  # fmt: skip
    name = path.name
    hashed = 0
    size = 0

    def hashing(n: int) -> None:  # the hash cache reports each chunk it read
        nonlocal hashed
        hashed += n
        if on_progress is not None:
            on_progress(MirrorProgress("hashing", name, hashed, size))

    def uploading(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(MirrorProgress("uploading", name, done, total))

    try:
        if not path.is_file():
            raise NotFound(f"{path}: no such file")
        size = path.stat().st_size
        hashes, _cached = ctx.hashes.get(path, hashing)
        if entry is not None and hashes.sha256.lower() != entry.sha256.lower():
            raise HashMismatch(
                f"its SHA256 is {hashes.sha256.lower()}, the lock says {entry.sha256.lower()}: "
                "not pushed", path=str(path),
            )  # fmt: skip
        meta = meta_for(ctx, path, hashes, entry, row)
        result = mirror.push(path, hashes, meta, uploading)
    except SdlibError as exc:
        return PushOutcome(str(path), "failed", None, None, str(exc), exc.exit_code)
    return PushOutcome(str(path), result.status, result.sha256, result.size)


# -- ls and verify ---------------------------------------------------------------------------------


def list_objects(ctx: Context, *, with_meta: bool = True) -> list[MirrorObject]:
    """Every object in the mirror, sorted by SHA256, with its sidecar's names, kind, base
    and sources (read eight at a time)."""
    mirror = require_mirror(ctx)
    entries = sorted(mirror.entries(), key=lambda e: e.sha256)
    if not with_meta:
        return [MirrorObject(e.sha256, e.size) for e in entries]

    def one(sha: str) -> MirrorMeta | None:
        try:
            return mirror.meta(sha)
        except SdlibError:
            return None

    with ThreadPoolExecutor(8) as pool:
        metas = list(pool.map(one, [e.sha256 for e in entries]))
    out = []
    for e, m in zip(entries, metas, strict=True):
        if m is None:
            out.append(MirrorObject(e.sha256, e.size))
        else:
            out.append(MirrorObject(e.sha256, e.size, m.names, m.kind, m.base,
                                    tuple(s.describe() for s in m.sources)))  # fmt: skip
    return out


def verify_objects(
    ctx: Context, shas: Sequence[str] = (), *, on_progress: OnProgress | None = None
) -> list[VerifyOutcome]:
    """Stream each object (``shas``, default: all of them) and hash it: "bad" when its bytes
    do not hash to the SHA256 its key names, or differ from its sidecar's size/BLAKE3."""
    from sdlib.mirror import check_sha256

    mirror = require_mirror(ctx)
    wanted = [check_sha256(s) for s in shas] or [e.sha256 for e in mirror.entries()]
    out = []
    for sha in wanted:

        def progress(done: int, total: int, _sha: str = sha) -> None:
            if on_progress is not None:
                on_progress(MirrorProgress("verifying", _sha[:12], done, total))

        try:
            hashes = mirror.hash_object(sha, progress)
        except NotFound:
            out.append(VerifyOutcome(sha, "missing", error="not in the mirror", code=5))
            continue
        except SdlibError as exc:
            out.append(VerifyOutcome(sha, "failed", error=str(exc), code=exc.exit_code))
            continue
        actual = hashes.sha256.lower()
        if actual != sha:
            out.append(VerifyOutcome(sha, "bad", hashes.size, actual,
                                     "the bytes hash to another SHA256", 4))  # fmt: skip
            continue
        meta = _meta_quiet(mirror, sha)
        blake3 = meta.hashes.blake3 if meta is not None else ""
        if meta is not None and (
            meta.size != hashes.size or (blake3 or hashes.blake3) != hashes.blake3
        ):
            out.append(VerifyOutcome(sha, "bad", hashes.size, actual,
                                     "the sidecar's size or BLAKE3 disagrees", 4))  # fmt: skip
            continue
        out.append(VerifyOutcome(sha, "ok", hashes.size, actual))
    return out


def _meta_quiet(mirror: Mirror, sha: str) -> MirrorMeta | None:
    try:
        return mirror.meta(sha)
    except SdlibError:
        return None


# -- pull ------------------------------------------------------------------------------------------


def pull_lock(
    ctx: Context, lock_path: str | os.PathLike[str], *, to: str | os.PathLike[str] | None = None,
    on_event: Callable[[DownloadEvent], None] | None = None,
) -> list[PullOutcome]:  # fmt: skip
    """Prefetch every file of a lock from the mirror: into ``to`` (a plain folder), else the
    configured store (each file in its kind's folder, the kind from the sidecar). Streamed
    through the download engine: resumable, every hash verified against the lock before the
    file takes its name; a corrupt object is never placed."""
    from sdlib.bulk import read_lock
    from sdlib.errors import ManifestError

    mirror = require_mirror(ctx)
    lock_file = Path(lock_path).expanduser()
    if not lock_file.is_file():
        raise ManifestError("no such lock file", path=str(lock_file))
    entries = read_lock(lock_file)
    if to is None and not ctx.settings.store.path:
        raise UsageError("say where to: --to DIR, or configure a store ([store] path)")
    out = []
    for entry in entries.values():
        out.append(_pull_one(ctx, mirror, entry, Path(to).expanduser() if to else None, on_event))
    return out


def _pull_one(
    ctx: Context, mirror: Mirror, entry: LockEntry, to: Path | None,
    on_event: Callable[[DownloadEvent], None] | None,
) -> PullOutcome:  # fmt: skip
    from sdlib.download import DownloadOptions, DownloadSpec, download
    from sdlib.names import safe_filename

    sha = entry.sha256.lower()
    name = entry.file_name
    try:
        if not name or safe_filename(name) != name:
            raise UsageError(f"the lock's file name {name!r} is not a safe file name")
        size = mirror.stat(sha)
        if size is None:
            return PullOutcome(sha, name, "missing", error="not in the mirror", code=5)
        folder = to if to is not None else _store_folder(ctx, mirror, sha)
        dest = folder / name
        if dest.exists():
            have = ctx.hashes.get(dest)[0]
            if have.sha256.lower() == sha:
                return PullOutcome(sha, name, "present", str(dest), have.size)
            raise UsageError(f"{dest} exists and is another file: not replaced")
        folder.mkdir(parents=True, exist_ok=True)
        published = {"SHA256": sha}
        if entry.blake3:
            published["BLAKE3"] = entry.blake3
        spec = DownloadSpec(
            url=mirror.object_url(sha), dest=dest, size=entry.size or size, hashes=published,
            refresh=lambda: mirror.object_url(sha),
            origin={"mirror": mirror.url, "sha256": sha},
        )  # fmt: skip
        options = DownloadOptions.from_settings(ctx.settings)
        result = download(ctx.http, spec, options, on_event)
    except HashMismatch as exc:
        got = f" (its bytes hash to {exc.actual.upper()})" if exc.actual else ""
        return PullOutcome(sha, name, "failed", error=f"the mirror's object is corrupt{got}: "
                           "not placed; see sdlib mirror verify", code=exc.exit_code)  # fmt: skip
    except SdlibError as exc:
        return PullOutcome(sha, name, "failed", error=str(exc), code=exc.exit_code)
    return PullOutcome(sha, name, "pulled", str(result.path), result.size)


def _store_folder(ctx: Context, mirror: Mirror, sha: str) -> Path:
    """The store's folder for the object's kind (from its sidecar)."""
    from sdlib.store.folders import STORE_FOLDERS

    store = Path(str(ctx.settings.store.path)).expanduser()
    meta = _meta_quiet(mirror, sha)
    kind = meta.kind if meta is not None else "unknown"
    for folder, k in STORE_FOLDERS.items():
        if k.value == kind:
            return store / folder
    raise UsageError(
        f"the mirror does not say what kind of model {sha[:12]} is: pull it with --to DIR"
    )
