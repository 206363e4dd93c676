"""A symbolic pickle machine: runs every opcode over inert values, imports and calls nothing.

It mirrors CPython's unpickler opcode by opcode (protocols 0-5) so that what it reports is what
a real loader would do, but ``find_class`` is replaced by a classification of the name string
(``_pickle_rules``) and every call by a stub (``_pickle_stubs``). Because the machine *runs* the
stream instead of pattern-matching it, STACK_GLOBAL operands are the runtime values (memo
tricks, computed strings and decoys resolve as they would for real), and a call whose result is
popped is still seen.

Malformed input raises ``PickleError`` with the offset; findings gathered before it are kept
(a real unpickler has already run everything before the bad byte).
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass

from sdlib.files import _pickle_stubs as stubs
from sdlib.files._pickle_keys import KeyGuard
from sdlib.files._pickle_ops import DISPATCH
from sdlib.files._pickle_rules import Finding, Rule, classify_global
from sdlib.files._pickle_values import (
    BadCall,
    GlobalRef,
    ODict,
    Opaque,
    PickleError,
    StorageRef,
    TooDeep,
)
from sdlib.taxonomy import Verdict

Buffer = bytes | mmap.mmap


@dataclass(frozen=True)
class Limits:
    """Caps that keep a hostile stream from exhausting memory or time."""

    opcodes: int = 20_000_000  # per stream; ``ScanState`` also caps the file's total
    stack: int = 1_000_000
    marks: int = 100_000
    memo: int = 5_000_000
    item_bytes: int = 64 << 20
    total_bytes: int = 256 << 20
    long_bytes: int = 1024
    digits: int = 4300
    findings: int = 1000  # listed per file; beyond it only a first unsafe one is added
    #: CPU seconds for all of a file's streams (an SDXL data.pkl takes well under one; a
    #: file of millions of distinct globals could otherwise take minutes).
    seconds: float = 60.0
    globals: int = 10_000  # distinct names listed per file


LIMITS = Limits()
_CALL_OPS = {"REDUCE", "INST", "OBJ"}


class Machine:
    """One pickle stream's unpickler, with a fresh stack and memo (as each ``pickle.load``)."""

    def __init__(
        self,
        data: Buffer,
        *,
        entry: str,
        mode: str,
        findings: list[Finding],
        globals_seen: set[str],
        storages: dict[str, StorageRef] | None = None,
        limits: Limits = LIMITS,
        deadline: float | None = None,
    ) -> None:
        self.data = data
        self.entry = entry
        self.mode = mode
        self.findings = findings
        self.globals_seen = globals_seen
        self.storages: dict[str, StorageRef] = {} if storages is None else storages
        self.limits = limits
        self.deadline = time.thread_time() + limits.seconds if deadline is None else deadline
        self.proto = 0
        self.start = self.pos = 0
        self.end = 0
        self.op_offset = 0
        self.frame_end = -1
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.inline_bytes = 0
        self.gets = 0
        self.puts = 0
        self.imports = 0  # globals resolved that are not plainly allowed
        self.ops = 0  # opcodes run (for the file-wide budget)
        self.keys = KeyGuard()

    # --- findings ----------------------------------------------------------------------------

    def flag(self, ref: GlobalRef | None, opcode: str, severity: Verdict, reason: str) -> None:
        module, name = (ref.module, ref.name) if ref is not None else ("", "")
        finding = Finding(module, name, opcode, self.op_offset, self.entry, severity, reason)
        cap = self.limits.findings
        if len(self.findings) < cap:
            self.findings.append(finding)
            return
        # A million distinct findings would cost memory, not add news; keep the verdict exact.
        if len(self.findings) == cap:
            why = "more findings than sdlib lists (the rest are not shown)"
            self.findings.append(Finding("", "", "limit", self.op_offset, self.entry,
                                         Verdict.SUSPICIOUS, why))  # fmt: skip
        if severity is Verdict.UNSAFE and not any(
            f.severity is Verdict.UNSAFE for f in self.findings[cap:]
        ):
            self.findings.append(finding)

    def _limit(self, what: str) -> PickleError:
        self.flag(None, "limit", Verdict.UNSAFE, f"resource limit exceeded: {what}")
        return PickleError(f"resource limit exceeded: {what}", self.op_offset)

    # --- running -----------------------------------------------------------------------------

    def run(self, start: int = 0, end: int | None = None) -> tuple[object, int]:
        """Execute from ``start`` to STOP; return the value and the offset after STOP.

        Every failure is a ``PickleError`` (fail closed): an unexpected Python error from a
        crafted argument (a bad escape in a text STRING, an odd BUILD state) ends the stream
        exactly as it would end a real unpickler, never the scan.
        """
        self.start = self.pos = start
        self.end = len(self.data) if end is None else end
        try:
            return self._loop()
        except PickleError:
            raise
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError,
                RecursionError, struct.error) as exc:  # fmt: skip
            reason = f"malformed argument ({type(exc).__name__})"
            raise PickleError(reason, self.op_offset) from exc

    def _loop(self) -> tuple[object, int]:
        dispatch = DISPATCH
        for self.ops in range(1, self.limits.opcodes + 1):  # noqa: B020
            self.op_offset = pos = self.pos
            if pos >= self.end:
                raise PickleError("pickle ends without STOP", pos)
            if pos == self.frame_end:
                self.frame_end = -1
            code = self.data[pos]
            self.pos = pos + 1
            handler = dispatch.get(code)
            if handler is None:
                raise PickleError(f"invalid opcode 0x{code:02x}", pos)
            if handler(self):
                return self._stop(), self.pos
            if 0 <= self.frame_end < self.pos:
                self.flag(None, "FRAME", Verdict.UNSAFE, "opcode straddles a FRAME boundary")
                raise PickleError("opcode straddles a FRAME boundary", pos)
            if not self.ops & 0xFFFF and time.thread_time() > self.deadline:
                raise self._limit(f"more than {self.limits.seconds:g} s of CPU")
        raise self._limit("too many opcodes")

    def _stop(self) -> object:
        # CPython returns the top of the current stack even with MARKs left open.
        if not self.stack:
            raise PickleError("STOP with an empty stack", self.op_offset)
        value = self.stack.pop()
        if self.stack or self.metastack:
            self.flag(None, "STOP", Verdict.SUSPICIOUS, "STOP leaves extra values on the stack")
        return value

    # --- reading -----------------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise PickleError("truncated opcode argument", self.op_offset)
        if n > self.limits.item_bytes:
            raise self._limit("inline string or bytes too large")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def _line(self) -> bytes:
        """A text argument without its newline. At the end of the data the pure-Python
        unpickler's ``readline()`` returns the unterminated rest (or nothing) and drops its
        last byte as if it were the newline; do the same, so a GLOBAL cut off by EOF still
        counts as the import that unpickler would attempt (the C one refuses such lines)."""
        cap = min(self.end, self.pos + self.limits.item_bytes)
        nl = self.data.find(b"\n", self.pos, cap)
        if nl < 0:
            if cap < self.end:
                raise PickleError("text argument too long", self.op_offset)
            out = bytes(self.data[self.pos : self.end - 1])
            self.pos = max(self.pos, self.end)
            return out
        out = bytes(self.data[self.pos : nl])
        self.pos = nl + 1
        return out

    def _int(self, fmt: str) -> int:
        value: int = struct.unpack(fmt, self._read(struct.calcsize(fmt)))[0]
        return value

    def _sized(self, fmt: str) -> bytes:
        n = self._int(fmt)
        if n > self.end - self.pos:
            raise PickleError("length prefix runs past the end of the data", self.op_offset)
        self.inline_bytes += n
        if self.inline_bytes > self.limits.total_bytes:
            raise self._limit("total inline bytes")
        return self._read(n)

    def _text_int(self, line: bytes) -> int:
        if len(line) > self.limits.digits:
            raise self._limit("integer literal with too many digits")
        try:
            return int(line)
        except ValueError as exc:
            raise PickleError("invalid integer literal", self.op_offset) from exc

    # --- stack -------------------------------------------------------------------------------

    def push(self, value: object) -> None:
        if len(self.stack) >= self.limits.stack:
            raise self._limit("stack depth")
        self.stack.append(value)

    def pop(self) -> object:
        if not self.stack:
            raise PickleError("stack underflow", self.op_offset)
        return self.stack.pop()

    def top(self) -> object:
        if not self.stack:
            raise PickleError("stack underflow", self.op_offset)
        return self.stack[-1]

    def pop_mark(self) -> list[object]:
        if not self.metastack:
            raise PickleError("no MARK on the stack", self.op_offset)
        items, self.stack = self.stack, self.metastack.pop()
        return items

    # --- globals and calls -------------------------------------------------------------------

    def resolve(self, module: str, name: str, opcode: str) -> GlobalRef:
        ref = GlobalRef(classify_global(module, name, self.proto))
        if len(self.globals_seen) < self.limits.globals:
            self.globals_seen.add(ref.qualname)
        rule = ref.cls.rule
        if rule is Rule.DANGEROUS:
            self.flag(ref, opcode, Verdict.UNSAFE, ref.cls.reason)
        elif rule is Rule.INERT:
            self.flag(ref, opcode, Verdict.SUSPICIOUS, ref.cls.reason + " (never imported)")
        elif rule is Rule.UNKNOWN:
            self.flag(ref, opcode, Verdict.SUSPICIOUS, "not on the allowlist (never imported)")
        if rule is not Rule.ALLOWED:
            self.imports += 1
        return ref

    def call(self, func: object, args: object, opcode: str) -> object:
        """What ``func(*args)`` (or ``func.__new__``) would return, without calling anything."""
        args = self._unpack(args, opcode)
        if not isinstance(func, GlobalRef):
            self.flag(None, opcode, Verdict.UNSAFE, "calls a computed object")
            return Opaque(None, args)
        rule = func.cls.rule
        if rule is Rule.DANGEROUS:
            self.flag(func, opcode, Verdict.UNSAFE, f"calls it ({func.cls.reason})")
            return Opaque(func, args)
        if rule is Rule.UNKNOWN:
            if opcode in _CALL_OPS:
                self.flag(func, opcode, Verdict.UNSAFE, "calls a callable not on the allowlist")
            else:
                self.flag(func, opcode, Verdict.SUSPICIOUS, "instantiates an unknown class")
            return Opaque(func, args)
        if rule is Rule.INERT:
            return Opaque(func, args)
        try:
            if opcode in _CALL_OPS:
                return stubs.call(self, func, args, opcode)
            return stubs.newobj(self, func, args)
        except BadCall as exc:
            self.flag(func, opcode, Verdict.UNSAFE, str(exc))
            return Opaque(func, args)

    def _unpack(self, args: object, opcode: str) -> tuple[object, ...]:
        """``*args`` as the pure-Python unpickler does it: any iterable, not only a tuple (the
        C unpickler stops here, the Python one carries on; follow the one that runs more)."""
        if isinstance(args, tuple):
            return args
        if isinstance(args, (list, str, bytes, set, frozenset, dict)):
            return tuple(args)
        self.flag(None, opcode, Verdict.UNSAFE, "arguments are an object whose __iter__ would run")
        return ()

    def hashable(self, key: object) -> object:
        try:
            return self.keys.check(key)
        except TooDeep as exc:
            raise self._limit(str(exc)) from exc
        except BadCall as exc:
            raise PickleError(str(exc), self.op_offset) from exc

    def mutate_target(self, target: object, opcode: str, kinds: tuple[type, ...]) -> None:
        """SETITEM(S)/APPEND(S)/ADDITEMS only on VM containers (CVE-2026-24747's primitive)."""
        if isinstance(target, (*kinds, Opaque)):
            return
        what = type(target).__name__
        self.flag(None, opcode, Verdict.UNSAFE, f"{opcode} on a {what}: would call its methods")
        raise PickleError(f"{opcode} on a {what}", self.op_offset)


__all__ = ["LIMITS", "Limits", "Machine", "ODict", "PickleError"]
