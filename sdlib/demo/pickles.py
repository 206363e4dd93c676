"""Hand-built pickle model files: the demo server's ``.ckpt``/``.pt`` files, and the tests'.

Everything is written opcode by opcode (``Asm``) or by a tiny protocol-2 writer that emits
what ``torch.save`` emits (``dump``), so nothing needs a class with a ``__reduce__``, nothing
is imported by name, and nothing here unpickles anything. The hostile payloads the tests build
on top of this live in ``tests/support/pickles.py``.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_CLASS = {
    "F64": "DoubleStorage", "F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage",
    "I64": "LongStorage", "I32": "IntStorage", "I16": "ShortStorage", "I8": "CharStorage",
    "U8": "ByteStorage", "BOOL": "BoolStorage",
}  # fmt: skip
ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


class Asm:
    """A pickle opcode assembler: ``Asm().proto(2).global_("posix", "system")...stop()``."""

    def __init__(self) -> None:
        self.out = bytearray()

    def raw(self, data: bytes) -> Asm:
        self.out += data
        return self

    def build(self) -> bytes:
        return bytes(self.out)

    def proto(self, n: int = 2) -> Asm:
        return self.raw(b"\x80" + bytes([n]))

    def frame(self, n: int) -> Asm:
        return self.raw(b"\x95" + struct.pack("<Q", n))

    def global_(self, module: str, name: str) -> Asm:
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def inst(self, module: str, name: str) -> Asm:
        return self.raw(b"i" + module.encode() + b"\n" + name.encode() + b"\n")

    def stack_global(self) -> Asm:
        return self.raw(b"\x93")

    def str_(self, s: str) -> Asm:  # BINUNICODE
        data = s.encode("utf-8")
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def short_str(self, s: str) -> Asm:  # SHORT_BINUNICODE (protocol 4)
        data = s.encode("utf-8")
        return self.raw(b"\x8c" + bytes([len(data)]) + data)

    def text_str(self, s: str) -> Asm:  # protocol 0 STRING
        return self.raw(b"S" + repr(s).encode() + b"\n")

    def unicode0(self, s: str) -> Asm:  # protocol 0 UNICODE
        return self.raw(b"V" + s.encode("raw-unicode-escape") + b"\n")

    def binstring(self, s: str) -> Asm:
        data = s.encode("latin-1")
        return self.raw(b"T" + struct.pack("<i", len(data)) + data)

    def short_binstring(self, s: str) -> Asm:
        data = s.encode("latin-1")
        return self.raw(b"U" + bytes([len(data)]) + data)

    def binbytes(self, data: bytes) -> Asm:
        return self.raw(b"B" + struct.pack("<I", len(data)) + data)

    def int_(self, n: int) -> Asm:
        if 0 <= n < 256:
            return self.raw(b"K" + bytes([n]))
        if 0 <= n < 65536:
            return self.raw(b"M" + struct.pack("<H", n))
        if -(2**31) <= n < 2**31:
            return self.raw(b"J" + struct.pack("<i", n))
        data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
        return self.raw(b"\x8a" + bytes([len(data)]) + data)

    def float_(self, x: float) -> Asm:
        return self.raw(b"G" + struct.pack(">d", x))

    def op(self, name: str, arg: int | None = None) -> Asm:
        """Argument-less opcodes by name; memo opcodes take ``arg``."""
        simple = {
            "MARK": b"(", "STOP": b".", "POP": b"0", "POP_MARK": b"1", "DUP": b"2",
            "NONE": b"N", "TRUE": b"\x88", "FALSE": b"\x89", "REDUCE": b"R", "BUILD": b"b",
            "NEWOBJ": b"\x81", "NEWOBJ_EX": b"\x92", "OBJ": b"o", "TUPLE": b"t",
            "TUPLE1": b"\x85", "TUPLE2": b"\x86", "TUPLE3": b"\x87", "EMPTY_TUPLE": b")",
            "EMPTY_LIST": b"]", "EMPTY_DICT": b"}", "EMPTY_SET": b"\x8f", "LIST": b"l",
            "DICT": b"d", "APPEND": b"a", "APPENDS": b"e", "SETITEM": b"s", "SETITEMS": b"u",
            "ADDITEMS": b"\x90", "FROZENSET": b"\x91", "BINPERSID": b"Q", "MEMOIZE": b"\x94",
            "NEXT_BUFFER": b"\x97",
        }  # fmt: skip
        if name in simple:
            return self.raw(simple[name])
        assert arg is not None
        memo = {
            "BINPUT": b"q" + bytes([arg]), "BINGET": b"h" + bytes([arg]),
            "LONG_BINPUT": b"r" + struct.pack("<I", arg),
            "LONG_BINGET": b"j" + struct.pack("<I", arg),
            "PUT": b"p%d\n" % arg, "GET": b"g%d\n" % arg,
            "EXT1": b"\x82" + bytes([arg]), "EXT2": b"\x83" + struct.pack("<H", arg),
            "EXT4": b"\x84" + struct.pack("<i", arg),
        }  # fmt: skip
        return self.raw(memo[name])

    def stop(self) -> bytes:
        return self.raw(b".").build()


# --- a protocol-2 writer for torch-like object graphs ----------------------------------------


@dataclass(frozen=True)
class Tensor:
    """A tensor to write: raw little-endian ``data`` of its *storage*, viewed as given."""

    data: bytes
    dtype: str
    shape: tuple[int, ...]
    stride: tuple[int, ...] | None = None
    offset: int = 0
    key: str | None = None  # share a storage between tensors by giving the same key
    param: bool = False
    storage_type: str | None = None  # override (storage type confusion)
    numel: int | None = None  # override the declared storage element count


@dataclass(frozen=True)
class Global:
    module: str
    name: str


@dataclass(frozen=True)
class Obj:
    """``cls.__new__(cls)`` then BUILD ``state`` (how plain Python objects pickle)."""

    cls: Global
    state: object = None


@dataclass(frozen=True)
class Call:
    """``func(*args)`` via REDUCE (numpy scalars, payloads inside benign structures)."""

    func: Global
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class Raw:
    """Opcodes pasted as they are (they must leave exactly one value on the stack)."""

    opcodes: bytes


class StateDict(OrderedDict):  # type: ignore[type-arg]
    """An OrderedDict written with torch's ``BUILD {'_metadata': ...}``."""

    metadata: dict[str, object] | None = None


@dataclass
class _Writer:
    legacy: bool = False
    asm: Asm = field(default_factory=Asm)
    memo: dict[tuple[str, str], int] = field(default_factory=dict)
    storages: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def glob(self, module: str, name: str) -> None:
        if (module, name) in self.memo:
            self.asm.op("LONG_BINGET", self.memo[(module, name)])
            return
        self.asm.global_(module, name)
        self.memo[(module, name)] = len(self.memo)
        self.asm.op("LONG_BINPUT", self.memo[(module, name)])

    def value(self, v: object) -> None:  # one branch per type, on purpose
        a = self.asm
        if v is None:
            a.op("NONE")
        elif isinstance(v, bool):
            a.op("TRUE" if v else "FALSE")
        elif isinstance(v, int):
            a.int_(v)
        elif isinstance(v, float):
            a.float_(v)
        elif isinstance(v, str):
            a.str_(v)
        elif isinstance(v, bytes):
            self.glob("_codecs", "encode")
            a.str_(v.decode("latin-1")).str_("latin1").op("TUPLE2").op("REDUCE")
        elif isinstance(v, Tensor):
            self.tensor(v)
        elif isinstance(v, Global):
            self.glob(v.module, v.name)
        elif isinstance(v, Obj):
            self.glob(v.cls.module, v.cls.name)
            a.op("EMPTY_TUPLE").op("NEWOBJ")
            if v.state is not None:
                self.value(v.state)
                a.op("BUILD")
        elif isinstance(v, Call):
            self.glob(v.func.module, v.func.name)
            self.value(tuple(v.args))
            a.op("REDUCE")
        elif isinstance(v, Raw):
            a.raw(v.opcodes)
        elif isinstance(v, OrderedDict):
            self.glob("collections", "OrderedDict")
            a.op("EMPTY_TUPLE").op("REDUCE")
            self.items(v.items())
            if isinstance(v, StateDict) and v.metadata is not None:
                a.op("EMPTY_DICT").str_("_metadata")
                self.value(v.metadata)
                a.op("SETITEM").op("BUILD")
        elif isinstance(v, dict):
            a.op("EMPTY_DICT")
            self.items(v.items())
        elif isinstance(v, (list, set, frozenset)):
            if isinstance(v, list):
                a.op("EMPTY_LIST")
                if v:
                    a.op("MARK")
                    for item in v:
                        self.value(item)
                    a.op("APPENDS")
            else:
                self.glob("__builtin__", "set" if isinstance(v, set) else "frozenset")
                self.value(sorted(v, key=repr))
                a.op("TUPLE1").op("REDUCE")
        elif isinstance(v, tuple):
            a.op("MARK")
            for item in v:
                self.value(item)
            a.op("TUPLE")
        else:
            raise TypeError(f"cannot write {type(v).__name__}")

    def items(self, items: Iterable[tuple[object, object]]) -> None:
        pairs = list(items)
        if pairs:
            self.asm.op("MARK")
            for k, v in pairs:
                self.value(k)
                self.value(v)
            self.asm.op("SETITEMS")

    def tensor(self, t: Tensor) -> None:
        a = self.asm
        key = t.key if t.key is not None else str(len(self.storages))
        self.storages.setdefault(key, (t.dtype, t.data))
        if t.param:
            self.glob("torch._utils", "_rebuild_parameter")
            a.op("MARK")
        self.glob("torch._utils", "_rebuild_tensor_v2")
        a.op("MARK").op("MARK").str_("storage")
        self.glob("torch", t.storage_type or STORAGE_CLASS[t.dtype])
        numel = t.numel if t.numel is not None else len(t.data) // ITEMSIZE[t.dtype]
        a.str_(key).str_("cpu").int_(numel)
        if self.legacy:
            a.op("NONE")
        a.op("TUPLE").op("BINPERSID")
        stride = t.stride if t.stride is not None else _c_strides(t.shape)
        a.int_(t.offset)
        self.value(tuple(t.shape))
        self.value(tuple(stride))
        a.op("FALSE")
        self.glob("collections", "OrderedDict")
        a.op("EMPTY_TUPLE").op("REDUCE").op("TUPLE").op("REDUCE")
        if t.param:
            a.op("TRUE")
            self.glob("collections", "OrderedDict")
            a.op("EMPTY_TUPLE").op("REDUCE").op("TUPLE").op("REDUCE")


def _c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step *= size
    return tuple(reversed(out))


def dump(obj: object, *, legacy: bool = False) -> tuple[bytes, dict[str, tuple[str, bytes]]]:
    """Protocol-2 pickle bytes of ``obj`` plus the storages its tensors reference."""
    writer = _Writer(legacy=legacy)
    writer.asm.proto(2)
    writer.value(obj)
    return writer.asm.stop(), writer.storages


def zip_bytes(entries: Sequence[tuple[str, bytes]], *, compress: Sequence[str] = ()) -> bytes:
    """A zip of stored entries (``compress`` names are deflated), in the given order."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries:
            method = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data, compress_type=method)
    return out.getvalue()


def torch_zip(
    obj: object,
    *,
    root: str = "archive",
    byteorder: str | None = "little",
    pickle_bytes: bytes | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
    storages: Mapping[str, bytes] | None = None,
) -> bytes:
    """A torch zip archive of ``obj`` (or of ``pickle_bytes``), laid out as torch.save does."""
    data, found = dump(obj)
    records = {k: v[1] for k, v in found.items()} if storages is None else dict(storages)
    entries = [(f"{root}/data.pkl", pickle_bytes if pickle_bytes is not None else data)]
    if byteorder is not None:
        entries.append((f"{root}/byteorder", byteorder.encode()))
    entries += [(f"{root}/data/{k}", v) for k, v in records.items()]
    entries.append((f"{root}/version", b"3\n"))
    entries += list(extra)
    return zip_bytes(entries)


def torch_legacy(obj: object, *, main: bytes | None = None, keys: bytes | None = None) -> bytes:
    """The pre-1.6 format: magic, protocol, sys_info, object and key pickles, then storages."""
    data, found = dump(obj, legacy=True)
    sys_info, _ = dump(
        {
            "protocol_version": 1001,
            "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4},
        }
    )
    key_list, _ = dump(list(found))
    out = bytearray(dump(LEGACY_MAGIC)[0] + dump(1001)[0] + sys_info)
    out += main if main is not None else data
    out += keys if keys is not None else key_list
    for dtype, raw in found.values():
        out += struct.pack("<q", len(raw) // ITEMSIZE[dtype]) + raw
    return bytes(out)
