"""Find and run every pickle stream a loader could execute in one file.

Routing is by content, never by extension: a zip (torch archive, or any zip holding pickles),
the legacy torch format (five pickles then raw storages), a plain pickle (or several
concatenated), a NumPy ``.npy`` with pickled objects, or the torch 0.1 tar format. Each stream
runs in its own ``Machine`` (fresh memo, as each ``pickle.load`` call has).
"""

from __future__ import annotations

import ast
import io
import struct
import tarfile
from dataclasses import dataclass, field, replace

from sdlib.errors import FormatError
from sdlib.files._pickle_ops import DISPATCH
from sdlib.files._pickle_rules import Finding
from sdlib.files._pickle_values import StorageRef
from sdlib.files._pickle_vm import LIMITS, Buffer, Machine, PickleError
from sdlib.files._torchzip import ZipEntry, parse_zip, read_entry, torch_layout
from sdlib.taxonomy import Container, Verdict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_STREAMS = 1000
#: Opcodes run across all of a file's streams (zip members, concatenated pickles, npz).
MAX_FILE_OPCODES = 50_000_000
_PROBE_BYTES = 1 << 20
# Any opcode may start a stream a real unpickler would run (INST, SHORT_BINUNICODE...); the
# VM, not a guess from the first byte, decides what is a pickle.
_PICKLE_STARTS = frozenset(DISPATCH)
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


@dataclass(frozen=True)
class StorageData:
    """Where one storage's bytes live in the file (``offset`` of the stored/deflated bytes)."""

    offset: int
    nbytes: int
    compressed_size: int
    method: int  # 0 stored, 8 deflate
    crc: int | None  # zip CRC-32 to verify while reading (None or 0: none recorded)
    big_endian: bool = False


@dataclass
class ScanState:
    """What scanning one file accumulates."""

    container: Container = Container.UNKNOWN
    findings: list[Finding] = field(default_factory=list)
    globals_seen: set[str] = field(default_factory=set)
    entries: list[str] = field(default_factory=list)
    storages: dict[str, StorageRef] = field(default_factory=dict)
    data: dict[str, StorageData] = field(default_factory=dict)  # storage key -> bytes
    root: object = None
    has_root: bool = False
    parsed: int = 0  # streams that produced a value or at least imported something
    last_error: str = ""
    ops_left: int = MAX_FILE_OPCODES  # shared by every stream of the file

    def flag(
        self, entry: str, offset: int, severity: Verdict, reason: str, op: str = "layout"
    ) -> None:
        self.findings.append(Finding("", "", op, offset, entry, severity, reason))

    def run(
        self, buf: Buffer, start: int, entry: str, mode: str, end: int | None = None
    ) -> tuple[object, int] | None:
        """Run one stream; None when it breaks (findings up to the break are kept)."""
        self.entries.append(entry)
        machine = Machine(
            buf,
            entry=entry,
            mode=mode,
            findings=self.findings,
            globals_seen=self.globals_seen,
            storages=self.storages,
            limits=replace(LIMITS, opcodes=max(1, min(LIMITS.opcodes, self.ops_left))),
        )
        unsafe_before = self.unsafe_count()
        try:
            result = machine.run(start, end)
        except PickleError as exc:
            self.ops_left -= machine.ops
            if machine.imports or self.unsafe_count() > unsafe_before:
                # The classic evasion: payload first, then bytes that crash the scanner.
                reason = f"pickle breaks off ({exc.reason}) after importing: a loader ran it"
                self.flag(entry, exc.offset, Verdict.UNSAFE, reason, op="parse")
                self.parsed += 1
            else:
                self.entries.pop()
                self.last_error = f"{entry}: {exc}"
            return None
        self.ops_left -= machine.ops
        self.parsed += 1
        return result

    def unsafe_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Verdict.UNSAFE)


def looks_like_pickle(buf: Buffer, pos: int) -> bool:
    if pos >= len(buf):
        return False
    first = buf[pos]
    if first == 0x80:
        return pos + 1 < len(buf) and buf[pos + 1] <= 5
    return first in _PICKLE_STARTS


def scan_buffer(buf: Buffer) -> ScanState:
    """Route by magic bytes and scan every stream. FormatError when nothing is a pickle."""
    state = ScanState()
    head = bytes(buf[:64])
    if len(buf) == 0:
        raise FormatError("empty file")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        state.container = Container.PICKLE_ZIP
        _scan_zip(state, buf)
    elif head[:6] == b"7z\xbc\xaf\x27\x1c":
        raise FormatError("7z archive: not a model file torch can load (sdlib does not unpack it)")
    elif bytes(buf[257:262]) == b"ustar":
        state.container = Container.PICKLE_LEGACY
        _scan_tar(state, buf)
    elif head[:6] == b"\x93NUMPY":
        state.container = Container.PICKLE
        _scan_npy(state, buf, 0, "npy")
    elif looks_like_pickle(buf, 0):
        _scan_pickles(state, buf)
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


def _scan_pickles(state: ScanState, buf: Buffer) -> None:
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
    _scan_tail(state, buf, pos)


def _scan_tail(state: ScanState, buf: Buffer, pos: int) -> None:
    """Concatenated pickles: a second ``pickle.load`` on the same file runs the next one."""
    for _ in range(MAX_STREAMS):
        if pos >= len(buf):
            return
        label = f"pickle+{pos}"
        result = state.run(buf, pos, label, "plain") if looks_like_pickle(buf, pos) else None
        if result is None:
            state.flag(
                label,
                pos,
                Verdict.SUSPICIOUS,
                f"{len(buf) - pos} bytes of non-pickle data after the last pickle",
            )
            return
        pos = result[1]
    state.flag("", pos, Verdict.UNSAFE, "too many concatenated pickle streams")


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
                _scan_tail(state, buf, pos)
            return
        state.data[key] = StorageData(pos + 8, nbytes, nbytes, 0, None, big)
        pos += 8 + nbytes
    if pos != len(buf):
        state.flag("storage data", pos, Verdict.SUSPICIOUS, "bytes after the last storage")
        if looks_like_pickle(buf, pos):
            _scan_tail(state, buf, pos)


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


# --- zip -------------------------------------------------------------------------------------


def _scan_zip(state: ScanState, buf: Buffer) -> None:
    archive = parse_zip(buf)
    state.findings.extend(archive.findings)
    layout = torch_layout(buf, archive)
    state.findings.extend(layout.findings)
    big = layout.byteorder == "big"
    if layout.pickle is not None:
        data = _entry_bytes(state, buf, layout.pickle)
        if data is not None:
            result = state.run(data, 0, layout.pickle.name, "zip")
            if result is not None:
                state.root, state.has_root = result[0], True
                if result[1] != len(data):
                    state.flag(
                        layout.pickle.name, result[1], Verdict.SUSPICIOUS, "bytes after STOP"
                    )
                    _scan_tail(state, data, result[1])
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
            _scan_other_entry(state, buf, entry, layout.root)


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
        state.findings.extend(probe.findings)
        state.flag(record.name, 0, Verdict.UNSAFE, "storage record holds a hostile pickle")


def _entry_bytes(state: ScanState, buf: Buffer, entry: ZipEntry) -> bytes | None:
    name = entry.name
    try:
        data, crc_ok = read_entry(buf, entry)
    except FormatError as exc:
        state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable entry ({exc})")
        state.last_error = f"{name}: {exc}"
        return None
    if not crc_ok:
        state.flag(name, 0, Verdict.UNSAFE, "CRC mismatch: zipfile refuses it, torch reads it")
    return data


def _scan_other_entry(state: ScanState, buf: Buffer, entry: ZipEntry, root: str) -> None:
    name = entry.name
    record = name.partition("/")[2] if root and name.startswith(root + "/") else None
    if record in _QUIET_RECORDS:
        return
    if record and record.startswith("data/") and record[5:].isdigit():
        state.flag(name, 0, Verdict.SUSPICIOUS, "storage record that no tensor uses")
    if entry.size > (256 << 20):
        return
    data = _entry_bytes(state, buf, entry)
    if data is None:
        return
    if data[:6] == b"\x93NUMPY":
        try:
            _scan_npy(state, data, 0, name)
        except FormatError as exc:  # one bad member must not hide its siblings' findings
            state.flag(name, 0, Verdict.SUSPICIOUS, f"unreadable NumPy member ({exc})")
    elif name.endswith(".pkl") or looks_like_pickle(data, 0):
        if not name.endswith(".pkl"):
            state.flag(name, 0, Verdict.SUSPICIOUS, "pickle data under a non-pickle record name")
        result = state.run(data, 0, name, "plain")
        if result is not None and result[1] < len(data):
            _scan_tail(state, data, result[1])


# --- npy and tar -----------------------------------------------------------------------------


def _scan_npy(state: ScanState, buf: Buffer, pos: int, label: str) -> None:
    """A ``.npy`` whose dtype holds Python objects is a pickle behind a small header."""
    width = 2 if len(buf) > pos + 6 and buf[pos + 6] == 1 else 4
    start = pos + 8 + width
    if len(buf) < start:
        raise FormatError("corrupt NumPy header")
    (size,) = struct.unpack_from("<H" if width == 2 else "<I", buf, pos + 8)
    if size > 65536 or start + size > len(buf):
        raise FormatError("corrupt NumPy header")
    try:
        header = ast.literal_eval(bytes(buf[start : start + size]).decode("latin-1"))
    except (ValueError, SyntaxError) as exc:
        raise FormatError("corrupt NumPy header") from exc
    if not isinstance(header, dict) or "O" not in str(header.get("descr", "")):
        if state.container is Container.PICKLE:
            raise FormatError("a NumPy array without Python objects: not a pickle")
        return
    result = state.run(buf, start + size, f"{label}+{start + size}", "plain")
    if result is not None and result[1] < len(buf):
        _scan_tail(state, buf, result[1])


def _scan_tar(state: ScanState, buf: Buffer) -> None:
    """torch 0.1's tar format: refused, but its pickles are still read for the report."""
    fileobj = io.BytesIO(buf) if isinstance(buf, bytes) else buf
    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            for name in ("sys_info", "pickle", "storages", "tensors"):
                member = members.get(name)
                if member is None or member.size > (256 << 20):
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if looks_like_pickle(data, 0):
                    state.run(data, 0, name, "plain")
    except tarfile.TarError as exc:
        raise FormatError(f"corrupt tar archive ({exc})") from exc
    if "pickle" in members:
        state.flag(
            "pickle",
            0,
            Verdict.UNSAFE,
            "torch 0.1 tar checkpoint: torch.load unpickles more streams than sdlib "
            "validates; refused",
        )
        state.parsed += 1
