"""What scanning one file accumulates, and running one pickle stream of it.

Shared by the router (``_pickle_scan``: plain, legacy and polyglot files) and the archive
readers (``_pickle_archive``: zip members, nested zips, ``.npy``/``.npz``, torch's tar).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sdlib.files._pickle_ops import DISPATCH
from sdlib.files._pickle_rules import Finding
from sdlib.files._pickle_values import StorageRef
from sdlib.files._pickle_vm import LIMITS, Buffer, Machine, PickleError
from sdlib.taxonomy import Container, Verdict

MAX_STREAMS = 1000
#: Opcodes run across all of a file's streams (zip members, concatenated pickles, npz).
MAX_FILE_OPCODES = 50_000_000
# Any opcode may start a stream a real unpickler would run (INST, SHORT_BINUNICODE...); the
# VM, not a guess from the first byte, decides what is a pickle.
_PICKLE_STARTS = frozenset(DISPATCH)
_RAISES_AT_ONCE = frozenset({"EXT1", "EXT2", "EXT4", "NEXT_BUFFER"})


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
    deadline: float = field(default_factory=lambda: time.thread_time() + LIMITS.seconds)

    def flag(
        self, entry: str, offset: int, severity: Verdict, reason: str, op: str = "layout"
    ) -> None:
        self.add([Finding("", "", op, offset, entry, severity, reason)])

    def add(self, findings: Iterable[Finding]) -> None:
        """Record findings, listing at most ``LIMITS.findings`` (a zip of a million odd
        entries would otherwise cost memory, not news) but always a first unsafe one."""
        cap = LIMITS.findings
        for finding in findings:
            if len(self.findings) < cap:
                self.findings.append(finding)
                continue
            if len(self.findings) == cap:
                why = "more findings than sdlib lists (the rest are not shown)"
                self.findings.append(Finding("", "", "limit", 0, "", Verdict.SUSPICIOUS, why))
            if finding.severity is Verdict.UNSAFE and not any(
                f.severity is Verdict.UNSAFE for f in self.findings[cap:]
            ):
                self.findings.append(finding)

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
            deadline=self.deadline,
        )
        before = len(self.findings)
        try:
            result = machine.run(start, end)
        except PickleError as exc:
            self.ops_left -= machine.ops
            if machine.imports or self._acted(before):
                # The classic evasion: payload first, then bytes that crash the scanner.
                reason = f"pickle breaks off ({exc.reason})" + (
                    " after importing: a loader ran it" if machine.imports else ""
                )
                self.flag(entry, exc.offset, Verdict.UNSAFE, reason, op="parse")
                self.parsed += 1
            else:
                self.entries.pop()
                self.last_error = f"{entry}: {exc}"
            return None
        self.ops_left -= machine.ops
        self.parsed += 1
        return result

    def _acted(self, since: int) -> bool:
        """Whether a broken stream did something hostile before it broke. An extension code
        or an out-of-band buffer alone is not enough: a stock unpickler raises right there,
        and one random byte in 40 opens a stream that way (junk is not a pickle)."""
        return any(
            f.severity is Verdict.UNSAFE and f.opcode not in _RAISES_AT_ONCE
            for f in self.findings[since:]
        )

    def unsafe_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Verdict.UNSAFE)


def looks_like_pickle(buf: Buffer, pos: int) -> bool:
    if pos >= len(buf):
        return False
    first = buf[pos]
    if first == 0x80:
        return pos + 1 < len(buf) and buf[pos + 1] <= 5
    return first in _PICKLE_STARTS


def scan_tail(state: ScanState, buf: Buffer, pos: int) -> None:
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
