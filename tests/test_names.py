"""Server-given and user-given names become safe, portable single path components."""

from __future__ import annotations

import pytest

from sdlib.names import (
    MAX_NAME_BYTES,
    content_disposition_filename,
    safe_filename,
    with_suffix_tag,
)


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../x.safetensors", "x.safetensors"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\evil.pt", "evil.pt"),
        ("a\x00b.pt", "a_b.pt"),
        ("CON.pt", "_CON.pt"),
        ("lpt1", "_lpt1"),
        ("what?<>|*.ckpt", "what_____.ckpt"),
        ("trailing. ", "trailing"),
        ("..", "download"),
        ("", "download"),
        (".hidden.pt", "hidden.pt"),
        ("Café [v2] (final).safetensors", "Café [v2] (final).safetensors"),
    ],
)
def test_safe_filename(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_long_names_are_capped_keeping_the_extension() -> None:
    name = safe_filename("é" * 300 + ".safetensors")
    assert name.endswith(".safetensors")
    assert len(name.encode()) <= MAX_NAME_BYTES


def test_suffix_tag() -> None:
    assert with_suffix_tag("model.safetensors", "128713") == "model_128713.safetensors"
    assert with_suffix_tag("noext", "7") == "noext_7"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="dream shaper.safetensors"', "dream shaper.safetensors"),
        ("attachment; filename=plain.pt", "plain.pt"),
        ("attachment; filename*=UTF-8''caf%C3%A9.safetensors", "café.safetensors"),
        ('attachment; filename="a\\"b.pt"', 'a"b.pt'),
        (None, None),
        ("inline", None),
    ],
)
def test_content_disposition(header: str | None, name: str | None) -> None:
    assert content_disposition_filename(header) == name
