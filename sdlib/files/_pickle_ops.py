"""The pickle opcodes, one small function each, over a ``Machine`` (``_pickle_vm``).

Each mirrors what CPython's unpickler does with the stack, memo and metastack, except that
names resolve through ``Machine.resolve`` (a classification, never an import) and every call
goes through ``Machine.call`` (stubs, never real code). Each returns True only for STOP.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from sdlib.files import _pickle_stubs as stubs
from sdlib.files._pickle_rules import classify_global
from sdlib.files._pickle_values import BadCall, GlobalRef, Opaque, PickleError
from sdlib.taxonomy import Verdict

if TYPE_CHECKING:
    from sdlib.files._pickle_vm import Machine

# --- opcode implementations ------------------------------------------------------------------
# Each takes the machine and returns True only for STOP.

_Op = Callable[["Machine"], bool | None]


def _proto(m: Machine) -> None:
    version = m._read(1)[0]
    if version > 5:
        raise PickleError(f"unsupported pickle protocol {version}", m.op_offset)
    if m.op_offset != m.start:
        m.flag(None, "PROTO", Verdict.UNSAFE, "PROTO mid-stream switches name resolution")
    m.proto = version


def _frame(m: Machine) -> None:
    size = m._int("<Q")
    if m.frame_end >= 0 and m.pos < m.frame_end:
        m.flag(None, "FRAME", Verdict.UNSAFE, "FRAME starts inside another frame")
        raise PickleError("nested FRAME", m.op_offset)
    if size > m.end - m.pos:
        # The pure-Python unpickler buffers whatever is left and carries on; so do we.
        m.flag(None, "FRAME", Verdict.SUSPICIOUS, "FRAME claims more bytes than remain")
        size = m.end - m.pos
    m.frame_end = m.pos + size


def _global(m: Machine, opcode: str = "GLOBAL") -> GlobalRef:
    try:
        module = m._line().decode("utf-8")
        name = m._line().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PickleError("global name is not UTF-8", m.op_offset) from exc
    return m.resolve(module, name, opcode)


def _stack_global(m: Machine) -> None:
    name, module = m.pop(), m.pop()
    if type(name) is not str or type(module) is not str:
        m.flag(None, "STACK_GLOBAL", Verdict.UNSAFE, "STACK_GLOBAL operands are not strings")
        raise PickleError("STACK_GLOBAL operands are not strings", m.op_offset)
    m.push(m.resolve(module, name, "STACK_GLOBAL"))


def _inst(m: Machine) -> None:
    ref = _global(m, "INST")
    m.push(m.call(ref, tuple(m.pop_mark()), "INST"))


def _obj(m: Machine) -> None:
    items = m.pop_mark()
    if not items:
        raise PickleError("OBJ without a class", m.op_offset)
    m.push(m.call(items[0], tuple(items[1:]), "OBJ"))


def _reduce(m: Machine) -> None:
    args = m.pop()
    m.stack[-1] = m.call(m.top(), args, "REDUCE")


def _newobj(m: Machine) -> None:
    args = m.pop()
    cls = m.pop()
    m.push(m.call(cls, args, "NEWOBJ"))


def _newobj_ex(m: Machine) -> None:
    m.pop()  # kwargs: recorded nowhere; the class decides what they mean
    args = m.pop()
    m.push(m.call(m.pop(), args, "NEWOBJ_EX"))


def _build(m: Machine) -> None:
    state = m.pop()
    try:
        stubs.build(m, m.top(), state)
    except BadCall as exc:
        m.flag(None, "BUILD", Verdict.UNSAFE, str(exc))
        raise PickleError(str(exc), m.op_offset) from exc


def _ext(n: int) -> _Op:
    def op(m: Machine) -> None:
        code = m._int({1: "<B", 2: "<H", 4: "<i"}[n])
        ref = GlobalRef(classify_global("copyreg", f"extension_{code}", 3))
        m.flag(None, f"EXT{n}", Verdict.UNSAFE, f"copyreg extension code {code}: hidden global")
        m.push(ref)

    return op


def _persid(m: Machine, pid: object, opcode: str) -> None:
    try:
        m.push(stubs.persistent_load(m, pid))
    except BadCall as exc:
        m.flag(None, opcode, Verdict.UNSAFE, str(exc))
        m.push(Opaque(None, (pid,)))


def _append(m: Machine) -> None:
    value = m.pop()
    target = m.top()
    m.mutate_target(target, "APPEND", (list,))
    _list_of(target).append(value)


def _appends(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    m.mutate_target(target, "APPENDS", (list,))
    _list_of(target).extend(items)


def _list_of(target: object) -> list[object]:
    if isinstance(target, Opaque):
        return target.items
    assert isinstance(target, list)
    return target


def _setitems(m: Machine, items: list[object], opcode: str) -> None:
    target = m.top()
    m.mutate_target(target, opcode, (dict,))
    if len(items) % 2:
        raise PickleError(f"{opcode} with an odd number of items", m.op_offset)
    out = target.dictitems if isinstance(target, Opaque) else target
    for i in range(0, len(items), 2):
        out[m.hashable(items[i])] = items[i + 1]  # type: ignore[index]


def _additems(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    m.mutate_target(target, "ADDITEMS", (set,))
    if isinstance(target, set):
        target.update(m.hashable(x) for x in items)


def _dict(m: Machine) -> None:
    items = m.pop_mark()
    d: dict[object, object] = {}
    m.push(d)
    _setitems(m, items, "DICT")


def _memo_put(m: Machine, index: int) -> None:
    m.puts += 1
    if index < 0:
        raise PickleError("negative memo index", m.op_offset)
    if len(m.memo) >= m.limits.memo and index not in m.memo:
        raise m._limit("memo size")
    m.memo[index] = m.top()


def _memo_get(m: Machine, index: int) -> None:
    m.gets += 1
    if m.gets > 100_000 and m.gets > 100 * (m.puts + 1):
        raise m._limit("memo GET:PUT ratio (expansion attack)")
    if index not in m.memo:
        raise PickleError(f"memo key {index} missing", m.op_offset)
    m.push(m.memo[index])


def _mark(m: Machine) -> None:
    if len(m.metastack) >= m.limits.marks:
        raise m._limit("MARK nesting")
    m.metastack.append(m.stack)
    m.stack = []


def _pop_mark(m: Machine) -> None:
    m.pop_mark()


def _setitem(m: Machine) -> None:
    value = m.pop()
    key = m.pop()
    _setitems(m, [key, value], "SETITEM")


def _pop(m: Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()  # CPython: POP with an empty frame discards the MARK


def _string(m: Machine) -> None:
    line = m._line()
    if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
        raise PickleError("STRING argument is not quoted", m.op_offset)
    m.push(codecs.escape_decode(line[1:-1])[0].decode("latin-1"))


def _unicode(m: Machine) -> None:
    m.push(m._line().decode("raw-unicode-escape"))


def _utf8(m: Machine, fmt: str) -> None:
    try:
        m.push(m._sized(fmt).decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError as exc:
        raise PickleError("invalid UTF-8 string", m.op_offset) from exc


def _int_op(m: Machine) -> None:
    line = m._line()
    if line in (b"00", b"01"):  # protocol 0 spells booleans as INT 00 / INT 01
        m.push(line == b"01")
    else:
        m.push(m._text_int(line))


def _long_text(m: Machine) -> None:
    m.push(m._text_int(m._line().rstrip(b"L")))


def _long_bin(m: Machine, fmt: str) -> None:
    n = m._int(fmt)
    if n > m.end - m.pos:  # a length past the end is a broken stream, not a big number
        raise PickleError("length prefix runs past the end of the data", m.op_offset)
    if n > m.limits.long_bytes:
        raise m._limit("LONG4 integer size")
    m.push(int.from_bytes(m._read(n), "little", signed=True))


def _float_text(m: Machine) -> None:
    try:
        m.push(float(m._line()))
    except ValueError as exc:
        raise PickleError("invalid float literal", m.op_offset) from exc


def _next_buffer(m: Machine) -> None:
    # A loader given buffers carries on past it: keep running so what follows is seen.
    m.flag(None, "NEXT_BUFFER", Verdict.UNSAFE, "out-of-band buffers never occur in checkpoints")
    m.push(Opaque(None))


def _readonly_buffer(m: Machine) -> None:
    m.top()  # makes the buffer on top read-only; nothing else changes


def _persid_text(m: Machine) -> None:
    _persid(m, m._line().decode("ascii", "replace"), "PERSID")


def _tuple_n(n: int) -> _Op:
    def op(m: Machine) -> None:
        if len(m.stack) < n:
            raise PickleError("stack underflow", m.op_offset)
        items = tuple(m.stack[len(m.stack) - n :])
        del m.stack[len(m.stack) - n :]
        m.push(items)

    return op


DISPATCH: dict[int, _Op] = {
    0x80: _proto,
    0x95: _frame,
    ord("."): lambda m: True,
    ord("("): _mark,
    ord("0"): _pop,
    ord("1"): _pop_mark,
    ord("2"): lambda m: m.push(m.top()),
    ord("F"): _float_text,
    ord("G"): lambda m: m.push(struct.unpack(">d", m._read(8))[0]),
    ord("I"): _int_op,
    ord("J"): lambda m: m.push(m._int("<i")),
    ord("K"): lambda m: m.push(m._read(1)[0]),
    ord("M"): lambda m: m.push(m._int("<H")),
    ord("L"): _long_text,
    0x8A: lambda m: _long_bin(m, "<B"),
    0x8B: lambda m: _long_bin(m, "<i"),
    ord("N"): lambda m: m.push(None),
    0x88: lambda m: m.push(True),
    0x89: lambda m: m.push(False),
    ord("S"): _string,
    ord("T"): lambda m: m.push(m._sized("<i").decode("latin-1")),
    ord("U"): lambda m: m.push(m._sized("<B").decode("latin-1")),
    ord("V"): _unicode,
    ord("X"): lambda m: _utf8(m, "<I"),
    0x8C: lambda m: _utf8(m, "<B"),
    0x8D: lambda m: _utf8(m, "<Q"),
    ord("B"): lambda m: m.push(m._sized("<I")),
    ord("C"): lambda m: m.push(m._sized("<B")),
    0x8E: lambda m: m.push(m._sized("<Q")),
    0x96: lambda m: m.push(m._sized("<Q")),
    0x97: _next_buffer,
    0x98: _readonly_buffer,
    ord(")"): lambda m: m.push(()),
    ord("t"): lambda m: m.push(tuple(m.pop_mark())),
    0x85: _tuple_n(1),
    0x86: _tuple_n(2),
    0x87: _tuple_n(3),
    ord("]"): lambda m: m.push([]),
    ord("l"): lambda m: m.push(m.pop_mark()),
    ord("}"): lambda m: m.push({}),
    ord("d"): _dict,
    0x8F: lambda m: m.push(set()),
    0x91: lambda m: m.push(frozenset(m.hashable(x) for x in m.pop_mark())),
    ord("a"): _append,
    ord("e"): _appends,
    ord("s"): _setitem,
    ord("u"): lambda m: _setitems(m, m.pop_mark(), "SETITEMS"),
    0x90: _additems,
    ord("g"): lambda m: _memo_get(m, m._text_int(m._line())),
    ord("h"): lambda m: _memo_get(m, m._read(1)[0]),
    ord("j"): lambda m: _memo_get(m, m._int("<I")),
    ord("p"): lambda m: _memo_put(m, m._text_int(m._line())),
    ord("q"): lambda m: _memo_put(m, m._read(1)[0]),
    ord("r"): lambda m: _memo_put(m, m._int("<I")),
    0x94: lambda m: _memo_put(m, len(m.memo)),
    ord("c"): lambda m: m.push(_global(m)),
    0x93: _stack_global,
    ord("i"): _inst,
    ord("o"): _obj,
    ord("R"): _reduce,
    0x81: _newobj,
    0x92: _newobj_ex,
    ord("b"): _build,
    0x82: _ext(1),
    0x83: _ext(2),
    0x84: _ext(4),
    ord("P"): _persid_text,
    ord("Q"): lambda m: _persid(m, m.pop(), "BINPERSID"),
}
