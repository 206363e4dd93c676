"""A store link `sdlib link` made is the webUI's models, not a problem: scan lists it ok and
the files behind it as models in their right folder; a dangling one (the store's drive not
mounted) is a broken link; a link of another name leading outside stays link-outside-root."""

from __future__ import annotations

from pathlib import Path

from sdlib.config import Settings
from sdlib.services import Context
from sdlib.services.library import scan
from tests.support import trees
from tests.support.trees import st


def test_store_links_in_a_scan(tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    store = tmp_path / "store"
    st(store / "Lora" / "style.safetensors", "lora_sd15_kohya", small=True)
    (store / "StableDiffusion").mkdir()
    lora = root / "models" / "Lora"
    lora.mkdir(parents=True)
    (lora / "sdlib-store").symlink_to(store / "Lora", target_is_directory=True)
    (lora / "sdlib-store-LyCORIS").symlink_to(tmp_path / "gone", target_is_directory=True)
    (lora / "mine").symlink_to(store / "StableDiffusion", target_is_directory=True)
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    with Context(settings) as ctx:
        result = scan(ctx, root, "a1111")
    status = {f.rel: f.status for f in result.files}
    assert status["models/Lora/sdlib-store/style.safetensors"] == ["ok"]
    assert status["models/Lora/sdlib-store"] == ["ok"]
    assert status["models/Lora/sdlib-store-LyCORIS"] == ["broken-link"]
    assert status["models/Lora/mine"] == ["link-outside-root"]
