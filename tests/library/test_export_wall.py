"""``export`` only writes manifest folders a later install accepts: files in a folder shared
from outside the root (ComfyUI's extra paths) are skipped with the reason, not a crash."""

from __future__ import annotations

from pathlib import Path

from sdlib.export import build_export
from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from sdlib.library.scan import load_layout, scan
from sdlib.manifest import folder_problem
from tests.support import trees


def test_shared_folder_models_are_skipped(tmp_path: Path) -> None:
    root, webui = tmp_path / "ComfyUI", tmp_path / "a1111"
    trees.messy_comfyui(root, webui)
    with Index(tmp_path / "library.sqlite") as index, HashCache(tmp_path / "h.sqlite") as hc:
        first = scan(root, load_layout(root, "auto"), index, hc, hash_all=True)
        inside = next(f for f in first.models if f.rel == "models/loras/detail.safetensors")
        shared = next(f for f in first.models if "a1111_model" in f.rel)
        for n, f in enumerate((inside, shared), 1):
            assert f.id is not None
            index.update(f.id, civitai_model_id=n, civitai_version_id=10 + n,
                         civitai_file_id=100 + n)  # fmt: skip
        again = scan(root, load_layout(root, "auto"), index, hc)
        export = build_export(again, hc, "https://civitai.com", str(root))
    assert [(e.folder, e.name) for e in export.entries] == [("models/loras", "detail.safetensors")]
    assert all(folder_problem(e.folder or "") is None for e in export.entries)
    assert (shared.rel, "outside the root: a manifest cannot place it") in export.skipped
