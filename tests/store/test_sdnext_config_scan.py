"""SD.Next reads each kind from the folder its config.json names (`sdlib link --method config`
writes the store's folders there): scan, identify and organize read those folders as the UI's
own, so the store's files are listed in their right place, never missing or misplaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sdlib.library.sdnext_paths import parse_sdnext_dirs
from sdlib.services import Context
from sdlib.services.library import organize_plan, scan
from sdlib.services.store import link_store
from sdlib.taxonomy import Kind
from tests.store.conftest import make_root
from tests.support.trees import st


def test_config_json_folders_parse_as_sdnext_resolves_them(tmp_path: Path) -> None:
    text = json.dumps({
        "ckpt_dir": "/srv/models/ckpt", "lora_dir": "shared/loras", "vae_dir": "",
        "te_dir": 5, "sd_model_checkpoint": "x.safetensors",
    })  # fmt: skip
    got = parse_sdnext_dirs(text, tmp_path)
    assert got == {
        Kind.CHECKPOINT: os.path.normpath("/srv/models/ckpt"),
        Kind.LORA: str(tmp_path / "shared" / "loras"),
        Kind.LYCORIS: str(tmp_path / "shared" / "loras"),
    }
    assert parse_sdnext_dirs("[1, 2]", tmp_path) == {}
    assert parse_sdnext_dirs("{not json", tmp_path) == {}


def test_store_files_scan_as_sdnexts_own(ctx: Context, store: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path, "sdnext", own_models=False)
    done = link_store(ctx, root, "sdnext", method="config")
    assert done.method == "config"
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    assert config["ckpt_dir"] == str(store / "StableDiffusion")
    st(store / "Embeddings" / "easy.safetensors", "embedding_sd15", small=True)

    result = scan(ctx, root, "sdnext")
    by_path = {f.path: f for f in result.files}
    ckpt = by_path[str(store / "StableDiffusion" / "shared one.safetensors")]
    lora = by_path[str(store / "Lora" / "sub" / "shared lora.safetensors")]
    emb = by_path[str(store / "Embeddings" / "easy.safetensors")]
    assert (ckpt.kind, ckpt.status) == ("checkpoint", ["ok"])
    assert (lora.kind, lora.status) == ("lora", ["ok"])
    assert (emb.kind, emb.status) == ("embedding", ["ok"])
    assert all("misplaced" not in f.status for f in result.files)

    plan = organize_plan(ctx, result)
    touched = {p for op in plan.ops for p in (op.path, op.dst) if p}
    assert not any(p.startswith(str(store)) for p in touched), touched
