"""A LoRA download folder hides nothing in the Library screen (issue 16 item 2 through the
TUI): with ``[library.folders] lora = "models/Lora/civitai"``, the LoRAs already in
``models/Lora`` and its other sub-folders are still rows, in a right place, and a LoRA in
the checkpoint folder belongs in the download folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from tests.tui.test_library import CKPT, put, rows, select

pytestmark = pytest.mark.anyio

LORA = 62833_1  # add_detail.safetensors in the demo catalogue


async def test_a_lora_download_folder_hides_nothing(
    make_app: Any, settings: Any, civitai: DemoServer, webui: Path, ui: Any
) -> None:
    put(civitai, LORA, webui / "models" / "Lora" / "top.safetensors")
    put(civitai, 128713_1, webui / "models" / "Lora" / "other" / "ds8.safetensors")
    put(civitai, 9536_1, webui / "models" / "Lora" / "civitai" / "neg.safetensors")
    put(civitai, LORA, webui / CKPT / "stray.safetensors")
    library = replace(settings.library, folders={"lora": "models/Lora/civitai"})
    app = make_app(replace(settings, library=library))
    async with app.run_test(size=(160, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("3")
        await ui.until(pilot, lambda: len(rows(app)) == 4, what="the four models")
        await ui.settle(pilot)
        table = rows(app)
        assert table["top.safetensors"][1] == "lora"
        assert "misplaced" not in table["top.safetensors"][4]
        # A checkpoint and an embedding in LoRA folders are misplaced, but they are listed
        # (named from the kind's folder, sub-folder first).
        assert table["other/ds8.safetensors"][1:2] + table["other/ds8.safetensors"][4:5] == [
            "checkpoint",
            "misplaced",
        ]
        assert table["civitai/neg.safetensors"][1] == "embedding"
        assert "misplaced" in table["stray.safetensors"][4]
        await select(pilot, ui, "stray.safetensors")  # new LoRAs go to the download folder
        assert "belongs in: ~/webui/models/Lora/civitai" in ui.text(app)
