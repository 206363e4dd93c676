"""What a file pushed to the mirror is and where it came from (its sidecar's facts), and
where a lock's files are: helpers of ``sdlib.services.mirror``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sdlib.errors import SdlibError, UnsafeFileError

if TYPE_CHECKING:
    from sdlib.hashing import FileHashes
    from sdlib.library.index import FileRow
    from sdlib.manifest import LockEntry
    from sdlib.mirror import MirrorMeta, MirrorSource
    from sdlib.services._context import Context

__all__ = ["find_locked", "lock_bases", "meta_for"]


def meta_for(
    ctx: Context, path: Path, hashes: FileHashes, entry: LockEntry | None, row: FileRow | None
) -> MirrorMeta:
    """What sdlib knows about the file: its classification (the index's, else a header
    read), and its sources (the index's Civitai identity, the lock entry's ids or Hub pin).
    An unsafe pickle is refused: a mirror spreads what it holds to every machine."""
    from sdlib.mirror import MirrorMeta

    if row is None:
        try:
            row = ctx.index.file_at(os.path.abspath(path))
        except SdlibError:
            row = None
    kind = base = precision = None
    safety = None
    if row is not None and row.sha256 and row.sha256.lower() == hashes.sha256.lower():
        kind, base, precision, safety = row.kind, row.base, row.precision, row.safety
    else:
        row = None
    if kind is None:
        kind, base, precision, safety = _inspect(path)
    if safety == "unsafe":
        raise UnsafeFileError("a pickle that would run code: not pushed", path=str(path))
    names = [path.name]
    if entry is not None and entry.file_name not in names:
        names.append(entry.file_name)
    sources = _sources(row, entry)
    if not any(src.type == "civitai" for src in sources):
        sources += _info_source(path, hashes.sha256)
    return MirrorMeta(hashes=hashes, kind=kind or "unknown", base=base or "unknown",
                      precision=precision, names=tuple(names), sources=sources)  # fmt: skip


def _info_source(path: Path, sha256: str) -> tuple[MirrorSource, ...]:
    """The Civitai identity in the model's ``<stem>.civitai.info`` (the version JSON sdlib
    and other tools write beside it), when one of its files has this SHA256."""
    from sdlib.library.sidecars import read_json
    from sdlib.mirror import MirrorSource

    info = path.with_name(path.stem + ".civitai.info")
    try:
        if not info.is_file() or info.stat().st_size > 16 << 20:
            return ()
    except OSError:
        return ()
    data = read_json(info)
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        return ()
    for f in data.get("files") or ():
        digest = f.get("hashes", {}).get("SHA256") if isinstance(f, dict) else None
        if isinstance(digest, str) and digest.lower() == sha256.lower():
            model, file_id = data.get("modelId"), f.get("id")
            source = MirrorSource(
                "civitai",
                model_id=model if isinstance(model, int) else None,
                version_id=data["id"],
                file_id=file_id if isinstance(file_id, int) else None,
            )
            return (source,)
    return ()


def _inspect(path: Path) -> tuple[str | None, str | None, str | None, str | None]:
    from sdlib.inspect import inspect_file

    try:
        report = inspect_file(path)
    except SdlibError as exc:
        if isinstance(exc, UnsafeFileError):
            return None, None, None, "unsafe"
        return None, None, None, None
    c = report.classification
    safety = str(report.safety.verdict) if report.safety is not None else None
    if c is None:
        return None, None, None, safety
    return (str(c.kind), str(c.base), str(c.precision) if c.precision else None, safety)


def _sources(row: FileRow | None, entry: LockEntry | None) -> tuple[MirrorSource, ...]:
    from sdlib.mirror import MirrorSource

    out: list[MirrorSource] = []
    if entry is not None and entry.version_id is not None:
        out.append(MirrorSource("civitai", model_id=entry.model_id, version_id=entry.version_id,
                                file_id=entry.file_id, url=_public(entry.download)))  # fmt: skip
    elif row is not None and row.civitai_version_id is not None:
        out.append(MirrorSource("civitai", model_id=row.civitai_model_id,
                                version_id=row.civitai_version_id,
                                file_id=row.civitai_file_id))  # fmt: skip
    pinned = entry.pinned if entry is not None else None
    if pinned and pinned.startswith("hf:") and "@" in pinned:
        repo, _, rest = pinned[3:].partition("@")
        revision, _, file_path = rest.partition("/")
        out.append(MirrorSource("huggingface", repo=repo, revision=revision, path=file_path))
    return tuple(out)


def _public(url: str | None) -> str | None:
    """A download URL fit for a shared sidecar: no query parameter that carries a secret
    (a ``token=`` pasted into a URL), no user info."""
    if not url:
        return None
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)

    def secret(key: str) -> bool:
        low = key.lower()
        return "token" in low or "sig" in low or low == "key"

    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in pairs if not secret(k)]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


def lock_bases(ctx: Context, lock_file: Path, root: str | os.PathLike[str] | None) -> list[Path]:
    bases: list[Path] = []
    if root is not None:
        bases.append(Path(root).expanduser())
    manifest = lock_file.with_suffix(".toml")
    if manifest.is_file():
        from sdlib.manifest import parse_manifest

        try:
            target = parse_manifest(manifest.read_text(encoding="utf-8"), str(manifest)).target
        except (SdlibError, OSError, UnicodeDecodeError):
            target = None
        if target is not None and target.root:
            bases.append((manifest.parent / Path(target.root).expanduser()).resolve())
    if ctx.settings.library.root:
        bases.append(Path(ctx.settings.library.root).expanduser())
    bases.append(lock_file.parent)
    return list(dict.fromkeys(bases))


def find_locked(entry: LockEntry, bases: Sequence[Path]) -> Path | None:
    path = Path(entry.path)
    if path.is_absolute():
        return path if path.is_file() else None
    for base in bases:
        if (base / path).is_file():
            return base / path
    return None
