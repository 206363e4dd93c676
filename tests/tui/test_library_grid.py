"""The Library's thumbnail grid, its Civitai page key and its <lora:…> copy key."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from sdlib.demo.server import DemoServer
from sdlib.tui.widgets.thumbs import TILE, Thumb, ThumbGrid, ThumbItem
from tests.tui.test_library import CKPT, library, notified, open_library, rows, select

pytestmark = [
    pytest.mark.anyio,
    # textual-image (not sdlib) still calls a Pillow API deprecated for Pillow 14.
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]

__all__ = ["library"]  # the fixture, shared with test_library


def png(path: Path, colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 96), colour).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def tiles(app: Any) -> list[Thumb]:
    return list(app.screen.query(Thumb))


def drawn(tile: Thumb) -> bool:
    from textual_image.widget import HalfcellImage

    return any(isinstance(w, HalfcellImage) for w in tile.query("*"))


async def test_grid_shows_previews_and_follows_the_selection(
    make_app: Any, library: Path, ui: Any
) -> None:
    folder = library / CKPT
    png(folder / "dreamshaper_8.png")  # A1111's <stem>.png
    png(folder / "dreamshaper_7.preview.png", (40, 40, 200))  # Civitai Helper's name
    app = make_app(previews="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_library(pilot, ui)
        assert "g Grid" in ui.text(app)  # the toggle is in the footer
        await select(pilot, ui, "dreamshaper_7.safetensors")
        await pilot.press("g")
        await ui.settle(pilot)
        assert screen.query_one(ThumbGrid).display
        assert not screen.query_one("#library-table", DataTable).display
        shown = {t.item.name: t for t in tiles(app)}
        assert set(shown) == set(rows(app)) and len(shown) == 4  # the .ckpt too
        assert app.focused is shown["dreamshaper_7.safetensors"]  # the table's selection
        await ui.until(
            pilot,
            lambda: (
                drawn(shown["dreamshaper_7.safetensors"])
                and drawn(shown["dreamshaper_8.safetensors"])
            ),
            what="thumbnails",
        )
        assert not drawn(shown["add_detail.safetensors"])
        assert "no preview" in str(shown["add_detail.safetensors"].query(Static).first().render())

        # Moving in the grid moves the selection the actions use.
        before = screen.selected()
        await pilot.press("right")
        await ui.settle(pilot)
        after = screen.selected()
        assert before is not None and after is not None and after.path != before.path
        assert app.focused is not None and getattr(app.focused, "item", None) is not None
        assert app.focused.item.path == after.path  # type: ignore[attr-defined]

        await pilot.press("g")  # back to the table, on the same model
        await ui.settle(pilot)
        assert screen.query_one("#library-table", DataTable).display
        assert screen.selected() is after
        assert app.focused is screen.query_one("#library-table")


async def test_the_grid_follows_the_filter(make_app: Any, library: Path, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await pilot.press("g", "slash", *"detail", "enter")
        await ui.settle(pilot)
        assert [t.item.name for t in tiles(app)] == ["add_detail.safetensors"]
        assert isinstance(app.focused, Thumb)  # enter left the filter for the grid


class GridApp(App[None]):
    CSS_PATH = str(Path(__file__).parents[2] / "sdlib" / "tui" / "app.tcss")
    CSS = "Screen #thumb-grid { display: block; }"  # the Library shows it in grid mode

    def __init__(self, items: list[ThumbItem]) -> None:
        super().__init__()
        self.items = items

    def compose(self) -> ComposeResult:
        yield ThumbGrid("halfcell", id="thumb-grid")

    async def on_mount(self) -> None:
        await self.query_one(ThumbGrid).set_items(self.items)


@pytest.mark.slow  # mounts 400 tiles
async def test_hundreds_of_models_decode_only_what_is_in_view(
    tmp_path: Path, ui: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdlib.tui.images

    decoded: list[int] = []
    real = sdlib.tui.images.decode_preview

    def counting(data: bytes, box: tuple[int, int]) -> Any:
        decoded.append(len(data))
        return real(data, box)

    monkeypatch.setattr(sdlib.tui.images, "decode_preview", counting)
    image = png(tmp_path / "one.png")
    items = [ThumbItem(f"/m/{i}.safetensors", f"model {i}", str(image)) for i in range(400)]
    app = GridApp(items)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        grid = app.query_one(ThumbGrid)
        assert len(grid.tiles()) == 400 and grid.columns == 120 // TILE[0]
        in_view = grid.columns * (40 // TILE[1] + 2)
        await ui.until(pilot, lambda: len(decoded) >= grid.columns, what="the first row")
        await ui.settle(pilot)
        assert len(decoded) <= in_view
        assert sum(drawn(t) for t in grid.tiles()) == len(decoded)

        await pilot.press("end")  # the last tile: the view jumps, its row is decoded
        await ui.settle(pilot)
        assert app.focused is grid.tiles()[-1]
        await ui.until(pilot, lambda: drawn(grid.tiles()[-1]), what="the last tile")
        assert len(decoded) <= 2 * in_view  # never the 400

        await pilot.press("up")
        assert app.focused is grid.tiles()[-1 - grid.columns]


async def test_open_model_page(
    make_app: Any, library: Path, civitai: DemoServer, ui: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "dreamshaper_8.safetensors")
        await pilot.press("p")  # not identified yet: nothing to open
        await ui.settle(pilot)
        assert opened == [] and notified(app, "not identified")
        await pilot.press("i")
        await ui.until(pilot, lambda: rows(app)["dreamshaper_8.safetensors"][5] != "—")
        await ui.settle(pilot)
        await select(pilot, ui, "dreamshaper_8.safetensors")
        await pilot.press("p")
        await ui.settle(pilot)
        # DreamShaper 8 is version 128713 of model 4384 in the demo catalogue.
        assert opened == [f"{civitai.url}/models/4384?modelVersionId=128713"]
        assert notified(app, "Opened in the browser")


async def test_copy_lora_tag_with_the_recommended_weight(
    make_app: Any, library: Path, ui: Any
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_library(pilot, ui)
        await select(pilot, ui, "add_detail.safetensors")
        await pilot.press("c")
        await ui.settle(pilot)
        assert app.clipboard == "<lora:add_detail:1>"
        assert notified(app, "copied <lora:add_detail:1> (weight 1: no recommended weight")

        card = library / CKPT / "add_detail.json"  # A1111's card, as Civitai Helper writes it
        card.write_text(json.dumps({"activation text": "", "preferred weight": 0.6}))
        await pilot.press("c")
        await ui.settle(pilot)
        assert app.clipboard == "<lora:add_detail:0.6>"
        assert notified(app, "copied <lora:add_detail:0.6> (weight from add_detail.json)")

        await select(pilot, ui, "dreamshaper_8.safetensors")
        await pilot.press("c")
        await ui.settle(pilot)
        assert app.clipboard == "<lora:add_detail:0.6>"  # unchanged: a checkpoint has none
        assert notified(app, "a checkpoint has no <lora:…> tag")


@pytest.mark.parametrize(
    ("card", "weight"),
    [
        ({"preferred weight": 0.75}, 0.75),
        ({"preferred weight": "0.5"}, 0.5),
        ({"preferred weight": 0}, None),  # A1111: 0 means "the default multiplier"
        ({"preferred weight": True}, None),
        ({"preferred weight": "nan"}, None),
        ({"preferred weight": "heavy"}, None),
        ({}, None),
        (["not", "a", "card"], None),
    ],
)
def test_preferred_weight(card: Any, weight: float | None) -> None:
    from sdlib.library.prompt_tags import preferred_weight

    assert preferred_weight(card) == weight


def test_lora_tag_names_the_stem_and_ignores_a_bad_card(tmp_path: Path) -> None:
    from sdlib.library.prompt_tags import lora_tag

    model = tmp_path / "style.v2.safetensors"
    assert lora_tag(model).text == "<lora:style.v2:1>"
    (tmp_path / "style.v2.json").write_bytes(b"\xff not json")
    assert lora_tag(model).text == "<lora:style.v2:1>"
    (tmp_path / "style.v2.json").write_text('{"preferred weight": -0.25}')
    tag = lora_tag(model)
    assert tag.text == "<lora:style.v2:-0.25>" and tag.source == "style.v2.json"
