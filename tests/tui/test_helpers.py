"""The TUI's pure helpers: HTML to Markdown, config edits, formatting, the image cache."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sdlib.config_edit import save_values, set_values
from sdlib.formatting import bar, count, duration, ellipsize, human_size, rate, tilde
from sdlib.tui.htmlmd import html_to_markdown
from sdlib.tui.images import ImageCache, decode_preview

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# --- HTML -> Markdown ---------------------------------------------------------------------------


def test_markdown_keeps_structure() -> None:
    html = (
        "<h2>Usage</h2><p>Use <strong>CLIP skip 2 </strong>and <em>DPM++</em>.<br>Then "
        "<a href='https://civitai.com/models/1'>see</a>.</p><ul><li>one</li><li>two<ul>"
        "<li>nested</li></ul></li></ul><ol><li>a</li><li>b</li></ol><pre>x = 1\n  y</pre>"
        "<blockquote><p>quoted</p></blockquote>"
    )
    assert html_to_markdown(html) == (
        "## Usage\n\n"
        "Use **CLIP skip 2** and *DPM++*.\n"
        "Then [see](https://civitai.com/models/1).\n\n"
        "- one\n- two\n  - nested\n\n"
        "1. a\n2. b\n\n"
        "```\nx = 1\n  y\n```\n\n"
        "> quoted"
    )


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>a<script>alert(1)</script>b</p>", "ab"),
        ("<style>p{}</style><p>x</p><iframe src='https://evil'>y</iframe>", "x"),
        ("<a href='javascript:alert(1)'>click</a>", "click"),
        ("<a href='data:text/html,x'>d</a> <a href='/models/2'>rel</a>", "d rel"),
        ("<p>[PRT] *not bold* &lt;b&gt; `tick`</p>", r"\[PRT\] \*not bold\* \<b\> \`tick\`"),
        ("<p># not a heading</p><p>1. not a list</p>", "\\# not a heading\n\n1\\. not a list"),
        ("<a href='https://x.org/a (b)'>p</a>", "[p](https://x.org/a%20%28b%29)"),
        ("<img src='x' alt='sample'><p>text</p>", "*sample*\n\ntext"),
        ("", ""),
        (None, ""),
    ],
)
def test_markdown_is_sanitized(html: str | None, expected: str) -> None:
    assert html_to_markdown(html) == expected


def test_markdown_is_bounded() -> None:
    assert len(html_to_markdown("<p>" + "word " * 50_000 + "</p>", max_chars=1000)) <= 1002


# --- config edits -----------------------------------------------------------------------------


def test_set_values_keeps_comments_and_other_tables() -> None:
    text = (
        '# mine\n[civitai]\ntoken = "abc"  # secret\n\n[library]\nroot = "/old"\n\n'
        '[library.folders]\nlora = "models/X"\n\n[network]\nretries = 2\n'
    )
    text = set_values(
        text, "library", {"root": "/new", "ui": "a1111", "folders": {"vae": "models/V"}}
    )
    text = set_values(text, "civitai", {"nsfw": True})
    data = tomllib.loads(text)
    assert text.startswith("# mine\n") and '"abc"  # secret' in text
    assert data["library"] == {"root": "/new", "ui": "a1111", "folders": {"vae": "models/V"}}
    assert data["civitai"] == {"token": "abc", "nsfw": True}
    assert data["network"] == {"retries": 2}


def test_set_values_creates_and_removes() -> None:
    text = set_values("", "library", {"root": 'C:\\sd "x"', "folders": {"text-encoder": "t"}})
    assert tomllib.loads(text)["library"] == {
        "root": 'C:\\sd "x"',
        "folders": {"text-encoder": "t"},
    }
    text = set_values(text, "library", {"root": None, "folders": None})
    assert tomllib.loads(text)["library"] == {}


def test_save_values_refuses_what_would_not_load(tmp_path: Path) -> None:
    from sdlib.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text('[library]\nroot = "/x"\n')
    with pytest.raises(ConfigError, match=r"civitai\.nsfw must be true or false"):
        save_values(path, {"civitai": {"nsfw": "yes"}})
    assert path.read_text() == '[library]\nroot = "/x"\n'
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


# --- formatting -------------------------------------------------------------------------------


def test_formatting() -> None:
    assert human_size(None) == "?" and human_size(512) == "512 B"
    assert human_size(4 << 20) == "4.0 MiB" and rate(1536) == "1.5 KiB/s" and rate(0) == ""
    assert count(None) == "-" and count(9000) == "9000" and count(48_211) == "48k"
    assert count(1_254_301) == "1.3M"
    assert duration(None) == "" and duration(42) == "42s" and duration(185) == "3m05s"
    assert duration(3720) == "1h02m"
    assert bar(5, 10, 10) == "█████░░░░░  50%" and bar(1, None, 4).endswith("?")
    assert ellipsize("abcdef", 4) == "abc…" and ellipsize("ab", 4) == "ab"


def test_tilde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tilde(tmp_path / "webui" / "x") == "~/webui/x"
    assert tilde(tmp_path) == "~"
    assert tilde("/elsewhere/x") == "/elsewhere/x"
    assert tilde(str(tmp_path) + "-other") == str(tmp_path) + "-other"


# --- the image cache --------------------------------------------------------------------------


def _png(w: int = 8, h: int = 12) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_image_cache_fetches_once_and_skips_videos(tmp_path: Path) -> None:
    calls: list[str] = []
    png = _png()

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        if request.url.path == "/video.mp4":
            return httpx2.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + bytes(64))
        if request.url.path == "/missing.png":
            return httpx2.Response(404)
        return httpx2.Response(200, content=png)

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as http:
        cache = ImageCache(tmp_path / "previews", http)
        assert cache.get("https://img/a.png") == png
        assert cache.get("https://img/a.png") == png
        assert calls == ["/a.png"]  # the second came from disk
        assert cache.path_for("https://img/a.png").is_file()
        assert cache.get("https://img/video.mp4") is None
        assert cache.get("https://img/missing.png") is None
        assert not cache.path_for("https://img/video.mp4").exists()


def test_image_cache_trims_least_recently_used(tmp_path: Path) -> None:
    import os

    png = _png()
    with httpx2.Client(
        transport=httpx2.MockTransport(lambda r: httpx2.Response(200, content=png))
    ) as http:
        cache = ImageCache(tmp_path, http, max_bytes=len(png) * 2)
        for i, name in enumerate("abc"):
            cache.get(f"https://img/{name}.png")
            os.utime(cache.path_for(f"https://img/{name}.png"), (1000 + i, 1000 + i))
        cache.trim()
    left = {p.name for p in tmp_path.glob("*/*.img")}
    assert cache.path_for("https://img/a.png").name not in left and len(left) == 2


def test_decode_preview_shrinks_and_refuses_junk() -> None:
    image: Any = decode_preview(_png(400, 600), (40, 40))
    assert image is not None and image.mode == "RGB" and max(image.size) <= 40
    assert decode_preview(b"not an image", (40, 40)) is None
    assert decode_preview(_png(5000, 5000), (40, 40)) is None  # larger than any preview
