"""Stubs for allowlisted globals: what REDUCE, NEWOBJ, BUILD and BINPERSID mean to the VM.

Each stub validates its arguments against the exact shapes ``torch.save`` and numpy emit and
returns an inert value (``_pickle_values``). Arguments that do not fit raise ``BadCall``, which
the VM turns into an *unsafe* finding: legitimate writers never produce them, and several are
the memory-corruption primitives behind CVE-2026-24747 (views past their storage, SETITEMS on
a tensor, a declared ``numel`` larger than the record).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from typing import Protocol

from sdlib.files._pickle_keys import KeyGuard
from sdlib.files._pickle_rules import STORAGE_DTYPES, TORCH_DTYPES, Rule
from sdlib.files._pickle_values import (
    ITEMSIZE,
    BadCall,
    GlobalRef,
    NpArray,
    NpDtype,
    ODict,
    Opaque,
    StorageRef,
    TensorRef,
)
from sdlib.taxonomy import Verdict

MAX_DIMS = 64
MAX_NUMEL = 1 << 36  # 64 Gi elements: far beyond any real tensor, far below overflow trouble
_KEY = re.compile(r"[0-9]{1,40}\Z")
_LOCATION = re.compile(r"(cpu|cuda|mps|xpu|meta|hpu|npu|xla|ipu|mtia|privateuseone)(:\d{1,4})?\Z")
_QUANT_ITEMSIZE = {"QInt32Storage": 4, "ComplexDoubleStorage": 16}


class Context(Protocol):
    """What stubs need from the machine."""

    mode: str  # "plain", "zip" or "legacy"
    storages: dict[str, StorageRef]
    keys: KeyGuard

    def flag(self, ref: GlobalRef | None, opcode: str, severity: Verdict, reason: str) -> None: ...


# --- calls -----------------------------------------------------------------------------------


def call(ctx: Context, func: GlobalRef, args: tuple[object, ...], opcode: str) -> object:
    """The value of ``func(*args)`` for an allowlisted ``func``, computed without calling it."""
    stub = _CALLS.get(func.handler)
    if stub is None:
        ctx.flag(func, opcode, Verdict.SUSPICIOUS, "unexpected call of an allowlisted name")
        return Opaque(func, args)
    return stub(ctx, func, args)


def _odict(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    out = ODict()
    if args and args[0] is not None:
        if len(args) != 1 or not isinstance(args[0], (list, tuple, dict)):
            raise BadCall("OrderedDict takes one list of pairs")
        pairs = args[0].items() if isinstance(args[0], dict) else args[0]
        for pair in pairs:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise BadCall("OrderedDict item is not a pair")
            out[ctx.keys.check(pair[0])] = pair[1]
    return out


def _defaultdict(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    factory = args[0] if args else None
    if factory is not None and not (
        isinstance(factory, GlobalRef) and factory.handler == "builtin"
    ):
        raise BadCall("defaultdict factory is not a builtin type")
    return ODict()


def _storage_call(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    raise BadCall("constructs a storage; checkpoints only reference storages by persistent id")


def _token_call(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    # torch.nn.Parameter(tensor[, requires_grad]) in very old pickles; anything else is opaque.
    if func.name == "Parameter" and args and isinstance(args[0], TensorRef):
        return args[0]
    return Opaque(func, args)


def _size(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if len(args) == 1 and isinstance(args[0], (tuple, list)) and all(_is_int(x) for x in args[0]):
        return tuple(args[0])
    raise BadCall("torch.Size takes one tuple of ints")


def _device(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if 1 <= len(args) <= 2 and isinstance(args[0], str) and len(args[0]) < 64:
        return args[0] if len(args) == 1 else f"{args[0]}:{args[1]}"
    raise BadCall("torch.device takes a name and an index")


def _codecs_encode(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    # Protocol <= 2 writes every bytes value as _codecs.encode(<latin-1 str>, 'latin1').
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str):
        encoding = args[1].lower().replace("_", "-")
        if encoding in {"latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"}:
            try:
                return args[0].encode(encoding)
            except UnicodeEncodeError as exc:
                raise BadCall("text does not fit its encoding") from exc
    ctx.flag(func, "REDUCE", Verdict.SUSPICIOUS, "codec other than latin-1/utf-8")
    return Opaque(func, args)


_PRIMITIVE = (int, float, str, bytes, bool, complex, type(None))


def _builtin(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    """Builtin types over already-built primitive values (never over lazy iterables)."""
    name = func.name
    if name in {"set", "frozenset", "list", "tuple"}:
        if not args:
            return {"set": set, "frozenset": frozenset, "list": list, "tuple": tuple}[name]()
        if len(args) != 1 or not isinstance(args[0], (list, tuple, set, frozenset)):
            raise BadCall(f"{name}() of a non-container")
        items = list(args[0])
        if name in {"set", "frozenset"}:
            items = [ctx.keys.check(x) for x in items]
        return {"set": set, "frozenset": frozenset, "list": list, "tuple": tuple}[name](items)
    if name == "dict":
        return _odict(ctx, func, args)
    if name in {"bytes", "bytearray"}:
        return _bytes(args)
    if name in {"int", "float", "str", "bool", "complex"} and len(args) <= 2:
        if not all(isinstance(a, _PRIMITIVE) for a in args):
            raise BadCall(f"{name}() of a non-primitive value")
        if any(isinstance(a, (str, bytes)) and len(a) > 4300 for a in args):
            raise BadCall(f"{name}() of an oversized literal")
        try:
            ctor: Callable[..., object] = {
                "int": int,
                "float": float,
                "str": str,
                "bool": bool,
                "complex": complex,
            }[name]
            return ctor(*args)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadCall(f"invalid {name}() arguments") from exc
    return Opaque(func, args)


def _bytes(args: tuple[object, ...]) -> bytes:
    if len(args) == 1 and isinstance(args[0], bytes):
        return args[0]
    if len(args) == 2 and isinstance(args[0], str) and args[1] in {"latin1", "latin-1", "utf-8"}:
        return args[0].encode(str(args[1]))
    if (
        len(args) == 1
        and isinstance(args[0], list)
        and len(args[0]) <= 1 << 20
        and all(type(x) is int and 0 <= x < 256 for x in args[0])
    ):
        return bytes(args[0])
    if not args:
        return b""
    raise BadCall("bytes() of unexpected arguments")


def _np_dtype(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if args and isinstance(args[0], str) and len(args[0]) < 32:
        return NpDtype(args[0])
    raise BadCall("numpy.dtype of a non-string spec")


def _np_reconstruct(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if len(args) == 3 and isinstance(args[0], GlobalRef) and args[0].handler == "np_ndarray":
        return NpArray()
    raise BadCall("numpy _reconstruct of something other than ndarray")


_SCALAR_FORMATS = {
    "f2": "e",
    "f4": "f",
    "f8": "d",
    "i1": "b",
    "i2": "h",
    "i4": "i",
    "i8": "q",
    "u1": "B",
    "u2": "H",
    "u4": "I",
    "u8": "Q",
    "b1": "?",
}


def _np_scalar(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if not args or not isinstance(args[0], NpDtype):
        raise BadCall("numpy scalar without a dtype")
    dtype = args[0]
    if dtype.is_object:
        return args[1] if len(args) > 1 else None  # scalar(dtype('O'), obj) is obj itself
    fmt = _SCALAR_FORMATS.get(dtype.spec)
    if (
        len(args) == 2
        and fmt
        and isinstance(args[1], bytes)
        and len(args[1]) == struct.calcsize(fmt)
    ):
        order = ">" if dtype.byteorder == ">" else "<"
        value: object = struct.unpack(order + fmt, args[1])[0]
        return value
    return Opaque(func, args)


# --- tensors ---------------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    return type(x) is int


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, dict) and not value)


def _empty_hooks(hooks: object) -> None:
    if not _empty(hooks):
        raise BadCall("backward hooks are functions torch would keep and call")


def _view(storage: object, offset: object, size: object, stride: object) -> TensorRef:
    """Validate a storage view exactly (arbitrary-precision ints) before anything trusts it."""
    if not isinstance(storage, StorageRef):
        raise BadCall("tensor storage is not a storage persistent id")
    if isinstance(size, list):
        size = tuple(size)
    if isinstance(stride, list):
        stride = tuple(stride)
    if not _is_int(offset) or not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise BadCall("tensor offset, size or stride has the wrong type")
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise BadCall("tensor size and stride ranks differ")
    if not all(_is_int(x) and x >= 0 for x in (*size, *stride)) or offset < 0:  # type: ignore[operator]
        raise BadCall("negative or non-integer tensor size, stride or offset")
    shape: tuple[int, ...] = size
    strides: tuple[int, ...] = stride
    start: int = offset  # type: ignore[assignment]
    numel = math.prod(shape)
    if numel > MAX_NUMEL:
        raise BadCall("tensor element count is implausibly large")
    if numel == 0:
        if start > storage.numel:
            raise BadCall("empty tensor offset past the end of its storage")
    else:
        last = start + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        if last >= storage.numel:
            raise BadCall("tensor view reaches past the end of its storage")
    return TensorRef(storage, start, shape, strides, storage.dtype, storage.itemsize)


def _rebuild_v1(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if len(args) != 4:
        raise BadCall("_rebuild_tensor takes 4 arguments")
    return _view(*args)


def _rebuild_v2(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if len(args) not in (6, 7) or type(args[4]) is not bool:
        raise BadCall(
            "_rebuild_tensor_v2 takes (storage, offset, size, stride, bool, hooks[, meta])"
        )
    _empty_hooks(args[5])
    tensor = _view(*args[:4])
    tensor.has_metadata = len(args) == 7 and not _empty(args[6])
    return tensor


def _rebuild_v3(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if len(args) not in (7, 8) or type(args[4]) is not bool:
        raise BadCall(
            "_rebuild_tensor_v3 takes (storage, offset, size, stride, bool, hooks, dtype)"
        )
    _empty_hooks(args[5])
    dtype_ref, storage = args[6], args[0]
    if not (isinstance(dtype_ref, GlobalRef) and dtype_ref.handler == "dtype"):
        raise BadCall("_rebuild_tensor_v3 dtype is not a torch dtype")
    if not isinstance(storage, StorageRef) or storage.itemsize != 1:
        raise BadCall("_rebuild_tensor_v3 needs an untyped storage")
    dtype = TORCH_DTYPES.get(dtype_ref.name)
    itemsize = ITEMSIZE.get(dtype or "", 1)
    typed = StorageRef(
        storage.key,
        storage.storage_type,
        dtype,
        itemsize,
        storage.location,
        storage.numel // itemsize,
        storage.view,
    )
    tensor = _view(typed, *args[1:4])
    tensor.has_metadata = len(args) == 8 and not _empty(args[7])
    return tensor


def _parameter(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    if len(args) not in (3, 4) or not isinstance(args[0], TensorRef):
        raise BadCall("_rebuild_parameter of something other than a tensor")
    _empty_hooks(args[2])
    return args[0]


def _from_type_v2(ctx: Context, func: GlobalRef, args: tuple[object, ...]) -> object:
    # torch calls func(*args) here: an arbitrary func would be an arbitrary call.
    if len(args) != 4 or not isinstance(args[0], GlobalRef) or not isinstance(args[2], tuple):
        raise BadCall("_rebuild_from_type_v2 takes (func, type, args, state)")
    inner, new_type = args[0], args[1]
    if inner.handler not in {"rebuild_v1", "rebuild_v2", "rebuild_v3", "parameter"}:
        raise BadCall(f"_rebuild_from_type_v2 would call {inner.qualname}")
    if not (isinstance(new_type, GlobalRef) and new_type.handler == "tensor_type"):
        raise BadCall("_rebuild_from_type_v2 would convert to a non-tensor type")
    return _CALLS[inner.handler](ctx, inner, args[2])


_Stub = Callable[[Context, GlobalRef, tuple[object, ...]], object]
_CALLS: dict[str, _Stub] = {
    "odict": _odict,
    "defaultdict": _defaultdict,
    "rebuild_v1": _rebuild_v1,
    "rebuild_v2": _rebuild_v2,
    "rebuild_v3": _rebuild_v3,
    "parameter": _parameter,
    "from_type_v2": _from_type_v2,
    "tensor_type": _token_call,
    "storage": _storage_call,
    "size": _size,
    "device": _device,
    "codecs_encode": _codecs_encode,
    "builtin": _builtin,
    "np_dtype": _np_dtype,
    "np_reconstruct": _np_reconstruct,
    "np_scalar": _np_scalar,
}


def newobj(ctx: Context, cls: GlobalRef, args: tuple[object, ...]) -> object:
    """``cls.__new__(cls, *args)`` for an allowlisted class: only containers and tokens."""
    if cls.handler in {"odict", "defaultdict"}:
        return ODict()
    if cls.handler == "builtin" and cls.name in {"set", "list", "dict", "frozenset", "tuple"}:
        return call(ctx, cls, args[1:] if args else (), "NEWOBJ")
    return Opaque(cls, args)


# --- BUILD -----------------------------------------------------------------------------------


def build(ctx: Context, inst: object, state: object) -> None:
    """Apply BUILD's ``state`` to ``inst`` as far as an inert value can take it."""
    if isinstance(inst, ODict):
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise BadCall("OrderedDict state is not a dict of attributes")
        inst.attrs.update(state)
    elif isinstance(inst, Opaque):
        inst.state = state
    elif isinstance(inst, NpDtype):
        if isinstance(state, tuple) and len(state) >= 5:
            inst.byteorder = state[1] if isinstance(state[1], str) else "<"
            inst.structured = state[3] is not None or state[2] is not None
    elif isinstance(inst, NpArray):
        _build_array(inst, state)
    elif isinstance(inst, GlobalRef):
        ctx.flag(inst, "BUILD", Verdict.UNSAFE, "BUILD on a class or module rewrites library state")
    elif isinstance(inst, (TensorRef, StorageRef)):
        if not _empty(state):
            raise BadCall("BUILD sets arbitrary state on a tensor")
    else:
        raise BadCall(f"BUILD on a {type(inst).__name__}")


def _build_array(inst: NpArray, state: object) -> None:
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple)):
        raise BadCall("ndarray state is not (version, shape, dtype, fortran, data)")
    inst.shape = tuple(x for x in state[1] if _is_int(x))
    inst.dtype = state[2] if isinstance(state[2], NpDtype) else None
    inst.objects = not isinstance(state[4], bytes) or (
        inst.dtype is not None and inst.dtype.is_object
    )
    inst.nbytes = len(state[4]) if isinstance(state[4], bytes) else 0


# --- persistent ids --------------------------------------------------------------------------


def persistent_load(ctx: Context, pid: object) -> object:
    """torch's ``persistent_load``: storages only, every field treated as hostile input."""
    if ctx.mode == "plain":
        ctx.flag(None, "BINPERSID", Verdict.SUSPICIOUS, "persistent id in a plain pickle")
        return Opaque(None, (pid,))
    if not isinstance(pid, tuple) or not pid:
        raise BadCall("persistent id is not a tuple")
    typename = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
    if typename == "module" and ctx.mode == "legacy":
        ctx.flag(None, "BINPERSID", Verdict.SUSPICIOUS, "whole-module save (pickled nn.Module)")
        return Opaque(None, pid[1:2])
    if typename != "storage":
        raise BadCall(f"persistent id of type {str(typename)[:20]!r}, not a storage")
    want = 6 if ctx.mode == "legacy" else 5
    if len(pid) != want:
        raise BadCall("storage persistent id has the wrong length")
    ref = _storage_ref(ctx, pid)
    known = ctx.storages.setdefault(ref.key, ref)
    if known != ref:
        raise BadCall("storage key reused with another type or size (torch keeps the first)")
    return known


def _storage_ref(ctx: Context, pid: tuple[object, ...]) -> StorageRef:
    storage_type, key, location, numel = pid[1:5]
    if not (isinstance(storage_type, GlobalRef) and storage_type.handler == "storage"):
        raise BadCall("storage type is not a torch storage class")
    if not isinstance(key, str) or not _KEY.match(key):
        raise BadCall("storage key is not a number (it would name another archive record)")
    if not isinstance(location, str) or not _LOCATION.match(location):
        ctx.flag(None, "BINPERSID", Verdict.SUSPICIOUS, "unusual storage location")
        location = str(location)[:32]
    if not _is_int(numel) or numel < 0 or numel > MAX_NUMEL:  # type: ignore[operator]
        raise BadCall("storage element count is negative or implausible")
    name = storage_type.name
    dtype = STORAGE_DTYPES.get(name)
    itemsize = ITEMSIZE[dtype] if dtype else _QUANT_ITEMSIZE.get(name, 1)
    view = None
    if ctx.mode == "legacy" and pid[5] is not None:
        v = pid[5]
        if not (isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], str)):
            raise BadCall("legacy storage view is malformed")
        if not (_is_int(v[1]) and _is_int(v[2])):
            raise BadCall("legacy storage view is malformed")
        view = (v[0], int(v[1]), int(v[2]))
    return StorageRef(key, name, dtype, itemsize, location, int(numel), view)  # type: ignore[call-overload]


def is_rule(ref: object, rule: Rule) -> bool:
    return isinstance(ref, GlobalRef) and ref.cls.rule is rule
