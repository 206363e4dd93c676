"""Which container a file is, from its first bytes (never from its name)."""

from __future__ import annotations

import os
from pathlib import Path

from sdlib.hashing import safetensors_body_offset
from sdlib.taxonomy import Container

#: torch's legacy (pre-1.6) format starts with a pickled LONG of this magic number.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")

SNIFF_BYTES = 64


def sniff_bytes(head: bytes, size: int) -> Container:
    """Container of a file whose first bytes are ``head`` and whose size is ``size``."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Container.PICKLE_ZIP
    if head.startswith(b"GGUF"):
        return Container.GGUF
    if head.startswith(_LEGACY_PREFIX):
        return Container.PICKLE_LEGACY
    if safetensors_body_offset(head, size) is not None:
        return Container.SAFETENSORS
    # A protocol-2+ pickle opens with PROTO n; older protocols with a container opcode.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return Container.PICKLE
    if head[:1] in (b"(", b"}", b"]", b"c") and not looks_like_text_error(head):
        return Container.PICKLE
    return Container.UNKNOWN


def sniff_path(path: str | os.PathLike[str]) -> Container:
    path = Path(path)
    if path.is_dir():
        if (path / "model_index.json").is_file() or (path / "config.json").is_file():
            return Container.DIFFUSERS_DIR
        return Container.UNKNOWN
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
        size = os.fstat(fh.fileno()).st_size
    return sniff_bytes(head, size)


def looks_like_text_error(head: bytes) -> bool:
    """True for the start of an HTML page or a JSON error body: not a model file."""
    text = head.lstrip()[:64].lower()
    return text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or (
        (text.startswith(b"{") and b'"error' in text) or text.startswith(b'{"message"')
    )
