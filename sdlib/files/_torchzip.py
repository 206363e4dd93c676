"""A strict reader for PyTorch zip archives, over bytes or a read-only mmap.

Python's ``zipfile`` and torch's miniz reader disagree on many malformed archives (pickle-
security.md section 3.2): local-header names that differ from the central directory, encrypted or
"patched" flag bits, bad CRCs, duplicate names, data before the first entry or after the end
record. Each disagreement has been a scanner bypass, so this reader reports every one of them
(as a ``Finding``) instead of tolerating it, and reads entries exactly where torch would.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zlib
from dataclasses import dataclass

from sdlib.errors import FormatError
from sdlib.files._pickle_rules import Finding
from sdlib.files._pickle_vm import Buffer
from sdlib.taxonomy import Verdict

MAX_ENTRIES = 200_000  # an SDXL checkpoint has about 2,500
#: The most a pickle member may inflate to before sdlib reads it (torch's data.pkl for an
#: SDXL checkpoint is well under 1 MiB; whole pickled models a few MiB).
MAX_PICKLE_BYTES = 64 << 20
#: Deflated members may claim at most this ratio over their compressed size above the floor
#: (deflate tops out near 1032:1; torch.save never compresses at all).
BOMB_RATIO = 200
BOMB_FLOOR = 8 << 20
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_LOC64 = struct.Struct("<4sIQI")
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LFH = struct.Struct("<4sHHHHHIIIHH")
_ALLOWED_FLAGS = 0x0008 | 0x0800  # data descriptor, UTF-8 names
_FLAG_NAMES = {0x1: "encrypted", 0x20: "patched data", 0x40: "strong encryption"}
_TORCH_RECORDS = re.compile(
    r"(data\.pkl|data/[0-9]{1,40}|version|\.data/version|byteorder|\.data/serialization_id"
    r"|\.format_version|\.storage_alignment|data/|\.data/|)\Z"
)
_TORCHSCRIPT = re.compile(
    r"(constants\.pkl|bytecode\.pkl|attributes\.pkl|model\.json|code/.*|extra/.*)\Z"
)


@dataclass(frozen=True)
class ZipEntry:
    name: str
    header_offset: int
    data_offset: int
    compressed_size: int
    size: int
    method: int
    flags: int
    crc: int
    end: int  # first byte after the entry (data plus any data descriptor)


@dataclass(frozen=True)
class ZipArchive:
    entries: tuple[ZipEntry, ...]
    findings: tuple[Finding, ...]
    cd_offset: int

    def get(self, name: str) -> ZipEntry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None


def _flag(findings: list[Finding], entry: str, offset: int, severity: Verdict, reason: str) -> None:
    findings.append(Finding("", "", "zip", offset, entry, severity, reason))


def _find_eocd(buf: Buffer, findings: list[Finding]) -> int:
    """The end record whose comment reaches the end of the file; or, like miniz, the last
    plausible one (reported: bytes after it are invisible to readers that stop there)."""
    size = len(buf)
    start = max(0, size - (22 + 0xFFFF) - (1 << 20))
    pos = buf.rfind(b"PK\x05\x06", start)
    fallback = -1
    while pos >= 0:
        if pos + 22 <= size:
            end = pos + 22 + _EOCD.unpack_from(buf, pos)[7]
            if end == size:
                return pos
            if end < size and fallback < 0:
                fallback = pos
        pos = buf.rfind(b"PK\x05\x06", start, pos)
    if fallback < 0:
        raise FormatError("not a valid zip archive (no end-of-central-directory record)")
    _flag(findings, "", fallback, Verdict.UNSAFE, "bytes after the zip end record")
    return fallback


def _directory_bounds(buf: Buffer, eocd: int) -> tuple[int, int, int, int]:
    """(entry count, cd offset, cd size, where the CD must end) honouring zip64."""
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(buf, eocd)
    if disk or cd_disk:
        raise FormatError("multi-disk zip archives are not model files")
    cd_end = eocd
    loc = eocd - _LOC64.size
    if loc >= 0 and buf[loc : loc + 4] == b"PK\x06\x07":
        eocd64 = _LOC64.unpack_from(buf, loc)[2]
        if eocd64 + _EOCD64.size > loc or buf[eocd64 : eocd64 + 4] != b"PK\x06\x06":
            raise FormatError("corrupt zip64 end record")
        fields = _EOCD64.unpack_from(buf, eocd64)
        count, cd_size, cd_offset = fields[7], fields[8], fields[9]
        cd_end = eocd64
    return count, cd_offset, cd_size, cd_end


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 0x0001:
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        pos += 4 + length
    return usize, csize, offset


def parse_zip(buf: Buffer) -> ZipArchive:
    """Parse the central directory and every local header; report each inconsistency."""
    try:
        return _parse_zip(buf)
    except struct.error as exc:
        raise FormatError("corrupt zip archive (a header runs past the end)") from exc


def _parse_zip(buf: Buffer) -> ZipArchive:
    findings: list[Finding] = []
    eocd = _find_eocd(buf, findings)
    count, cd_offset, cd_size, cd_end = _directory_bounds(buf, eocd)
    if count > MAX_ENTRIES or cd_offset + cd_size > cd_end:
        raise FormatError("corrupt zip central directory (bad offset or size)")
    if cd_offset + cd_size < cd_end:
        _flag(findings, "", cd_offset + cd_size, Verdict.UNSAFE, "bytes hidden after the directory")
    entries: list[ZipEntry] = []
    pos = cd_offset
    for _ in range(count):
        entry, pos = _central_entry(buf, pos, cd_offset, findings)
        entries.append(entry)
    if pos != cd_offset + cd_size:
        raise FormatError("corrupt zip central directory (entry count and size disagree)")
    _check_coverage(entries, cd_offset, findings)
    _check_names(entries, findings)
    return ZipArchive(tuple(entries), tuple(findings), cd_offset)


def _central_entry(
    buf: Buffer, pos: int, cd_offset: int, findings: list[Finding]
) -> tuple[ZipEntry, int]:
    if buf[pos : pos + 4] != b"PK\x01\x02":
        raise FormatError("corrupt zip central directory (bad entry signature)")
    f = _CDH.unpack_from(buf, pos)
    flags, method, crc, csize, usize = f[3], f[4], f[7], f[8], f[9]
    name_len, extra_len, comment_len, offset = f[10], f[11], f[12], f[16]
    raw_name = bytes(buf[pos + 46 : pos + 46 + name_len])
    extra = bytes(buf[pos + 46 + name_len : pos + 46 + name_len + extra_len])
    usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        name = raw_name.decode("cp437")
        _flag(findings, name, offset, Verdict.UNSAFE, "entry name is not UTF-8")
    next_pos = pos + 46 + name_len + extra_len + comment_len
    if offset + _LFH.size > cd_offset:
        raise FormatError(f"corrupt zip entry {name!r} (offset outside the archive)")
    if flags & ~_ALLOWED_FLAGS:
        bits = [v for k, v in _FLAG_NAMES.items() if flags & k] or [f"0x{flags:04x}"]
        _flag(
            findings,
            name,
            offset,
            Verdict.UNSAFE,
            f"flag bits {', '.join(bits)}: zip readers disagree on this entry",
        )
    if method not in (0, 8):
        raise FormatError(f"zip entry {name!r} uses compression method {method}")
    if method == 0 and csize != usize:
        _flag(findings, name, offset, Verdict.UNSAFE, "stored entry with two different sizes")
    if is_bomb(method, csize, usize):
        reason = f"claims {usize} bytes from {csize} compressed (a zip bomb)"
        _flag(findings, name, offset, Verdict.UNSAFE, reason)
    data_offset = _check_local(buf, offset, raw_name, flags, method, (crc, csize, usize), findings)
    end = data_offset + csize
    if end > cd_offset:
        raise FormatError(f"zip entry {name!r} runs into the central directory")
    if flags & 0x0008:
        end += _descriptor_length(buf, end, (crc, csize, usize))
    return ZipEntry(name, offset, data_offset, csize, usize, method, flags, crc, end), next_pos


def _check_local(
    buf: Buffer,
    offset: int,
    raw_name: bytes,
    flags: int,
    method: int,
    sizes: tuple[int, int, int],
    findings: list[Finding],
) -> int:
    """Compare the local header with the central one (torch reads the central, zipfile both)."""
    if buf[offset : offset + 4] != b"PK\x03\x04":
        raise FormatError("corrupt zip archive (local header missing)")
    _, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, name_len, extra_len = _LFH.unpack_from(
        buf, offset
    )
    lname = bytes(buf[offset + 30 : offset + 30 + name_len])
    name = raw_name.decode("utf-8", "replace")
    extra = bytes(buf[offset + 30 + name_len : offset + 30 + name_len + extra_len])
    lusize, lcsize, _ = _zip64_extra(extra, lusize, lcsize, 0)
    if lname != raw_name:
        _flag(findings, name, offset, Verdict.UNSAFE, "local header names a different file")
    if lflags != flags or lmethod != method:
        _flag(findings, name, offset, Verdict.UNSAFE, "local header flags or method differ")
    local = (lcrc, lcsize, lusize)
    if flags & 0x0008:  # sizes follow the data; writers leave some or all local fields zero
        local = (lcrc or sizes[0], lcsize or sizes[1], lusize or sizes[2])
    if local != sizes:
        _flag(findings, name, offset, Verdict.UNSAFE, "local header CRC or sizes differ")
    return int(offset + 30 + name_len + extra_len)


def _descriptor_length(buf: Buffer, pos: int, sizes: tuple[int, int, int]) -> int:
    signed = buf[pos : pos + 4] == b"PK\x07\x08"
    base = pos + 4 if signed else pos
    for width, fmt in ((4, "<III"), (8, "<IQQ")):
        if base + 4 + 2 * width <= len(buf) and struct.unpack_from(fmt, buf, base) == sizes:
            return (4 if signed else 0) + 4 + 2 * width
    return 0  # no matching descriptor: the coverage check reports the unlisted bytes


def _check_coverage(entries: list[ZipEntry], cd_offset: int, findings: list[Finding]) -> None:
    """Entries must tile the file from byte 0 to the directory: no prefix, gap or overlap."""
    expected = 0
    for entry in sorted(entries, key=lambda e: e.header_offset):
        if entry.header_offset > expected:
            where = "before the first entry" if expected == 0 else "between entries"
            _flag(findings, entry.name, expected, Verdict.UNSAFE, f"unlisted bytes {where}")
        elif entry.header_offset < expected:
            _flag(findings, entry.name, entry.header_offset, Verdict.UNSAFE, "entries overlap")
        expected = max(expected, entry.end)
    if expected < cd_offset:
        _flag(findings, "", expected, Verdict.UNSAFE, "unlisted bytes before the directory")


def _check_names(entries: list[ZipEntry], findings: list[Finding]) -> None:
    seen: set[str] = set()
    for entry in entries:
        name = entry.name
        bad = (
            not name
            or "\x00" in name
            or "\\" in name
            or name.startswith("/")
            or ".." in name.split("/")
            or not name.isprintable()
        )
        if bad:
            _flag(findings, name, entry.header_offset, Verdict.UNSAFE, "unsafe entry name")
        key = posixpath.normpath(name).casefold() + ("/" if name.endswith("/") else "")
        if key in seen:
            _flag(
                findings,
                name,
                entry.header_offset,
                Verdict.UNSAFE,
                "duplicate entry name: which copy a reader uses is undefined",
            )
        seen.add(key)


class TooLarge(FormatError):
    """A member sdlib will not read whole: over the size cap, or a deflate bomb."""


def is_bomb(method: int, compressed: int, size: int) -> bool:
    return method == 8 and size > BOMB_FLOOR and size > BOMB_RATIO * max(compressed, 1)


def read_entry(buf: Buffer, entry: ZipEntry, limit: int = MAX_PICKLE_BYTES) -> tuple[bytes, bool]:
    """The entry's bytes (inflated if needed, bounded) and whether its CRC matches.

    Nothing beyond the declared size is ever inflated, and the declared size must be under
    ``limit`` and a plausible ratio of the compressed size (``TooLarge`` otherwise), so a
    member lying about its size costs at most ``limit`` bytes of memory.
    """
    if entry.size > limit or entry.compressed_size > limit:
        raise TooLarge(f"zip entry {entry.name!r} is {entry.size} bytes: too large to scan")
    if is_bomb(entry.method, entry.compressed_size, entry.size):
        raise TooLarge(f"zip entry {entry.name!r} claims {entry.size} bytes (a zip bomb)")
    if entry.method == 8:
        inflater = zlib.decompressobj(-15)
        raw = buf[entry.data_offset : entry.data_offset + entry.compressed_size]
        try:
            data = inflater.decompress(raw, entry.size + 1)
        except zlib.error as exc:
            raise FormatError(f"zip entry {entry.name!r} does not inflate") from exc
        if len(data) != entry.size:
            raise FormatError(f"zip entry {entry.name!r} inflates to a different size")
    else:
        data = bytes(buf[entry.data_offset : entry.data_offset + entry.compressed_size])
    return data, entry.crc == 0 or zlib.crc32(data) == entry.crc


def entry_head(buf: Buffer, entry: ZipEntry, n: int = 64) -> bytes:
    """The first ``n`` bytes of an entry, inflating no more than needed."""
    start = entry.data_offset
    if entry.method != 8:
        return bytes(buf[start : start + min(n, entry.compressed_size)])
    raw = buf[start : start + min(entry.compressed_size, 1 << 16)]
    try:
        return zlib.decompressobj(-15).decompress(raw, n)
    except zlib.error as exc:
        raise FormatError(f"zip entry {entry.name!r} does not inflate") from exc


@dataclass(frozen=True)
class TorchLayout:
    """Where torch would look: the root folder, ``data.pkl`` and the storage records."""

    root: str
    pickle: ZipEntry | None
    records: dict[str, ZipEntry]  # storage key -> entry
    byteorder: str
    findings: tuple[Finding, ...]


def torch_layout(buf: Buffer, archive: ZipArchive) -> TorchLayout:
    """Map the archive onto torch's record names (root = first entry's folder, as miniz does)."""
    findings: list[Finding] = []
    first = archive.entries[0].name if archive.entries else ""
    root = first.split("/", 1)[0] if "/" in first else ""
    records: dict[str, ZipEntry] = {}
    byteorder = "little"
    # In a torch archive a second root is a reader differential (which data.pkl is "the" one
    # depends on the reader); in other zips (npz) it is merely unusual.
    is_torch = bool(root) and archive.get(f"{root}/data.pkl") is not None
    severity = Verdict.UNSAFE if is_torch else Verdict.SUSPICIOUS
    for entry in archive.entries:
        folder, _, record = entry.name.partition("/")
        if not root or folder != root:
            _flag(
                findings,
                entry.name,
                entry.header_offset,
                severity,
                "entry outside the archive's root folder (torch ignores it)",
            )
            continue
        if _TORCHSCRIPT.match(record):
            _flag(
                findings,
                entry.name,
                entry.header_offset,
                Verdict.UNSAFE,
                "TorchScript archive: torch.jit.load runs its code (CVE-2025-32434)",
            )
        elif not _TORCH_RECORDS.match(record) and not record.endswith(".pkl"):
            _flag(
                findings,
                entry.name,
                entry.header_offset,
                Verdict.SUSPICIOUS,
                "record torch.save never writes",
            )
        if record.startswith("data/") and record[5:].isdigit():
            records[record[5:]] = entry
        elif record == "byteorder":
            value = read_entry(buf, entry, 16)[0] if entry.size <= 16 else b"?"
            if value.decode("ascii", "replace") in ("little", "big"):
                byteorder = value.decode("ascii")
            else:
                _flag(findings, entry.name, 0, Verdict.UNSAFE, "byteorder is not little or big")
    pickle = archive.get(f"{root}/data.pkl") if root else None
    return TorchLayout(root, pickle, records, byteorder, tuple(findings))
