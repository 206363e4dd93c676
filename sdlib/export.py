"""Build a manifest (and its lock) from the identified models of an existing library.

A rebuilt machine runs ``sdlib install -f models.toml --frozen`` on an empty root and gets
the same files, names and folders back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.manifest import Entry, LockEntry, Target

if TYPE_CHECKING:
    from sdlib.hashcache import HashCache
    from sdlib.library.scan import ScanResult


@dataclass
class Export:
    target: Target
    entries: list[Entry] = field(default_factory=list)
    lock: list[LockEntry] = field(default_factory=list)
    #: Models left out, with the reason (not identified, unsafe...).
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": {"ui": self.target.ui, "root": self.target.root},
            "entries": [{"ref": e.ref, "file_id": e.file_id, "name": e.name,
                         "folder": e.folder} for e in self.entries],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }  # fmt: skip


def build_export(scan: ScanResult, hashes: HashCache, site: str, root_text: str) -> Export:
    """Entries for every model Civitai identified, pinned to its exact file."""
    from sdlib.sources.civitai import download_url

    layout = scan.layout
    out = Export(Target(ui=layout.name if layout.name != "folder" else None, root=root_text))
    for report in sorted(scan.models, key=lambda r: r.rel):
        row = report.row
        if row.civitai_version_id is None or row.civitai_file_id is None:
            out.skipped.append((report.rel, "not identified (run `sdlib identify` first)"))
            continue
        if report.sha256 is None:
            out.skipped.append((report.rel, "no SHA256 recorded"))
            continue
        path = Path(report.path)
        try:
            folder = path.parent.relative_to(scan.root).as_posix()
        except ValueError:  # a folder shared from elsewhere (ComfyUI's extra paths)
            out.skipped.append((report.rel, "outside the root: a manifest cannot place it"))
            continue
        ref = f"{row.civitai_model_id or ''}@{row.civitai_version_id}"
        entry = Entry(ref=ref, line=0, file_id=row.civitai_file_id, name=path.name,
                      folder=folder)  # fmt: skip
        full = hashes.lookup(path)
        out.entries.append(entry)
        out.lock.append(
            LockEntry(
                ref=ref,
                key=entry.key(),
                model_id=row.civitai_model_id,
                version_id=row.civitai_version_id,
                file_id=row.civitai_file_id,
                file_name=path.name,
                size=report.size or 0,
                sha256=report.sha256,
                download=download_url(site, row.civitai_version_id, row.civitai_file_id),
                path=f"{folder}/{path.name}",
                blake3=full.blake3 if full else None,
            )
        )
    return out
