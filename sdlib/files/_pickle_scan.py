"""Find and run every pickle stream a loader could execute in one file.

Routing is by content, never by extension: a zip (torch archive, or any zip holding pickles,
nested zips included), the legacy torch format (five pickles then raw storages), a plain
pickle starting with any opcode (or several concatenated), a NumPy ``.npy`` with pickled
objects, or the torch 0.1 tar format. Each stream runs in its own ``Machine`` (fresh memo,
as each ``pickle.load`` call has). Archives are read by ``_pickle_archive``.
"""

from __future__ import annotations

import struct

from sdlib.errors import FormatError
from sdlib.files._pickle_archive import scan_npy, scan_tar, scan_zip
from sdlib.files._pickle_state import (
    ScanState,
    StorageData,
    looks_like_pickle,
    scan_tail,
)
from sdlib.files._pickle_vm import Buffer
from sdlib.taxonomy import Container, Verdict

__all__ = ["ScanState", "StorageData", "scan_buffer"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def scan_buffer(buf: Buffer, *, polyglot: bool = True) -> ScanState:
    """Route by magic bytes and scan every stream. FormatError when nothing is a pickle.
    ``polyglot``: also look for a zip archive appended to a plain pickle (a caller asking
    only whether the front runs as a hostile pickle skips it: it reads the file's end)."""
    state = ScanState()
    head = bytes(buf[:64])
    if len(buf) == 0:
        raise FormatError("empty file")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        state.container = Container.PICKLE_ZIP
        scan_zip(state, buf)
    elif head[:6] == b"7z\xbc\xaf\x27\x1c":
        raise FormatError("7z archive: not a model file torch can load (sdlib does not unpack it)")
    elif bytes(buf[257:262]) == b"ustar":
        state.container = Container.PICKLE_LEGACY
        scan_tar(state, buf)
        if looks_like_pickle(buf, 0):  # a tar header can also open a pickle (pickle.load)
            state.run(buf, 0, "pickle", "plain")
    elif head[:6] == b"\x93NUMPY":
        state.container = Container.PICKLE
        scan_npy(state, buf, 0, "npy")
    elif looks_like_pickle(buf, 0):
        _scan_pickles(state, buf, polyglot)
    else:
        raise FormatError(_not_a_pickle(head))
    if not state.parsed:
        if state.container is Container.PICKLE:
            raise FormatError(f"{_not_a_pickle(head)}: {state.last_error}")
        raise FormatError(f"not a readable pickle ({state.last_error or 'no pickle stream'})")
    return state


def _not_a_pickle(head: bytes) -> str:
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the model file"
    if len(head) >= 8 and struct.unpack("<Q", head[:8])[0] < (100 << 20) and head[0:1] != b"\x80":
        return "not a pickle (looks like safetensors or another binary format)"
    return "not a pickle (unknown file format)"


# --- plain and legacy ------------------------------------------------------------------------


def _scan_pickles(state: ScanState, buf: Buffer, polyglot: bool = True) -> None:
    if polyglot:
        _check_polyglot(state, buf)
    state.container = Container.PICKLE
    first = state.run(buf, 0, "pickle", "plain")
    if first is None:
        return
    value, pos = first
    if type(value) is int and value == LEGACY_MAGIC and state.globals_seen == set():
        state.container = Container.PICKLE_LEGACY
        state.entries[-1] = "magic"
        _scan_legacy(state, buf, pos)
        return
    state.root, state.has_root = value, True
    scan_tail(state, buf, pos)


def _scan_legacy(state: ScanState, buf: Buffer, pos: int) -> None:
    """torch's ``_legacy_load``: magic, protocol, sys_info, the object, the storage keys."""
    values: list[object] = []
    for label, mode in (
        ("protocol", "plain"),
        ("sys_info", "plain"),
        ("main", "legacy"),
        ("storage_keys", "plain"),
    ):
        result = state.run(buf, pos, label, mode)
        if result is None:
            return
        values.append(result[0])
        pos = result[1]
    protocol, sys_info, main, keys = values
    if protocol != LEGACY_PROTOCOL:
        state.flag("protocol", 0, Verdict.SUSPICIOUS, "unexpected legacy protocol version")
    big = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
    state.root, state.has_root = main, True
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        state.flag("storage_keys", pos, Verdict.UNSAFE, "storage key list is not a list of strings")
        return
    _legacy_storages(state, buf, pos, keys, big)


def _legacy_storages(state: ScanState, buf: Buffer, pos: int, keys: list[str], big: bool) -> None:
    for key in keys:
        ref = state.storages.get(key)
        if ref is None or pos + 8 > len(buf):
            state.flag(
                "storage_keys", pos, Verdict.SUSPICIOUS, f"storage {key!r} missing or truncated"
            )
            return
        (count,) = struct.unpack_from(">q" if big else "<q", buf, pos)
        nbytes = count * ref.itemsize
        if count != ref.numel or pos + 8 + nbytes > len(buf):
            state.flag(
                f"storage {key}",
                pos,
                Verdict.UNSAFE,
                "declared element count does not match the stored data",
            )
            if looks_like_pickle(buf, pos):  # an extra stream hidden before the data
                scan_tail(state, buf, pos)
            return
        state.data[key] = StorageData(pos + 8, nbytes, nbytes, 0, None, big)
        pos += 8 + nbytes
    if pos != len(buf):
        state.flag("storage data", pos, Verdict.SUSPICIOUS, "bytes after the last storage")
        if looks_like_pickle(buf, pos):
            scan_tail(state, buf, pos)


def _check_polyglot(state: ScanState, buf: Buffer) -> None:
    """A zip appended to a pickle: zipfile-based checkers read it, torch unpickles the front."""
    size = len(buf)
    start = max(0, size - (22 + 0xFFFF))
    pos = buf.rfind(b"PK\x05\x06", start)
    while pos >= 0:
        # A real end record: its comment length reaches exactly the end of the file.
        if pos + 22 <= size and pos + 22 + struct.unpack_from("<H", buf, pos + 20)[0] == size:
            reason = "a zip archive is appended to the pickle (polyglot)"
            state.flag("", pos, Verdict.UNSAFE, reason)
            return
        pos = buf.rfind(b"PK\x05\x06", start, pos)
