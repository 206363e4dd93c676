"""One NSFW rule for images, whichever shape Civitai sent (civitai-api.md: a boolean, the
2023 enum string, the int bitmask PG=1 PG13=2 R=4 X=8 XXX=16 Blocked=32 in models and
versions, the level name None|Soft|Mature|X|Blocked in /images)."""

from __future__ import annotations

from typing import Any

import pytest

from sdlib.library.identify import Identifier, IdentifyOptions
from sdlib.sources.civitai import CivitaiImage
from sdlib.sources.civitai._facts import match_from_version


@pytest.mark.parametrize(
    ("image", "nsfw"),
    [
        ({"nsfwLevel": 1}, False),
        ({"nsfwLevel": 2}, True),
        ({"nsfwLevel": 16}, True),
        ({"nsfwLevel": "None"}, False),
        ({"nsfwLevel": "Soft"}, True),
        ({"nsfwLevel": "Mature"}, True),
        ({"nsfwLevel": "X"}, True),
        ({"nsfw": "None"}, False),
        ({"nsfw": "Mature"}, True),
        ({"nsfw": True, "nsfwLevel": 1}, True),
        ({"nsfw": False}, False),
        ({}, False),
    ],
)
def test_the_rule_reads_every_shape(image: dict[str, Any], nsfw: bool) -> None:
    record = {"url": "https://image.example/x.jpeg", **image}
    assert CivitaiImage.from_api(record).nsfw is nsfw
    # The facts identify gets carry the same verdict (one rule, not a second copy).
    (preview,) = match_from_version(
        "https://civitai.com", {"images": [record]}, "SHA256", None
    ).previews
    assert preview.nsfw is nsfw


class _Lookup:
    """Serves an image for every URL and records which were asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def preview(self, url: str) -> bytes:
        self.asked.append(url)
        return b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def test_identify_skips_previews_with_a_string_nsfw_level() -> None:
    """identify honoured only an int level or nsfw=true, so an /images-style "Mature"
    record became a preview the TUI would have hidden."""
    lookup = _Lookup()
    identifier = Identifier(None, None, lookup, IdentifyOptions(nsfw=False))  # type: ignore[arg-type]
    body = {
        "images": [
            {"url": "https://image.example/mature.jpeg", "nsfwLevel": "Mature"},
            {"url": "https://image.example/soft.jpeg", "nsfw": "Soft"},
            {"url": "https://image.example/pg.jpeg", "nsfwLevel": 1},
        ]
    }
    match = match_from_version("https://civitai.com", body, "SHA256", None)
    assert identifier._preview(match) is not None
    assert lookup.asked == ["https://image.example/pg.jpeg"]
