"""The one preview fetcher: Civitai's CDN asked for a bounded width, the body capped while
streaming, and every caller (TUI cache, identify, download sidecars) going through it.

URL forms are the real ones in shared/reference/samples and reference civitai-api.md 3.4.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from sdlib.library.index import Index
from sdlib.sources.civitai import (
    MAX_PREVIEW_BYTES,
    CivitaiLookup,
    fetch_preview,
    preview_url,
)
from sdlib.tui.images import ImageCache
from tests.support.hostile import Answer, HostileServer, endless
from tests.support.paths import SAMPLES

CDN = "https://imagecache.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/cc5caabb-e05f-4976-ff3c-7058598c4e00"


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def _image_urls(data: object) -> list[str]:
    if isinstance(data, dict):
        own = [data["url"]] if isinstance(data.get("url"), str) and "image" in data["url"] else []
        return own + [u for v in data.values() for u in _image_urls(v)]
    if isinstance(data, list):
        return [u for v in data for u in _image_urls(v)]
    return []


def test_the_real_sample_urls_ask_for_at_most_450_pixels() -> None:
    urls = [
        u
        for name in ("civitai-model.json", "civitai-model-version.json", "civitai-images.json")
        for u in _image_urls(json.loads((SAMPLES / name).read_text(encoding="utf-8")))
    ]
    # original=true (2026) and width=1024 / width=450 (2023) forms are all there.
    assert any("/original=true/" in u for u in urls) and any("/width=1024/" in u for u in urls)
    for url in urls:
        resized = preview_url(url)
        assert resized.rsplit("/", 2)[-2] == "width=450", url
        assert resized.rsplit("/", 1)[-1] == url.rsplit("/", 1)[-1]  # same file name


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{CDN}/original=true/1.jpeg", f"{CDN}/width=450/1.jpeg"),
        (f"{CDN}/width=1024/1.jpeg", f"{CDN}/width=450/1.jpeg"),
        (f"{CDN}/width=96/u.jpeg", f"{CDN}/width=96/u.jpeg"),  # never larger than asked
        (f"{CDN}/anim=false,width=1024/1.jpeg", f"{CDN}/width=450,anim=false/1.jpeg"),
        (f"{CDN}/original=true,quality=90/1.jpeg", f"{CDN}/width=450,quality=90/1.jpeg"),
        (f"{CDN}/1.jpeg", f"{CDN}/width=450/1.jpeg"),  # no transform segment yet
        ("https://image.civitai.com/a/b/c.png", "https://image.civitai.com/a/b/width=450/c.png"),
        ("http://127.0.0.1:8000/images/2010001.png", "http://127.0.0.1:8000/images/2010001.png"),
        ("https://example.com/x/original=true/1.png", "https://example.com/x/width=450/1.png"),
        ("not a url", "not a url"),
    ],
)
def test_preview_url(url: str, expected: str) -> None:
    assert preview_url(url) == expected


def test_fetch_asks_for_the_width_and_returns_the_bytes(hostile: HostileServer) -> None:
    png = _png()
    hostile.route("/acct/uuid/width=450/1.png", Answer(200, png, {"Content-Type": "image/png"}))
    with httpx2.Client() as http:
        assert fetch_preview(http, f"{hostile.url}/acct/uuid/original=true/1.png") == png
    assert hostile.requests == ["/acct/uuid/width=450/1.png"]


@pytest.mark.parametrize("declared", [True, False])
def test_an_endless_image_is_not_read_past_the_cap(hostile: HostileServer, declared: bool) -> None:
    total = 1 << 30
    body = endless(b"\x89PNG\r\n\x1a\n" + bytes(65528), total)
    hostile.route("/huge.png", Answer(200, body, {"Content-Type": "image/png"},
                                      length=total if declared else None))  # fmt: skip
    with httpx2.Client() as http:
        assert fetch_preview(http, f"{hostile.url}/huge.png") is None
    assert hostile.sent["/huge.png"] < MAX_PREVIEW_BYTES + (16 << 20)


def test_errors_are_none_never_raised(hostile: HostileServer) -> None:
    hostile.route("/gone.png", Answer.json({"error": "Not found"}, 404))
    hostile.route("/loop.png", Answer.redirect("/loop.png"))
    with httpx2.Client(follow_redirects=True) as http:
        assert fetch_preview(http, f"{hostile.url}/gone.png") is None
        assert fetch_preview(http, f"{hostile.url}/loop.png") is None
        assert fetch_preview(http, "http://127.0.0.1:9/closed.png", timeout=2) is None
        assert fetch_preview(http, "ftp://example.com/x.png") is None


def test_every_caller_goes_through_it(hostile: HostileServer, tmp_path: Path) -> None:
    png = _png()
    hostile.route("/a/b/width=450/ok.png", Answer(200, png))
    hostile.route("/huge.png", Answer(200, endless(bytes(65536), 1 << 30)))
    ok, huge = f"{hostile.url}/a/b/original=true/ok.png", f"{hostile.url}/huge.png"
    with httpx2.Client() as http, Index(tmp_path / "i.sqlite") as index:
        cache = ImageCache(tmp_path / "previews", http)  # the TUI
        assert cache.get(ok) == png and cache.get(huge) is None
        lookup = CivitaiLookup(http, hostile.url, index, rate=0)  # identify
        assert lookup.preview(ok) == png and lookup.preview(huge) is None
    assert set(hostile.requests) == {"/a/b/width=450/ok.png", "/huge.png"}
