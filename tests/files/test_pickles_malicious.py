"""A hostile corpus generated here, opcode by opcode: every file must be judged unsafe or refused.

Each payload would create a *sentinel* file if anything ran it. Every case is scanned
(``scan_file``, ``read_table``, ``inspect_file``) and converted (``convert_file``), and the
sentinel must never appear, nor any output file. Case ids follow pickle-security.md section 6.2
(A: call primitives, B: obfuscated names, C: gadgets, D: nested loaders, E: containers,
F: storage abuse, G: parser divergence and resource exhaustion).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdlib.errors import FormatError, SdlibError, UnsafeFileError
from sdlib.files.pickles import open_pickle, read_table, scan_file
from sdlib.taxonomy import Verdict
from sdlib.transform.convert import convert_file
from tests.support.pickles import (
    Asm,
    Call,
    Global,
    Raw,
    StateDict,
    Tensor,
    call_pickle,
    dump,
    python_touch,
    shell_touch,
    torch_legacy,
    torch_zip,
    zip_bytes,
)

F32 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


def benign() -> StateDict:
    return StateDict({"w": Tensor(F32, "F32", (2, 2))})


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], bytes]
    ext: str = ".pt"
    refused_only: bool = False  # FormatError (not a loadable pickle) is the expected outcome


CASES: list[Case] = []


Builder = Callable[[Path], bytes]


def case(id: str, ext: str = ".pt", refused_only: bool = False) -> Callable[[Builder], Builder]:
    def register(fn: Callable[[Path], bytes]) -> Callable[[Path], bytes]:
        CASES.append(Case(id, fn, ext, refused_only))
        return fn

    return register


def _with(fn: Callable[..., bytes], *args: object) -> Builder:
    """A builder calling ``fn(sentinel, *args)`` (keeps loop variables out of lambdas)."""
    return lambda s: fn(s, *args)


def _call(s: Path, module: str, name: str, proto: int = 2) -> bytes:
    return call_pickle(module, name, shell_touch(s), proto=proto)


def _sys(s: Path, proto: int = 2, module: str = "posix") -> bytes:
    return call_pickle(module, "system", shell_touch(s), proto=proto)


# --- A. call primitives ----------------------------------------------------------------------

for _proto in (0, 2, 4):
    case(f"A1-posix.system-proto{_proto}", ".pkl")(_with(_sys, _proto))
for _mod in ("nt", "os"):
    case(f"A1-{_mod}.system", ".pkl")(_with(_sys, 2, _mod))
case("A2-__builtin__.eval")(lambda s: call_pickle("__builtin__", "eval", python_touch(s)))
case("A2-builtins.exec-proto3")(lambda s: call_pickle("builtins", "exec", python_touch(s), proto=3))
case("A2-builtins.compile")(
    lambda s: call_pickle("builtins", "compile", python_touch(s), "x", "exec")
)
case("A2-__builtin__.apply")(lambda s: call_pickle("__builtin__", "apply", "x"))


@case("A2-getattr-import-chain")
def _a2_chain(s: Path) -> bytes:
    a = Asm().proto(2).global_("__builtin__", "getattr").op("MARK")
    a.global_("__builtin__", "__import__").str_("os").op("TUPLE1").op("REDUCE")
    a.str_("system").op("TUPLE").op("REDUCE")
    return a.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


@case("A3-INST-exec", ".pkl")
def _a3_inst(s: Path) -> bytes:
    return Asm().op("MARK").text_str(python_touch(s)).inst("__builtin__", "exec").stop()


@case("A3-OBJ-pty.spawn")
def _a3_obj(s: Path) -> bytes:
    a = Asm().proto(2).op("MARK").global_("pty", "spawn")
    return a.op("MARK").str_("touch").str_(str(s)).op("LIST").op("OBJ").stop()


@case("A3-OBJ-result-popped")
def _a3_pop(s: Path) -> bytes:
    a = Asm().proto(2).op("MARK").global_("posix", "system").str_(shell_touch(s)).op("OBJ")
    return a.op("POP").op("NONE").stop()


@case("A4-NEWOBJ-Popen")
def _a4(s: Path) -> bytes:
    a = Asm().proto(2).global_("subprocess", "Popen").op("MARK").str_("touch").str_(str(s))
    return a.op("LIST").op("TUPLE1").op("NEWOBJ").stop()


@case("A4-NEWOBJ_EX-Popen")
def _a4_ex(s: Path) -> bytes:
    a = Asm().proto(4).global_("subprocess", "Popen").op("MARK").str_("touch").str_(str(s))
    return a.op("LIST").op("TUPLE1").op("EMPTY_DICT").op("NEWOBJ_EX").stop()


@case("A5-BUILD-on-dangerous-instance")
def _a5(s: Path) -> bytes:
    a = Asm().proto(2).global_("subprocess", "Popen").op("EMPTY_TUPLE").op("NEWOBJ")
    return a.op("EMPTY_DICT").str_("args").str_(shell_touch(s)).op("SETITEM").op("BUILD").stop()


@case("A6-sour-pickles-chain")
def _a6(s: Path) -> bytes:
    a = Asm().global_("__builtin__", "getattr").op("MARK").global_("__builtin__", "dict")
    a.text_str("get").op("TUPLE").op("REDUCE").op("MARK").global_("__builtin__", "globals")
    a.op("MARK").op("TUPLE").op("REDUCE").text_str("__builtins__").op("TUPLE").op("REDUCE")
    return a.op("POP").text_str(python_touch(s)).stop()


# --- B. obfuscated name resolution -----------------------------------------------------------


@case("B1-STACK_GLOBAL-from-MEMOIZE-with-decoys", ".pkl")
def _b1(s: Path) -> bytes:
    a = Asm().proto(4).short_str("posix").op("MEMOIZE").short_str("system").op("MEMOIZE")
    a.op("POP").op("POP").short_str("torch").short_str("LongStorage").op("POP").op("POP")
    a.op("BINGET", 0).op("BINGET", 1).stack_global()
    return a.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


@case("B1-STACK_GLOBAL-PUT-BINPUT-mix", ".pkl")
def _b1_mix(s: Path) -> bytes:
    a = Asm().proto(4).short_str("torch").op("BINPUT", 0).short_str("posix").op("PUT", 1)
    a.short_str("system").op("LONG_BINPUT", 2).op("POP").op("POP").op("POP")
    a.op("GET", 1).op("LONG_BINGET", 2).stack_global()
    return a.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


@case("B2-STACK_GLOBAL-fed-by-STRING-at-offset-0", ".pkl")
def _b2(s: Path) -> bytes:
    a = Asm().text_str("posix").binstring("system").stack_global()
    return a.short_binstring(shell_touch(s)[:200]).op("TUPLE1").op("REDUCE").stop()


@case("B3-STACK_GLOBAL-of-computed-strings")
def _b3(s: Path) -> bytes:
    a = Asm().proto(4).global_("builtins", "str").str_("posix").op("TUPLE1").op("REDUCE")
    a.global_("builtins", "str").str_("system").op("TUPLE1").op("REDUCE").stack_global()
    return a.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


@case("B3-STACK_GLOBAL-of-opaque-results")
def _b3_opaque(s: Path) -> bytes:
    a = Asm().proto(4).global_("evilpkg", "name").op("EMPTY_TUPLE").op("REDUCE")
    a.global_("evilpkg", "name2").op("EMPTY_TUPLE").op("REDUCE").stack_global()
    return a.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


@case("B4-module-attribute-poisoning")
def _b4(s: Path) -> bytes:
    a = Asm().proto(4).short_str("torch").short_str("_utils").stack_global()
    a.op("EMPTY_DICT").short_str("_rebuild_tensor").short_str("builtins").op("SETITEM")
    a.op("BUILD").op("POP").global_("torch._utils", "_rebuild_tensor")
    a.short_str("eval").stack_global()
    return a.str_(python_touch(s)).op("TUPLE1").op("REDUCE").stop()


for _mod, _name, _p in (
    ("builtins", "eval.__call__", 4),
    ("pathlib", "os.system", 4),
    ("builtins", "eval.__call__", 2),
):
    case(f"B5-dotted-{_mod}.{_name}-proto{_p}")(_with(_call, _mod, _name, _p))


@case("B6-PROTO-mid-stream")
def _b6(s: Path) -> bytes:
    a = Asm().proto(2).op("MARK").proto(4).global_("posix", "system")
    return a.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").op("TUPLE").op("POP").op("NONE").stop()


@case("B6-duplicate-PROTO")
def _b6_dup(s: Path) -> bytes:
    return Asm().proto(2).proto(2).raw(_sys(s)[2:]).build()


@case("B6-protocol-6", refused_only=True)
def _b6_six(s: Path) -> bytes:
    return Asm().proto(6).raw(_sys(s)[2:]).build()


for _ext in ("EXT1", "EXT2", "EXT4"):
    case(f"B7-{_ext}")(
        _with(lambda s, e: Asm().proto(2).op(e, 1).str_(shell_touch(s)).op("TUPLE1").stop(), _ext)
    )
case("B8-compat-commands.getoutput")(lambda s: call_pickle("commands", "getoutput", "id"))
case("B8-compat-__builtin__.reduce")(lambda s: call_pickle("__builtin__", "reduce", "x"))

# --- C. gadgets that are not on older denylists ----------------------------------------------

GADGETS = [
    ("pip", "main"),
    ("pkgutil", "resolve_name"),
    ("importlib", "import_module"),
    ("inspect", "getattr_static"),
    ("operator", "attrgetter"),
    ("_operator", "methodcaller"),
    ("functools", "partial"),
    ("runpy", "_run_code"),
    ("code", "InteractiveInterpreter.runcode"),
    ("timeit", "timeit"),
    ("cProfile", "run"),
    ("profile", "Profile.run"),
    ("trace", "Trace.runctx"),
    ("pdb", "run"),
    ("bdb", "Bdb.run"),
    ("doctest", "debug_script"),
    ("ensurepip", "_run_pip"),
    ("venv", "create"),
    ("pydoc", "pipepager"),
    ("uuid", "_get_command_stdout"),
    ("imaplib", "IMAP4_stream"),
    ("_osx_support", "_read_output"),
    ("_aix_support", "_read_cmd_output"),
    ("ctypes", "CDLL"),
    ("types", "CodeType"),
    ("marshal", "loads"),
    ("types", "FunctionType"),
    ("socket", "create_connection"),
    ("ssl", "get_server_certificate"),
    ("urllib.request", "urlopen"),
    ("requests.api", "get"),
    ("aiohttp.client", "ClientSession"),
    ("webbrowser", "open"),
    ("_io", "FileIO"),
    ("io", "open"),
    ("logging", "FileHandler"),
    ("shutil", "rmtree"),
    ("numpy.f2py.crackfortran", "getlincoef"),
    ("numpy.testing._private.utils", "runstring"),
    ("torch.utils.collect_env", "run"),
    ("torch._inductor.codecache", "compile_file"),
    ("torch.jit.unsupported_tensor_ops", "execWrapper"),
    ("torch.hub", "load"),
    ("asyncio.unix_events", "_UnixSubprocessTransport"),
    ("multiprocessing.util", "spawnv_passfds"),
    ("copyreg", "_reconstructor"),
    ("sys", "exit"),
    ("evilpkg.tools", "run"),
    ("pytorch_lightning.utilities.cloud_io", "load"),
    ("torch", "load"),
]
for _mod, _name in GADGETS:
    case(f"C-{_mod}.{_name}", ".ckpt")(_with(_call, _mod, _name, 4))

# --- D. nested loaders -----------------------------------------------------------------------


def _nested(s: Path, module: str, name: str) -> bytes:
    return Asm().proto(2).global_(module, name).binbytes(_sys(s)).op("TUPLE1").op("REDUCE").stop()


for _mod, _name in (
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("torch.serialization", "load"),
    ("torch.storage", "_load_from_bytes"),
    ("numpy", "load"),
    ("dill", "loads"),
):
    case(f"D-{_mod}.{_name}(inner pickle)")(_with(_nested, _mod, _name))


@case("D-functools.partial(torch.load)")
def _d_partial(s: Path) -> bytes:
    a = Asm().proto(2).global_("functools", "partial").global_("torch", "load").str_(str(s))
    return a.op("TUPLE2").op("REDUCE").op("EMPTY_TUPLE").op("REDUCE").stop()


@case("D-numpy-object-array-holding-a-call")
def _d_numpy(s: Path) -> bytes:
    reconstruct = Call(
        Global("numpy.core.multiarray", "_reconstruct"), (Global("numpy", "ndarray"), (0,), b"b")
    )
    body = Raw(_sys(s)[2:-1])
    data, _ = dump({"arr": reconstruct, "item": body})
    return data


# --- E. containers and routing ---------------------------------------------------------------

case("E1-torch-zip-hostile-data.pkl")(lambda s: torch_zip(None, pickle_bytes=_sys(s)))
case("E2-pickle-in-data.txt", ".zip")(lambda s: zip_bytes([("data.txt", _sys(s, 0))]))
case("E2-orphan-storage-record-is-a-pickle")(
    lambda s: torch_zip(benign(), extra=[("archive/data/9", _sys(s))])
)
case("E2-referenced-storage-record-is-a-pickle")(
    lambda s: torch_zip(StateDict({"w": Tensor(_sys(s), "U8", (len(_sys(s)),))}))
)


def _patch_both(z: bytes, name: bytes, lfh_off: int, cd_off: int, value: bytes) -> bytes:
    out = bytearray(z)
    lfh = out.find(b"PK\x03\x04")
    while out[lfh + 30 : lfh + 30 + len(name)] != name:
        lfh = out.find(b"PK\x03\x04", lfh + 1)
    cd = out.find(b"PK\x01\x02")
    while out[cd + 46 : cd + 46 + len(name)] != name:
        cd = out.find(b"PK\x01\x02", cd + 1)
    if lfh_off >= 0:
        out[lfh + lfh_off : lfh + lfh_off + len(value)] = value
    if cd_off >= 0:
        out[cd + cd_off : cd + cd_off + len(value)] = value
    return bytes(out)


def _hostile_zip(s: Path) -> bytes:
    return torch_zip(None, pickle_bytes=_sys(s))


def _flagged(s: Path, bit: int) -> bytes:
    return _patch_both(_hostile_zip(s), b"archive/data.pkl", 6, 8, struct.pack("<H", bit))


case("E3-local-header-name-differs")(
    lambda s: _patch_both(_hostile_zip(s), b"archive/data.pkl", 30, -1, b"archive/datp.pkl")
)
for _bit in (0x1, 0x20, 0x40):
    case(f"E3-flag-0x{_bit:x}")(_with(_flagged, _bit))
case("E3-crc-mismatch")(
    lambda s: _patch_both(_hostile_zip(s), b"archive/data.pkl", 14, 16, b"\x01\x02\x03\x04")
)


@case("E3-duplicate-data.pkl-malicious-last")
def _e3_dup_last(s: Path) -> bytes:
    good, _ = dump(benign())
    return zip_bytes(
        [
            ("archive/data.pkl", good),
            ("archive/data/0", F32),
            ("archive/data.pkl", _sys(s)),
            ("archive/version", b"3\n"),
        ]
    )


@case("E3-duplicate-data.pkl-malicious-first")
def _e3_dup_first(s: Path) -> bytes:
    good, _ = dump(benign())
    return zip_bytes(
        [
            ("archive/data.pkl", _sys(s)),
            ("archive/data.pkl", good),
            ("archive/data/0", F32),
            ("archive/version", b"3\n"),
        ]
    )


case("E4-second-root-folder")(
    lambda s: torch_zip(benign(), extra=[("other/data.pkl", dump(benign())[0])])
)
case("E4-entry-without-folder")(lambda s: torch_zip(benign(), extra=[("README", b"hi")]))
for _bad in ("archive/../evil.pkl", "/archive/abs.pkl", "archive\\win.pkl"):
    case(f"E4-unsafe-name-{_bad!r}")(
        _with(lambda s, n: torch_zip(benign(), extra=[(n, b"N.")]), _bad)
    )
case("E4-unsafe-name-NUL")(
    lambda s: _patch_both(
        torch_zip(benign(), extra=[("archive/nulX.pkl", b"N.")]),
        b"archive/nulX.pkl",
        30,
        46,
        b"archive/nul\x00.pkl",
    )
)
case("E5-pickle-with-appended-zip-polyglot")(lambda s: _sys(s) + torch_zip(benign()))
case("E5-prepended-junk", refused_only=True)(lambda s: b"\x00" * 64 + torch_zip(benign()))
case("E5-benign-pickle-then-zip")(lambda s: dump([1])[0] + torch_zip(benign()))
case("E5-bytes-after-end-record")(lambda s: torch_zip(benign()) + b"junk" * 4)
case("E5-two-zips-concatenated", refused_only=True)(lambda s: _hostile_zip(s) + torch_zip(benign()))
case("E6-torchscript-archive")(
    lambda s: torch_zip(
        benign(),
        extra=[
            ("archive/constants.pkl", b"\x80\x02)."),
            ("archive/code/__torch__.py", b"import os"),
        ],
    )
)


@case("E7-deflate-bomb-in-data.pkl")
def _e7_bomb(s: Path) -> bytes:
    z = zip_bytes([("archive/data.pkl", b"N" * (300 << 20) + b".")], compress=["archive/data.pkl"])
    return z


@case("E7-size-lie", refused_only=True)
def _e7_lie(s: Path) -> bytes:
    return _patch_both(
        _hostile_zip(s), b"archive/data.pkl", 18, 20, struct.pack("<II", 1 << 30, 1 << 30)
    )


case("E8-7z-wrapped", refused_only=True)(lambda s: b"7z\xbc\xaf\x27\x1c" + b"\x00" * 64)


@case("E8-tar-legacy-with-hostile-pickle-member", ".tar")
def _e8_tar(s: Path) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("sys_info", dump({"little_endian": True})[0]), ("pickle", _sys(s))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _npy(payload: bytes) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


case("E8-npy-object-array-hostile", ".npy")(lambda s: _npy(_sys(s)))
case("E8-npz-hostile", ".npz")(lambda s: zip_bytes([("a.npy", _npy(_sys(s)))]))
case("E9-plain-hostile-pickle-named-.pt")(lambda s: _sys(s))


@case("E9-legacy-magic-from-eval")
def _e9_eval_magic(s: Path) -> bytes:
    magic = call_pickle("__builtin__", "eval", "0x1950A86A20F9469CFC6C")
    return magic + dump(1001)[0] + dump({})[0] + _sys(s)


case("E9-legacy-literal-magic-hostile-main")(lambda s: torch_legacy(benign(), main=_sys(s)))
case("E9-legacy-hostile-storage-keys")(lambda s: torch_legacy(benign(), keys=_sys(s)))


@case("E9-legacy-extra-stream-before-data")
def _e9_extra(s: Path) -> bytes:
    good = torch_legacy(benign())
    keys = dump(["0"])[0]
    at = good.index(keys, len(good) - len(F32) - 8 - len(keys))
    return good[: at + len(keys)] + _sys(s) + good[at + len(keys) :]


case("E10-broken-pickle-payload-then-garbage", ".pkl")(lambda s: _sys(s)[:-1] + b"\xff\xfe")

# --- F. storage and tensor abuse (each inside a well-formed torch zip) -----------------------


def _tensor_zip(tensor_opcodes: bytes, records: dict[str, bytes] | None = None) -> bytes:
    data, _ = dump({"w": Raw(tensor_opcodes)})
    return torch_zip(None, pickle_bytes=data, storages=records or {"0": F32})


def _rebuild(
    pid: bytes,
    offset: bytes = b"K\x00",
    size: bytes = b"K\x04\x85",
    stride: bytes = b"K\x01\x85",
    hooks: bytes = b"}",
) -> bytes:
    a = Asm().global_("torch._utils", "_rebuild_tensor_v2").op("MARK").raw(pid).op("BINPERSID")
    return a.raw(offset + size + stride).op("FALSE").raw(hooks).op("TUPLE").op("REDUCE").build()


def _pid(
    typename: str = "storage", cls: str = "FloatStorage", key: str = "0", numel: int = 4
) -> bytes:
    a = Asm().op("MARK").str_(typename).global_("torch", cls).str_(key).str_("cpu").int_(numel)
    return a.op("TUPLE").build()


case("F1-pid-not-a-tuple")(lambda s: _tensor_zip(_rebuild(Asm().str_("0").build())))
case("F1-pid-typename-module")(lambda s: _tensor_zip(_rebuild(_pid(typename="module"))))
case("F1-pid-key-not-a-string")(
    lambda s: _tensor_zip(
        _rebuild(
            Asm()
            .op("MARK")
            .str_("storage")
            .global_("torch", "FloatStorage")
            .int_(0)
            .str_("cpu")
            .int_(4)
            .op("TUPLE")
            .build()
        )
    )
)
case("F1-pid-key-path")(lambda s: _tensor_zip(_rebuild(_pid(key="../0")), {"0": F32}))
case("F1-missing-record")(lambda s: _tensor_zip(_rebuild(_pid(key="7"))))
case("F2-numel-larger-than-record")(lambda s: _tensor_zip(_rebuild(_pid(numel=1 << 20))))
case("F2-numel-smaller-than-record")(lambda s: _tensor_zip(_rebuild(_pid(numel=2))))
case("F3-offset-out-of-bounds")(lambda s: _tensor_zip(_rebuild(_pid(), offset=b"K\x03")))
case("F3-size-out-of-bounds")(lambda s: _tensor_zip(_rebuild(_pid(), size=b"K\x40\x85")))
case("F3-negative-stride")(lambda s: _tensor_zip(_rebuild(_pid(), stride=b"J\xff\xff\xff\xff\x85")))
case("F3-rank-mismatch")(lambda s: _tensor_zip(_rebuild(_pid(), stride=b"K\x01K\x01\x86")))
case("F3-huge-size-product")(
    lambda s: _tensor_zip(
        _rebuild(_pid(), size=b"J\xff\xff\xff\x7fJ\xff\xff\xff\x7f\x86", stride=b"K\x00K\x00\x86")
    )
)
case("F3-float-offset")(lambda s: _tensor_zip(_rebuild(_pid(), offset=b"G" + struct.pack(">d", 0))))


def _other_rebuild(s: Path, function: str) -> bytes:
    call = Asm().global_("torch._utils", function).raw(_pid()).op("BINPERSID")
    return _tensor_zip(call.op("TUPLE1").op("REDUCE").build())


@case("F4-same-key-two-storage-types")
def _f4(s: Path) -> bytes:
    first, second = _rebuild(_pid()), _rebuild(_pid(cls="LongStorage", numel=2))
    data, _ = dump({"w": Raw(first), "v": Raw(second)})
    return torch_zip(None, pickle_bytes=data, storages={"0": F32})


case("F5-SETITEMS-on-a-tensor")(lambda s: _tensor_zip(_rebuild(_pid()) + b"(K\x00K\x01u"))
case("F5-APPENDS-on-a-tuple")(lambda s: _tensor_zip(b")(K\x01e"))
case("F5-BUILD-on-a-tensor")(
    lambda s: _tensor_zip(_rebuild(_pid()) + b"}X\x01\x00\x00\x00aK\x01sb")
)
for _fn in (
    "_rebuild_qtensor",
    "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
):
    case(f"F6-{_fn}")(_with(_other_rebuild, _fn))
case("F6-non-empty-backward-hooks")(
    lambda s: _tensor_zip(_rebuild(_pid(), hooks=b"}K\x01" + _sys(s)[2:-1] + b"s"))
)

# --- G. parser divergence and resource exhaustion --------------------------------------------


@case("G1-FRAME-straddles-an-opcode")
def _g1(s: Path) -> bytes:
    body = Asm().short_str("posix").short_str("system").stack_global().build()
    return Asm().proto(4).frame(3).raw(body).str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


@case("G1-nested-FRAME")
def _g1_nested(s: Path) -> bytes:
    inner = Asm().frame(2).op("NONE").op("POP").build()
    return Asm().proto(4).frame(len(inner) + 4).raw(inner).raw(_sys(s, 4)[2:]).build()


@case("G2-multi-stream-memo-confusion", ".pkl")
def _g2(s: Path) -> bytes:
    first = Asm().proto(4).short_str("collections").op("MEMOIZE").short_str("OrderedDict")
    first.op("MEMOIZE").stack_global().op("POP").op("NONE")
    second = Asm().proto(4).short_str("posix").op("MEMOIZE").short_str("system").op("MEMOIZE")
    second.op("POP").op("POP").op("BINGET", 0).op("BINGET", 1).stack_global()
    return first.stop() + second.str_(shell_touch(s)).op("TUPLE1").op("REDUCE").stop()


case("G2-second-stream-after-STOP-in-data.pkl")(
    lambda s: torch_zip(benign(), pickle_bytes=dump(benign())[0] + _sys(s))
)
case("G3-memo-key-missing-after-payload", ".pkl")(
    lambda s: _sys(s)[:-1] + Asm().op("BINGET", 9).stop()
)


@case("G3-memo-int-fed-to-STACK_GLOBAL", ".pkl")
def _g3_int(s: Path) -> bytes:
    a = Asm().proto(4).int_(42).op("MEMOIZE").short_str("system").op("MEMOIZE").op("POP").op("POP")
    return a.op("BINGET", 0).op("BINGET", 1).stack_global().stop()


case("G4-BINUNICODE8-claims-2**62-bytes", refused_only=True)(
    lambda s: Asm().proto(4).raw(b"\x8d" + struct.pack("<Q", 1 << 62) + b"x").stop()
)
case("G4-million-nested-MARKs")(lambda s: Asm().proto(2).raw(b"(" * 1_000_000).stop())
case("G4-GET-PUT-ratio")(
    lambda s: Asm().proto(2).op("NONE").op("BINPUT", 0).raw(b"0h\x00" * 200_000).stop()
)
case("G5-text-INT-with-a-million-digits", ".pkl")(lambda s: b"I" + b"9" * 1_000_000 + b"\n.")

# --- running ---------------------------------------------------------------------------------


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_hostile_file_is_unsafe_or_refused_and_never_runs(c: Case, tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    path = tmp_path / f"model{c.ext}"
    path.write_bytes(c.build(sentinel))
    try:
        scan = scan_file(path)
    except FormatError:
        assert c.refused_only or c.id.startswith("E8-7z"), "refused where unsafe was expected"
    else:
        assert not c.refused_only or scan.verdict is Verdict.UNSAFE
        assert scan.verdict is Verdict.UNSAFE, scan.findings
        assert any(f.severity is Verdict.UNSAFE for f in scan.findings)
    with pytest.raises(SdlibError):
        read_table(path) if c.refused_only else _raise_if_unsafe(path)
    _inspect(path)
    with pytest.raises((UnsafeFileError, FormatError)):
        convert_file(path)
    assert not sentinel.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def _raise_if_unsafe(path: Path) -> None:
    loaded = open_pickle(path)
    if loaded.scan.unsafe:
        raise UnsafeFileError("unsafe")


def _inspect(path: Path) -> None:
    from sdlib.inspect import inspect_file

    try:
        report = inspect_file(path)
    except SdlibError:
        return
    assert report.safety is None or report.safety.verdict is Verdict.UNSAFE


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_the_payloads_are_live(tmp_path: Path) -> None:
    """Control: the same bytes DO create the sentinel under a real unpickler (in a child)."""
    for i, payload in enumerate((_sys, _a2_chain, _b1, _b2, _g2)):
        sentinel = tmp_path / f"PWNED{i}"
        data = payload(sentinel)
        code = "import pickle, sys; f = open(sys.argv[1], 'rb'); pickle.load(f); pickle.load(f)"
        path = tmp_path / f"p{i}.pkl"
        path.write_bytes(data)
        subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=30)
        assert sentinel.exists(), payload.__name__


def test_catalogue_covers_the_reference_checklist() -> None:
    groups = {c.id.split("-")[0] for c in CASES}
    assert {
        "A1",
        "A2",
        "A3",
        "A4",
        "A5",
        "A6",
        "B1",
        "B2",
        "B3",
        "B4",
        "B5",
        "B6",
        "B7",
        "B8",
        "C",
        "D",
        "E1",
        "E2",
        "E3",
        "E4",
        "E5",
        "E6",
        "E7",
        "E8",
        "E9",
        "E10",
        "F1",
        "F2",
        "F3",
        "F4",
        "F5",
        "F6",
        "G1",
        "G2",
        "G3",
        "G4",
        "G5",
    } <= groups
    assert len(CASES) >= 120


def test_crc_of_real_zip_members_is_checked(tmp_path: Path) -> None:
    z = torch_zip(benign())
    assert zlib.crc32(dump(benign())[0]) != 0
    bad = _patch_both(z, b"archive/data.pkl", 14, 16, b"\x00\x00\x00\x01")
    path = tmp_path / "m.pt"
    path.write_bytes(bad)
    assert scan_file(path).verdict is Verdict.UNSAFE
