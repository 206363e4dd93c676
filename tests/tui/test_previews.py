"""Preview images: fetched in the background, cached on disk, drawn with half blocks here
(Pilot has no graphics terminal), NSFW ones neither fetched nor shown unless enabled."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Static

from sdlib.demo.server import DemoServer
from sdlib.sources.civitai import CivitaiImage
from sdlib.tui.widgets.preview import PreviewPane, image_widget_class
from sdlib.tui.widgets.results import ResultsTable

pytestmark = [
    pytest.mark.anyio,
    # textual-image (not sdlib) still calls a Pillow API deprecated for Pillow 14.
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]


def image_requests(server: DemoServer) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/images/")]


def frame_children(app: Any) -> list[Any]:
    return list(app.screen.query_one("#preview-frame").children)


async def test_previews_are_drawn_cached_and_stepped(
    make_app: Any, civitai: DemoServer, ui: Any
) -> None:
    from textual_image.widget import HalfcellImage

    app = make_app(previews="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        civitai.clear_requests()  # EasyNegative's preview was shown first
        table = app.screen.query_one(ResultsTable)
        table.move_cursor(row=1)  # DreamShaper: four previews
        await ui.settle(pilot)
        await ui.until(
            pilot,
            lambda: isinstance(frame_children(app)[0], HalfcellImage),
            what="the first preview",
        )
        image = frame_children(app)[0]
        assert image.size.width > 5 and image.size.height > 5
        assert "image 1/4 · 512×768" in ui.text(app)
        assert image_requests(civitai) == ["/images/2010001.png"]
        pane = app.screen.query_one(PreviewPane)
        assert pane.current is not None
        assert app.services.images.path_for(pane.current.url).is_file()

        await pilot.press("right_square_bracket")
        await ui.until(pilot, lambda: len(image_requests(civitai)) == 2, what="image 2")
        await pilot.press("left_square_bracket")  # back to image 1: from the disk cache
        await ui.settle(pilot)
        assert "image 1/4" in ui.text(app)
        assert len(image_requests(civitai)) == 2
        assert isinstance(frame_children(app)[0], HalfcellImage)


async def test_nsfw_previews_are_hidden_unless_enabled(
    make_app: Any, civitai: DemoServer, ui: Any
) -> None:
    app = make_app(previews="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        pane = app.screen.query_one(PreviewPane)
        url = f"{civitai.storage_url}/images/777.png"
        nsfw = CivitaiImage(url=url, width=512, height=768, nsfw=True, nsfw_level=8)
        civitai.clear_requests()
        pane.show([nsfw], nsfw=False)
        await ui.settle(pilot)
        [child] = frame_children(app)
        assert isinstance(child, Static)
        assert "NSFW preview hidden" in str(child.render())
        assert image_requests(civitai) == []  # not even fetched

        pane.show([nsfw], nsfw=True)
        await ui.until(
            pilot,
            lambda: not isinstance(frame_children(app)[0], Static),
            what="the image once allowed",
        )
        assert image_requests(civitai) == ["/images/777.png"]


async def test_previews_off_show_a_fixed_placeholder(make_app: Any, ui: Any) -> None:
    app = make_app(previews="off")
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        await pilot.press("down", "enter")
        await ui.settle(pilot)
        assert "previews are off" in ui.text(app)


def test_protocol_choice() -> None:
    from textual_image import widget as tiw

    assert image_widget_class("off") is None
    assert image_widget_class("halfcell") is tiw.HalfcellImage
    assert image_widget_class("sixel") is tiw.SixelImage
    assert image_widget_class("kitty") is tiw.TGPImage
    assert image_widget_class("auto") is tiw.Image


@pytest.mark.parametrize("answer", ["halfcell", "unicode"])
async def test_auto_previews_use_what_the_terminal_answered(
    make_app: Any, civitai: DemoServer, ui: Any, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    """`--previews auto` draws with the class for the probe's answer (textual-image loaded
    by the preview's worker, after the first frame)."""
    from textual_image import widget as tiw

    from sdlib.tui import graphics

    monkeypatch.setattr(graphics, "detected", answer)
    expected = {"halfcell": tiw.HalfcellImage, "unicode": tiw.UnicodeImage}[answer]
    assert image_widget_class("auto") is expected
    app = make_app(previews="auto")
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        app.screen.query_one(ResultsTable).move_cursor(row=1)  # DreamShaper: 4 previews
        await ui.until(
            pilot,
            lambda: (
                "image 1/4 · 512×768" in ui.text(app) and type(frame_children(app)[0]) is expected
            ),
            what="DreamShaper's first preview",
        )
