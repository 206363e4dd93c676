"""The pickle streams inside archives: torch zips, any zip (nested too), ``.npy``/``.npz``, tar.

A torch archive's ``data.pkl`` is run against its storage records; every other member is
judged by its content, never its name: a pickle (any opcode may start one), a ``.npy`` whose
dtype holds objects (``numpy.load(allow_pickle=True)`` unpickles it), or another zip (read
to a small depth). Nothing is inflated past its declared size or a size cap, and a member
too large to read that could hold a pickle is reported (unsafe for ``data.pkl``, which torch
unpickles whole), never skipped as if it were clean.
"""

from __future__ import annotations

import ast
import io
import re
import struct
import tarfile
from dataclasses import replace

from sdlib.errors import FormatError
from sdlib.files._pickle_rules import Finding
from sdlib.files._pickle_state import ScanState, StorageData, looks_like_pickle, scan_tail
from sdlib.files._pickle_vm import Buffer
from sdlib.files._torchzip import (
    MAX_PICKLE_BYTES,
    TooLarge,
    ZipEntry,
    entry_head,
    is_bomb,
    parse_zip,
    read_entry,
    torch_layout,
)
from sdlib.taxonomy import Container, Verdict

__all__ = ["MAX_NPY_HEADER", "MAX_ZIP_DEPTH", "scan_npy", "scan_tar", "scan_zip"]

#: Zips inside zips are read this deep (each level is a full scan of the inner archive).
MAX_ZIP_DEPTH = 3
#: numpy's own default ``max_header_size`` (``numpy.lib.format``); a longer header is not
#: parsed (``ast.literal_eval`` on it can exhaust memory), only reported.
MAX_NPY_HEADER = 10_000
MAX_TAR_MEMBERS = 10_000
_PROBE_BYTES = 1 << 20
_NPY_OBJECT = re.compile(r"'[|<>=]?O[0-9]*'")
_QUIET_RECORDS = frozenset(
    {
        "version",
        ".data/version",
        "byteorder",
        ".data/serialization_id",
        ".format_version",
        ".storage_alignment",
        "",
        "data/",
        ".data/",
    }
)


# --- zip -------------------------------------------------------------------------------------


def scan_zip(state: ScanState, buf: Buffer) -> None:
    archive = parse_zip(buf)
    state.add(archive.findings)
    layout = torch_layout(buf, archive)
    state.add(layout.findings)
    big = layout.byteorder == "big"
    if layout.pickle is not None:
        _scan_data_pkl(state, buf, layout.pickle)
    for key, ref in state.storages.items():
        record = layout.records.get(key)
        if record is None:
            state.flag(
                layout.pickle.name if layout.pickle else "",
                0,
                Verdict.UNSAFE,
                f"storage {key} has no data record",
            )
        elif record.size != ref.nbytes:
            state.flag(
                record.name,
                0,
                Verdict.UNSAFE,
                "declared element count does not match the record size",
            )
        else:
            state.data[key] = StorageData(
                record.data_offset,
                record.size,
                record.compressed_size,
                record.method,
                record.crc or None,
                big,
            )
    used = {layout.pickle.header_offset} if layout.pickle else set()
    for key in state.storages:
        record = layout.records.get(key)
        if record is not None:
            used.add(record.header_offset)
            _sniff_storage(state, buf, record)
    for entry in archive.entries:
        if entry.header_offset not in used:
            _scan_member(state, buf, entry, layout.root, "", 0)


def _scan_data_pkl(state: ScanState, buf: Buffer, entry: ZipEntry) -> None:
    if entry.size > MAX_PICKLE_BYTES or is_bomb(entry.method, entry.compressed_size, entry.size):
        # torch.load unpickles it whatever its size: what sdlib cannot read is not safe.
        reason = f"{entry.size}-byte pickle too large to scan (torch would unpickle it)"
        state.flag(entry.name, 0, Verdict.UNSAFE, reason)
        state.parsed += 1
        return
    data = _entry_bytes(state, buf, entry, entry.name)
    if data is None:
        return
    result = state.run(data, 0, entry.name, "zip")
    if result is not None:
        state.root, state.has_root = result[0], True
        if result[1] != len(data):
            state.flag(entry.name, result[1], Verdict.SUSPICIOUS, "bytes after STOP")
            scan_tail(state, data, result[1])


def _sniff_storage(state: ScanState, buf: Buffer, record: ZipEntry) -> None:
    """A storage record that is itself a hostile pickle (for loaders that unpickle records).

    Only a *complete* pickle with unsafe content in the record's first MiB is reported: tensor
    bytes that merely start like an opcode are ordinary data. Only that window is read, so
    the scan never pages in a big model's tensor data.
    """
    start = record.data_offset
    first = buf[start : start + 2]
    plausible = first[:1] in (b"(", b"c", b"]", b"}") or (
        first[:1] == b"\x80" and first[1:] <= b"\x05"
    )
    if record.method != 0 or record.size < 2 or not plausible:
        return
    window = bytes(buf[record.data_offset : record.data_offset + min(record.size, _PROBE_BYTES)])
    probe = ScanState()
    result = probe.run(window, 0, record.name, "plain")
    if result is not None and probe.unsafe_count():
        state.add(probe.findings)
        state.flag(record.name, 0, Verdict.UNSAFE, "storage record holds a hostile pickle")


def _entry_bytes(state: ScanState, buf: Buffer, entry: ZipEntry, name: str) -> bytes | None:
    try:
        data, crc_ok = read_entry(buf, entry)
    except FormatError as exc:
        state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable entry ({exc})")
        state.last_error = f"{name}: {exc}"
        return None
    if not crc_ok:
        state.flag(name, 0, Verdict.UNSAFE, "CRC mismatch: zipfile refuses it, torch reads it")
    return data


def _member_kind(head: bytes, name: str) -> str | None:
    """What a loader could unpickle from a member that starts with ``head``."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if name.endswith(".pkl") or looks_like_pickle(head, 0):
        return "pickle"
    return None


def _scan_member(
    state: ScanState, buf: Buffer, entry: ZipEntry, root: str, prefix: str, depth: int
) -> None:
    """Any member but data.pkl and the storages: judged by its content, never its name."""
    name = prefix + entry.name
    record = entry.name.partition("/")[2] if root and entry.name.startswith(root + "/") else None
    if record in _QUIET_RECORDS:
        return
    if record and record.startswith("data/") and record[5:].isdigit():
        state.flag(name, 0, Verdict.SUSPICIOUS, "storage record that no tensor uses")
    try:
        kind = _member_kind(entry_head(buf, entry), entry.name)
    except FormatError as exc:
        state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable entry ({exc})")
        return
    if kind is None or (kind == "npy" and not _npy_may_hold_objects(buf, entry)):
        return  # a plain numeric .npy member is never read whole
    try:
        data, crc_ok = read_entry(buf, entry)
    except TooLarge as exc:
        reason = f"a member that may hold a pickle is not scanned ({exc})"
        state.flag(name, 0, Verdict.SUSPICIOUS, reason)
        state.parsed += 1  # judged: never "safe", never "not a pickle"
        return
    except FormatError as exc:
        state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable entry ({exc})")
        state.last_error = f"{name}: {exc}"
        return
    if not crc_ok:
        state.flag(name, 0, Verdict.UNSAFE, "CRC mismatch: zipfile refuses it, torch reads it")
    if kind == "zip":
        _scan_nested_zip(state, data, name, depth + 1)
    elif kind == "npy":
        try:
            scan_npy(state, data, 0, name)
        except FormatError as exc:  # one bad member must not hide its siblings' findings
            state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable NumPy member ({exc})")
    else:
        if not entry.name.endswith(".pkl"):
            state.flag(name, 0, Verdict.SUSPICIOUS, "pickle data under a non-pickle record name")
        result = state.run(data, 0, name, "plain")
        if result is not None and result[1] < len(data):
            scan_tail(state, data, result[1])


def _scan_nested_zip(state: ScanState, data: bytes, name: str, depth: int) -> None:
    """A zip inside a zip: every member judged the same way, entries named ``outer/inner``."""
    if depth > MAX_ZIP_DEPTH:
        state.flag(name, 0, Verdict.SUSPICIOUS, "zip nested too deeply to scan")
        state.parsed += 1
        return
    try:
        archive = parse_zip(data)
    except FormatError as exc:
        state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable nested zip ({exc})")
        return
    prefix = name + "/"
    state.add(_prefixed(f, prefix) for f in archive.findings)
    for entry in archive.entries:
        _scan_member(state, data, entry, "", prefix, depth)


def _prefixed(finding: Finding, prefix: str) -> Finding:
    return replace(finding, entry=prefix + finding.entry)


# --- npy and tar -----------------------------------------------------------------------------


def scan_npy(state: ScanState, buf: Buffer, pos: int, label: str) -> None:
    """A ``.npy`` whose dtype holds Python objects is a pickle behind a small header."""
    width = 2 if len(buf) > pos + 6 and buf[pos + 6] == 1 else 4
    start = pos + 8 + width
    if len(buf) < start:
        raise FormatError("corrupt NumPy header")
    (size,) = struct.unpack_from("<H" if width == 2 else "<I", buf, pos + 8)
    if start + size > len(buf):
        raise FormatError("corrupt NumPy header")
    text = bytes(buf[start : start + min(size, MAX_NPY_HEADER + 1)]).decode("latin-1")
    if size > MAX_NPY_HEADER:
        # numpy.load refuses it unless allow_pickle=True, which is exactly when it would
        # unpickle the body: judge the body instead of parsing the header.
        reason = f"{size}-byte NumPy header (numpy's limit is {MAX_NPY_HEADER})"
        state.flag(label, 0, Verdict.SUSPICIOUS, reason)
        objects = looks_like_pickle(buf, start + size)
    else:
        objects = _npy_objects(text)
    if not objects:
        if state.container is Container.PICKLE:
            raise FormatError("a NumPy array without Python objects: not a pickle")
        return
    result = state.run(buf, start + size, f"{label}+{start + size}", "plain")
    if result is not None and result[1] < len(buf):
        scan_tail(state, buf, result[1])
    elif result is None and size > MAX_NPY_HEADER:
        state.parsed += 1  # the oversized header alone keeps the verdict off "safe"


def _npy_may_hold_objects(buf: Buffer, entry: ZipEntry) -> bool:
    """From a member's first bytes only: False for a well-formed header without objects."""
    head = entry_head(buf, entry, 12 + MAX_NPY_HEADER)
    width = 2 if len(head) > 6 and head[6] == 1 else 4
    start = 8 + width
    if len(head) < start:
        return True  # let the full read report what is wrong
    (size,) = struct.unpack_from("<H" if width == 2 else "<I", head, 8)
    if size > MAX_NPY_HEADER or start + size > len(head):
        return True
    try:
        return _npy_objects(head[start : start + size].decode("latin-1"))
    except FormatError:
        return True


def _npy_objects(text: str) -> bool:
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise FormatError("corrupt NumPy header") from exc
    if not isinstance(header, dict):
        raise FormatError("corrupt NumPy header")
    return bool(_NPY_OBJECT.search(repr(header.get("descr", ""))))


def scan_tar(state: ScanState, buf: Buffer) -> None:
    """torch 0.1's tar format: refused, but its pickles are still read for the report."""
    fileobj = io.BytesIO(buf) if isinstance(buf, bytes) else buf
    names: set[str] = set()
    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            for _ in range(MAX_TAR_MEMBERS):
                member = tar.next()
                if member is None:
                    break
                if not member.isfile() or member.name not in {
                    "sys_info", "pickle", "storages", "tensors"
                }:  # fmt: skip
                    continue
                names.add(member.name)
                if member.size > MAX_PICKLE_BYTES:
                    reason = f"{member.size}-byte member too large to scan"
                    state.flag(member.name, 0, Verdict.SUSPICIOUS, reason)
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if looks_like_pickle(data, 0):
                    state.run(data, 0, member.name, "plain")
    except tarfile.TarError as exc:
        raise FormatError(f"corrupt tar archive ({exc})") from exc
    if "pickle" in names:
        state.flag(
            "pickle",
            0,
            Verdict.UNSAFE,
            "torch 0.1 tar checkpoint: torch.load unpickles more streams than sdlib "
            "validates; refused",
        )
        state.parsed += 1
