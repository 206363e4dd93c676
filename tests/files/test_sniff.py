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
        # Protocol 0/1 streams open with any opcode (picklescan malicious11 and malicious23).
        (b"Vposix\nVsystem\n\x93(Vls\ntR.", 100, Container.PICKLE),
        (b"S'posix'\nS'system'\n\x93", 100, Container.PICKLE),
        (b"(S'ls'\niposix\nsystem\n.", 100, Container.PICKLE),
        (b"\x8c\x05posix\x8c\x06system\x93", 100, Container.PICKLE),  # protocol 4, no PROTO
        # A payload, then bytes that break the stream: a loader has imported it by then.
        (b"\x80\x04cos\nsystem\nVecho\n\x85R0\x8c\x02os\x94h\x03", 100, Container.PICKLE),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False,", 400, Container.PICKLE),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False", 400, Container.UNKNOWN),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 100, Container.UNKNOWN),
        (b"version https://git-lfs.github.com/spec/v1\n", 100, Container.UNKNOWN),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", 100, Container.UNKNOWN),
    ],
)
def test_sniff(head: bytes, size: int, container: Container) -> None:
    assert sniff_bytes(head, size) is container


def test_error_pages_are_recognised() -> None:
    assert looks_like_text_error(b"  <!doctype html>")
    assert looks_like_text_error(b'{"error":"Model not found"}')
    assert not looks_like_text_error(struct.pack("<Q", 2) + b"{}")


def test_a_head_whose_first_byte_is_no_opcode_is_no_pickle() -> None:
    """Judged by CPython's own opcode table (pickletools) and unpickler: a first byte no
    unpickler knows is refused at once ("invalid load key"), so such a head is not a
    pickle: the short cut a scan takes for every safetensors file (whose first byte, its
    header length's lowest, is an opcode about one time in four)."""
    import pickle
    import pickletools

    from sdlib.files.sniff import pickle_prefix

    codes = {op.code.encode("latin-1")[0] for op in pickletools.opcodes}
    others = [b for b in range(256) if b not in codes]
    assert len(others) > 150
    for first in others:
        head = bytes([first]) + b"\x00" * 7 + b'{"__metadata__":{"format":"pt"}}'
        assert pickle_prefix(head) is False, first
        with pytest.raises(pickle.UnpicklingError, match="invalid load key"):
            pickle.loads(head)  # safe: the unpickler stops at the first byte
