"""Which container a file is, from its first bytes (never from its name).

A guess from a short head: safetensors, GGUF, zip and torch's legacy magic are recognised
by their signatures; anything else is a pickle when its first bytes run as a pickle prefix
(any opcode may start a stream: protocol 0 ``V``/``S``/``c``, or ``\\x80`` PROTO), and a
NumPy ``.npy`` whose dtype holds Python objects is a pickle behind a header. ``inspect``
does not stop at this guess: what the guess calls unknown is still run through the pickle
scanner (a tar, an ``.npy`` whose header outgrows the head, a long first opcode).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sdlib.hashing import safetensors_body_offset
from sdlib.taxonomy import Container

#: torch's legacy (pre-1.6) format starts with a pickled LONG of this magic number.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")
_NPY_OBJECT = re.compile(rb"'descr'\s*:\s*[^}]*'\|?O")
#: Errors that only mean the head ended inside a stream that may well go on.
_TRUNCATED = (
    "pickle ends without STOP",
    "truncated opcode argument",
    "length prefix runs past the end of the data",
)

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
    if head.startswith(b"\x93NUMPY") and _NPY_OBJECT.search(head):
        return Container.PICKLE  # numpy.load(allow_pickle=True) unpickles the rest
    if head and not looks_like_text_error(head) and pickle_prefix(head):
        return Container.PICKLE
    return Container.UNKNOWN


def pickle_prefix(head: bytes) -> bool:
    """True when ``head`` runs as the start of a pickle stream (or a whole one).

    The symbolic machine runs it (nothing is imported or called): a stream that stops, that
    breaks off only because the head ended, or that named a global before it broke (a
    loader has imported it by then: the "broken pickle" evasion) is a pickle; an invalid
    opcode or a malformed argument before any global is not.
    """
    from sdlib.files._pickle_ops import DISPATCH
    from sdlib.files._pickle_vm import Machine, PickleError

    if len(head) > 1 and head[0] not in DISPATCH:
        # What the machine decides at its first byte (no opcode: not a pickle), without
        # building one: a scan asks this of every safetensors file, whose first byte (its
        # header length's lowest) is an opcode about one time in four.
        return False
    named: set[str] = set()
    machine = Machine(head, entry="sniff", mode="plain", findings=[], globals_seen=named)
    try:
        machine.run(0)
    except PickleError as exc:
        return exc.reason in _TRUNCATED or machine.pos >= len(head) or bool(named)
    return True


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
