"""What a pickle global may be: the allowlist decides, the denylist only explains.

Every ``(module, name)`` pair a pickle names falls in one of four classes:

- **allowed**: what real SD checkpoints, LoRAs, embeddings and hypernetworks need. Each maps to
  a *handler* name; the symbolic VM (``_pickle_vm``) interprets it with an inert stub.
- **inert**: known harmless training objects (Lightning callbacks, ``argparse.Namespace``,
  omegaconf containers). Reported as *suspicious* because ``torch.load(weights_only=True)``
  rejects them and ``weights_only=False`` would import their packages; sdlib never does.
- **dangerous**: the consolidated denylist of pickle-security.md section 2.2 (modules matched with
  their submodules, after Python 2 name remapping). Reported as *unsafe*.
- **unknown**: everything else. Naming one is suspicious; *calling* one (REDUCE, INST, OBJ) is
  unsafe, because "not on a denylist yet" is how every scanner bypass started.

Stdlib only: this module is data plus two small functions.
"""

from __future__ import annotations

import _compat_pickle
import re
from dataclasses import dataclass
from enum import Enum

from sdlib.taxonomy import Verdict

__all__ = ["Finding", "GlobalClass", "Rule", "classify_global", "normalise"]


@dataclass(frozen=True)
class Finding:
    """One reason a pickle is not plainly safe.

    ``module``/``name`` name the global involved (empty for container findings); ``opcode`` is
    the pickle opcode (``GLOBAL``, ``REDUCE``...) or ``zip``/``layout`` for container findings;
    ``offset`` is the byte offset inside ``entry`` (an archive entry, or a stream label such as
    ``pickle@0`` whose offsets count from the start of the file).
    """

    module: str
    name: str
    opcode: str
    offset: int
    entry: str
    severity: Verdict
    reason: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}" if self.module else self.name

    def to_dict(self) -> dict[str, object]:
        return {
            "module": self.module,
            "name": self.name,
            "global": self.qualname or None,
            "opcode": self.opcode,
            "offset": self.offset,
            "entry": self.entry,
            "severity": str(self.severity),
            "reason": self.reason,
        }

    def __str__(self) -> str:
        where = f"{self.entry}@{self.offset}" if self.entry else f"@{self.offset}"
        what = f"{self.qualname} " if self.module else ""
        return f"{self.severity}: {what}({self.opcode} at {where}): {self.reason}"


class Rule(Enum):
    ALLOWED = "allowed"
    INERT = "inert"
    DANGEROUS = "dangerous"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class GlobalClass:
    """The verdict on one ``(module, name)`` pair, as resolved by ``find_class``."""

    module: str  # after Python 2 remapping
    name: str
    rule: Rule
    handler: str = ""  # for ALLOWED: how the VM interprets it
    reason: str = ""


# --- allowlist -------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STORAGES = _words(
    "DoubleStorage FloatStorage HalfStorage BFloat16Storage LongStorage IntStorage ShortStorage "
    "CharStorage ByteStorage BoolStorage ComplexFloatStorage ComplexDoubleStorage QInt8Storage "
    "QUInt8Storage QInt32Storage QUInt4x2Storage QUInt2x4Storage"
)

#: torch dtype attribute -> safetensors dtype (None: no safetensors equivalent).
TORCH_DTYPES: dict[str, str | None] = {
    "float64": "F64", "double": "F64", "float32": "F32", "float": "F32", "float16": "F16",
    "half": "F16", "bfloat16": "BF16", "int64": "I64", "long": "I64", "int32": "I32",
    "int": "I32", "int16": "I16", "short": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
    "uint16": "U16", "uint32": "U32", "uint64": "U64", "complex64": "C64", "cfloat": "C64",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e8m0fnu": "F8_E8M0",
    "complex128": None, "cdouble": None, "float8_e4m3fnuz": None, "float8_e5m2fnuz": None,
    "qint8": None, "quint8": None, "qint32": None,
}  # fmt: skip

ALLOWED: dict[tuple[str, str], str] = {
    ("collections", "OrderedDict"): "odict",
    ("collections", "Counter"): "odict",
    ("collections", "defaultdict"): "defaultdict",
    ("torch._utils", "_rebuild_tensor"): "rebuild_v1",
    ("torch._utils", "_rebuild_tensor_v2"): "rebuild_v2",
    ("torch._utils", "_rebuild_tensor_v3"): "rebuild_v3",
    ("torch._utils", "_rebuild_parameter"): "parameter",
    ("torch._utils", "_rebuild_parameter_with_state"): "parameter",
    ("torch._tensor", "_rebuild_from_type_v2"): "from_type_v2",
    ("torch", "Tensor"): "tensor_type",
    ("torch.nn.parameter", "Parameter"): "tensor_type",
    ("torch", "UntypedStorage"): "storage",
    ("torch.storage", "UntypedStorage"): "storage",  # how torch 2.x names it for v3 tensors
    ("torch", "Size"): "size",
    ("torch", "device"): "device",
    # A pickled ParameterDict holds the textual-inversion vectors in early A1111 embeddings.
    ("torch.nn.modules.container", "ParameterDict"): "module",
    ("_codecs", "encode"): "codecs_encode",
    ("numpy", "dtype"): "np_dtype",
    ("numpy", "ndarray"): "np_ndarray",
    ("numpy.core.multiarray", "scalar"): "np_scalar",
    ("numpy._core.multiarray", "scalar"): "np_scalar",
    ("numpy.core.multiarray", "_reconstruct"): "np_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "np_reconstruct",
}
ALLOWED.update({("torch", s): "storage" for s in _STORAGES})
ALLOWED.update({("torch", d): "dtype" for d in TORCH_DTYPES})
# Pure builtin types: tokens (defaultdict factories) or constructors over primitive values.
SAFE_BUILTINS = _words(
    "set frozenset bytearray complex list dict int float str bytes tuple bool object slice range"
)
ALLOWED.update({("builtins", b): "builtin" for b in SAFE_BUILTINS})

#: Storage class -> safetensors dtype (None: quantized or complex128, not convertible).
STORAGE_DTYPES: dict[str, str | None] = {
    "DoubleStorage": "F64", "FloatStorage": "F32", "HalfStorage": "F16",
    "BFloat16Storage": "BF16", "LongStorage": "I64", "IntStorage": "I32",
    "ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL",
    "ComplexFloatStorage": "C64", "ComplexDoubleStorage": None, "QInt8Storage": None,
    "QUInt8Storage": None, "QInt32Storage": None, "QUInt4x2Storage": None,
    "QUInt2x4Storage": None, "UntypedStorage": "U8",
}  # fmt: skip

# --- inert training objects (suspicious, never imported) -------------------------------------

INERT: frozenset[tuple[str, str]] = frozenset(
    {
        ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
        # A1111 allowlists this module object; old Lightning checkpoints reference it.
        ("pytorch_lightning.callbacks", "model_checkpoint"),
        ("pytorch_lightning.callbacks.early_stopping", "EarlyStopping"),
        ("pytorch_lightning.callbacks.lr_monitor", "LearningRateMonitor"),
        ("pytorch_lightning.utilities.parsing", "AttributeDict"),
        ("lightning_fabric.utilities.data", "AttributeDict"),
        ("lightning.fabric.utilities.data", "AttributeDict"),
        ("argparse", "Namespace"),
        ("omegaconf.dictconfig", "DictConfig"),
        ("omegaconf.listconfig", "ListConfig"),
        ("omegaconf.base", "ContainerMetadata"),
        ("omegaconf.base", "Metadata"),
        ("omegaconf.nodes", "AnyNode"),
        ("omegaconf.nodes", "StringNode"),
        ("omegaconf.nodes", "IntegerNode"),
        ("omegaconf.nodes", "FloatNode"),
        ("omegaconf.nodes", "BooleanNode"),
        ("typing", "Any"),
        ("torch.torch_version", "TorchVersion"),
        ("pathlib", "PosixPath"),
        ("pathlib", "WindowsPath"),
    }
)

# --- denylist (for the report; the allowlist already decides) --------------------------------

#: Whole modules (and their submodules) that reach code, files, processes or the network.
DANGEROUS_MODULES: frozenset[str] = _words(
    """
    os posix nt subprocess _posixsubprocess pty commands multiprocessing signal _signal
    threading _thread atexit asyncio uuid _osx_support _aix_support _pyrepl imaplib pydoc
    webbrowser venv ensurepip pip ctypes _ctypes _interpreters _xxsubinterpreters
    sys runpy code codeop marshal types importlib _frozen_importlib _frozen_importlib_external
    _imp imp pkgutil inspect gc site zipimport compileall py_compile operator _operator functools
    copyreg copy_reg cloudpickle dill pdb bdb trace profile cProfile _lsprof timeit doctest
    unittest test idlelib lib2to3 pickle _pickle cPickle joblib shelve _io io shutil tempfile
    filecmp fileinput glob linecache tarfile zipfile distutils setuptools logging syslog mmap
    sqlite3 socket _socket ssl _ssl http httplib urllib urllib2 requests aiohttp httpx2 smtplib
    ftplib poplib telnetlib nntplib xmlrpc socketserver select selectors fickling picklescan
    modelscan modelaudit builtins __builtin__ __builtins__ numpy.f2py numpy.distutils
    numpy.testing numpy.ctypeslib torch._inductor torch._dynamo torch.jit torch.hub
    torch.distributed.rpc torch.utils.collect_env torch.utils.bottleneck torch._C
    torch.utils.data.datapipes torch.utils._config_module torch.fx torch.package torch.ops
    torch._ops torch.cuda torch.backends torch.classes torch.library torch.utils.cpp_extension
    torch.compiler pandas ast dis weakref contextlib concurrent queue sched resource fcntl
    termios tty pwd grp crypt spwd curses readline rlcompleter cmd platform sysconfig
    """
)

#: Single names in otherwise-unlisted modules (nested loaders and torch gadgets).
DANGEROUS_NAMES: frozenset[tuple[str, str]] = frozenset(
    {
        ("torch", "load"),
        ("torch", "compile"),
        ("torch", "save"),
        ("torch", "from_file"),
        ("torch", "_load_global_deps"),
        ("torch.serialization", "load"),
        ("torch.serialization", "_load"),
        ("torch.serialization", "_legacy_load"),
        ("torch.storage", "_load_from_bytes"),
        ("torch.storage", "_StorageBase"),
        ("numpy", "load"),
        ("numpy", "loads"),
        ("numpy", "fromfile"),
        ("numpy", "save"),
        ("numpy.lib.npyio", "load"),
        ("numpy.lib.format", "read_array"),
    }
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")

#: Every module sdlib knows by name: a global that names one of these resolves to a *module
#: object*, which BUILD could then rewrite (picklescan's sys_module_override sploit).
_KNOWN_MODULES: frozenset[str] = frozenset(
    {m for m, _ in ALLOWED} | {m for m, _ in INERT} | {m for m, _ in DANGEROUS_NAMES}
    | {"torch._utils", "torch._tensor", "torch.nn", "torch.nn.modules", "torch.nn.parameter",
       "torch.serialization", "torch.storage", "numpy.core", "numpy._core", "torch.utils",
       "os.path", "torch.nn.modules.container", "collections.abc"}
)  # fmt: skip


def normalise(module: str, name: str, protocol: int) -> tuple[str, str]:
    """Apply the Python 2 renaming ``find_class`` does when the stream's protocol is below 3."""
    if protocol < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return module, name


def _is_dangerous_module(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in DANGEROUS_MODULES for i in range(1, len(parts) + 1))


def classify_global(raw_module: str, raw_name: str, protocol: int) -> GlobalClass:
    """Classify one global exactly as ``find_class`` would resolve it, without importing."""
    module, name = normalise(raw_module, raw_name, protocol)
    if not _MODULE.match(module) or not _IDENT.match(name.split(".")[0] if name else ""):
        return GlobalClass(module, name, Rule.DANGEROUS, reason="not a valid Python name")
    if "." in name:
        # find_class walks dotted names attribute by attribute (protocol 4+): builtins
        # 'eval.__call__', pathlib 'os.system'. No legitimate checkpoint needs one.
        return GlobalClass(
            module, name, Rule.DANGEROUS, reason="dotted name reaches attributes of attributes"
        )
    handler = ALLOWED.get((module, name))
    if handler is not None:
        return GlobalClass(module, name, Rule.ALLOWED, handler=handler)
    if (module, name) in INERT:
        return GlobalClass(
            module, name, Rule.INERT, reason="training object not needed for the weights"
        )
    if module in {"builtins", "__builtin__", "__builtins__"} or raw_module == "__builtin__":
        return GlobalClass(module, name, Rule.DANGEROUS, reason="builtin that can run code")
    if (module, name) in DANGEROUS_NAMES or _is_dangerous_module(module):
        return GlobalClass(module, name, Rule.DANGEROUS, reason=_deny_reason(module, name))
    if raw_module != module and _is_dangerous_module(raw_module):
        return GlobalClass(module, name, Rule.DANGEROUS, reason=_deny_reason(raw_module, name))
    if f"{module}.{name}" in _KNOWN_MODULES:
        return GlobalClass(
            module, name, Rule.DANGEROUS, reason="names a module object, which BUILD can rewrite"
        )
    return GlobalClass(module, name, Rule.UNKNOWN, reason="not on the allowlist")


_REASONS: tuple[tuple[frozenset[str], str], ...] = (
    (_words("os posix nt subprocess _posixsubprocess pty commands multiprocessing"),
     "runs processes"),
    (_words("pickle _pickle cPickle joblib shelve dill cloudpickle"), "nested deserializer"),
    (_words("socket _socket ssl _ssl http httplib urllib urllib2 requests aiohttp httpx2 "
            "smtplib ftplib xmlrpc"), "network access"),
    (_words("runpy code codeop marshal types importlib pkgutil inspect operator _operator "
            "functools sys builtins __builtin__"), "code execution or reflection"),
)  # fmt: skip


def _deny_reason(module: str, name: str) -> str:
    if (module, name) in DANGEROUS_NAMES:
        return "nested loader: deserializes more attacker bytes"
    top = module.split(".")[0]
    for modules, reason in _REASONS:
        if top in modules:
            return reason
    return "on the denylist of known code-execution gadgets"
