"""The Library screen on a webUI folder with broken and hostile files mixed into good ones
(issue 13, "a library with one broken file in it scans cleanly"): every good file is listed
as usual, each bad one is a row with its problem status, and the screen stays usable.

The bad files are built from bytes here; the good ones are the classifier's fixtures, whose
kinds ``sdlib.demo.specs.EXPECTED`` states by hand.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from sdlib.demo.specs import EXPECTED
from sdlib.demo.writers import write_safetensors
from sdlib.tui.screens.library import LibraryScreen
from tests.support import trees

pytestmark = pytest.mark.anyio

_ONE = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def _raw_st(path: Path, header: bytes) -> None:
    trees.touch(path, struct.pack("<Q", len(header)) + header + bytes(4))


@pytest.fixture
def broken_library(webui: Path) -> dict[str, str]:
    """Good files plus one of each problem; {file name: the status its row must show}."""
    lora, sd = webui / "models" / "Lora", webui / "models" / "Stable-diffusion"
    trees.st(lora / "good_lora.safetensors", "lora_sd15_kohya")
    trees.st(webui / "embeddings" / "good_emb.safetensors", "embedding_sd15")
    one = json.dumps(_ONE).encode()
    _raw_st(lora / "dup_names.safetensors", b'{"w": %s, "w": %s}' % (one, one))
    _raw_st(lora / "deep_json.safetensors", b'{"w": ' + b"[" * 1000 + b"]" * 1000 + b"}")
    trees.touch(sd / "random.safetensors", b"\xff" * 8 + b"not a header")
    # Shapes that once crashed the classifier (1-D VAE convs, a zero LoRA dimension).
    (webui / "models" / "VAE").mkdir(parents=True)
    write_safetensors(webui / "models" / "VAE" / "vae_1d.safetensors", {
        "decoder.conv_in.weight": ("F32", (512,)), "encoder.conv_in.weight": ("F32", (128,)),
    })  # fmt: skip
    write_safetensors(lora / "zero_rank.safetensors", {
        "lora_unet_a_proj_in.lora_down.weight": ("F16", (0, 320)),
        "lora_unet_a_proj_in.lora_up.weight": ("F16", (320, 0)),
    })  # fmt: skip
    # A protocol-0 pickle without PROTO that calls os.system: the classic .ckpt attack.
    trees.touch(sd / "evil.ckpt", b"cos\nsystem\n(S'echo pwned'\ntR.")
    return {
        "good_lora.safetensors": "ok",
        "good_emb.safetensors": "ok",
        "dup_names.safetensors": "corrupt",
        "deep_json.safetensors": "corrupt",
        "random.safetensors": "corrupt",
        "evil.ckpt": "unsafe-pickle",
    }


def rows(app: Any) -> dict[str, list[str]]:
    table = app.screen.query_one("#library-table", DataTable)
    out = {}
    for i in range(table.row_count):
        cells = [str(c) for c in table.get_row_at(i)]
        out[cells[0]] = cells
    return out


async def test_broken_files_are_rows_and_the_good_ones_are_listed(
    make_app: Any, broken_library: dict[str, str], ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("3")
        assert isinstance(app.screen, LibraryScreen)
        names = {*broken_library, "vae_1d.safetensors", "zero_rank.safetensors"}
        await ui.until(pilot, lambda: names <= set(rows(app)), what="the scan")
        await ui.settle(pilot)
        table = rows(app)
        for name, status in broken_library.items():
            assert status in table[name][4], (name, table[name])
        assert table["good_lora.safetensors"][1] == EXPECTED["lora_sd15_kohya"]["kind"]
        assert table["good_emb.safetensors"][1] == EXPECTED["embedding_sd15"]["kind"]
        for name in ("vae_1d.safetensors", "zero_rank.safetensors"):  # listed, not crashed
            assert "corrupt" not in table[name][4] and "unreadable" not in table[name][4]
        assert not [n for n in ui.notifications(app) if "Traceback" in n]
