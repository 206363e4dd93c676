"""``services.manifests``: export a library, rebuild it elsewhere from the lock, from Python."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.services import Context, library, remote
from sdlib.services.manifests import (
    export_library,
    install_manifest,
    load_manifest,
    write_export,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_then_frozen_install_rebuilds_the_same_files(
    civitai: DemoServer, civitai_settings: Settings, tmp_path: Path
) -> None:
    old, new = tmp_path / "old-webui", tmp_path / "new-webui"
    with Context(civitai_settings) as ctx:
        done = remote.install(ctx, "58390", root=old, ui="a1111")  # add_detail (a LoRA)
        scanned = library.scan(ctx, old, "a1111")
        library.identify(ctx, scanned.models, root=old, layout=scanned.layout, previews=False)
        export = export_library(ctx, old, "a1111")
        assert [e.name for e in export.entries] == [done.path.name] and not export.skipped
        lock = write_export(export, tmp_path / "models.toml")
        assert lock.is_file()
        plan = load_manifest(tmp_path / "models.toml", root=new, ui="a1111", frozen=True)
        report = install_manifest(ctx, plan, frozen=True)
    assert report.exit_code == 0 and [r.status for r in report.results] == ["installed"]
    rebuilt = new / done.path.relative_to(old)
    assert rebuilt.is_file() and _sha256(rebuilt) == _sha256(done.path)
    served = next(f for f in civitai.files.values() if f.spec.name == done.path.name)
    assert served.path is not None and _sha256(rebuilt) == _sha256(served.path)
