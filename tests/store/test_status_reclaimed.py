"""`sdlib store status` says how much space the store and dedupe save: each store file seen by
N linked webUIs counts (N - 1) x its size (the copies each would otherwise hold), plus the
copies `sdlib dedupe --apply` hard-linked; sizes here come from the files' own stat."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sdlib.services import Context, dedupe
from sdlib.services.store import link_store, store_status, unlink_store
from sdlib.store.savings import View, shared_savings
from tests.store.conftest import make_root
from tests.support import trees
from tests.support.cli import isolated_env, run_sdlib
from tests.support.trees import st


def test_savings_count_each_extra_view() -> None:
    files = {"Lora": [("a", 10), ("b", 7)], "VAE": [("v", 100)]}
    views = [
        View(frozenset({"Lora"})),
        View(frozenset({"Lora", "VAE"})),
        View(files=frozenset({("Lora", "a")})),
    ]
    # a: 3 views -> 2 x 10; b: 2 views -> 7; v: 1 view -> nothing.
    assert shared_savings(files, views) == (27, 2)
    assert shared_savings(files, []) == (0, 0)


@pytest.mark.slow
def test_status_reclaimed(ctx: Context, store: Path, tmp_path: Path) -> None:
    sizes = sum(p.stat().st_size for p in store.rglob("*.safetensors"))
    status = store_status(ctx)
    assert (status.shared_bytes, status.dedupe_bytes, status.reclaimed) == (0, 0, 0)

    a1111 = make_root(tmp_path, "a1111")
    comfy = make_root(tmp_path, "comfyui")
    sdnext = make_root(tmp_path, "sdnext", own_models=False)
    link_store(ctx, a1111, "a1111")
    assert store_status(ctx).shared_bytes == 0  # one webUI sees it: nothing saved yet
    link_store(ctx, comfy, "comfyui")
    link_store(ctx, sdnext, "sdnext", method="config")
    # A file only ComfyUI can see (A1111 and SD.Next have no CLIP-vision folder here).
    st(store / "ClipVision" / "vision.safetensors", "lora_sd15_kohya", {"v": "1"}, small=True)
    status = store_status(ctx)
    assert (status.shared_bytes, status.shared_files) == (2 * sizes, 2)

    # Dedupe two webUIs' own copies: one of them is a hard link now.
    other = trees.a1111(tmp_path / "second webui")
    own = a1111 / "models" / "Stable-diffusion" / "own.safetensors"
    copy = other / "models" / "Stable-diffusion" / "own copy.safetensors"
    copy.parent.mkdir(parents=True)
    shutil.copy2(own, copy)
    done = dedupe.apply(ctx, [a1111, other])
    assert done.done == 1
    status = store_status(ctx)
    assert (status.dedupe_bytes, status.dedupe_files) == (own.stat().st_size, 1)
    assert status.reclaimed == 2 * sizes + own.stat().st_size
    assert status.to_dict()["reclaimed"]["bytes"] == status.reclaimed

    # The CLI says it, in words and in JSON.
    config = tmp_path / "config.toml"
    config.write_text(f"[store]\npath = {json.dumps(str(store))}\n", encoding="utf-8")
    env = isolated_env(tmp_path, SDLIB_CONFIG=str(config), NO_COLOR="1", COLUMNS="200")
    env["SDLIB_DATA_DIR"] = str(ctx.settings.data_dir)
    out = run_sdlib("store", "status", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["reclaimed"]["bytes"] == status.reclaimed
    text = run_sdlib("store", "status", env=env).stdout
    assert "reclaimed:" in text and "2 store files more than one webUI sees" in text

    # Undoing gives the space back: nothing is saved any more.
    dedupe.undo(ctx, [a1111, other])
    for root in (comfy, sdnext):
        unlink_store(ctx, root)
    status = store_status(ctx)
    assert (status.shared_bytes, status.dedupe_bytes) == (0, 0)
