"""A manifest and its lock for files the demo server serves (mirror tests and bench/mirror.py)."""

from __future__ import annotations

from pathlib import Path

from sdlib.demo.server import DemoServer
from sdlib.manifest import LockEntry, dump_lock, parse_manifest


def write_lock(folder: Path, server: DemoServer, files: tuple[tuple[str, int], ...]) -> Path:
    """``folder/models.toml`` and ``models.lock`` for ``files`` ((``MODEL@VERSION``, file id)
    pairs), the lock from what the demo server serves. Returns the manifest's path."""
    text = '[target]\nui = "a1111"\n' + "".join(f'\n[[model]]\nref = "{r}"\n' for r, _ in files)
    manifest = folder / "models.toml"
    manifest.write_text(text)
    entries = []
    for entry, (ref, file_id) in zip(parse_manifest(text).entries, files, strict=True):
        model_id, version_id = (int(x) for x in ref.split("@"))
        served = server.files[file_id]
        entries.append(LockEntry(
            ref=ref, key=entry.key(), model_id=model_id, version_id=version_id,
            file_id=file_id, file_name=served.spec.name, size=served.size,
            sha256=served.hashes["SHA256"].upper(),
            download=f"{server.url}/api/download/models/{version_id}?fileId={file_id}",
            path=f"models/{served.spec.name}",
        ))  # fmt: skip
    (folder / "models.lock").write_text(dump_lock(entries))
    return manifest
