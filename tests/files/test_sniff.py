from __future__ import annotations

import struct

import pytest

from sdlib.files.sniff import LEGACY_MAGIC, looks_like_text_error, sniff_bytes
from sdlib.taxonomy import Container

LEGACY = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little") + b".\x80\x02"


@pytest.mark.parametrize(
    ("head", "size", "container"),
    [
        (struct.pack("<Q", 2) + b"{}", 100, Container.SAFETENSORS),
        (struct.pack("<Q", 2000) + b"{}", 100, Container.UNKNOWN),  # header beyond the file
        (b"PK\x03\x04rest", 100, Container.PICKLE_ZIP),
        (LEGACY, 100, Container.PICKLE_LEGACY),
        (b"\x80\x04\x95....", 100, Container.PICKLE),
        (b"GGUF\x03\x00\x00\x00", 100, Container.GGUF),
        (b"<!DOCTYPE html><html>", 100, Container.UNKNOWN),
        (b"", 0, Container.UNKNOWN),
    ],
)
def test_sniff(head: bytes, size: int, container: Container) -> None:
    assert sniff_bytes(head, size) is container


def test_error_pages_are_recognised() -> None:
    assert looks_like_text_error(b"  <!doctype html>")
    assert looks_like_text_error(b'{"error":"Model not found"}')
    assert not looks_like_text_error(struct.pack("<Q", 2) + b"{}")
