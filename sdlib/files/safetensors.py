"""A bounded, validating reader of safetensors headers.

Reads the 8-byte length and the JSON header only (never tensor data), and checks the
header against the file: a hostile or truncated file gives a ``FormatError`` that says
what is wrong, never a traceback or an unbounded read.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import os
import re
import struct
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

import msgspec

from sdlib.errors import FormatError
from sdlib.files.opening import open_regular, os_problem, printable
from sdlib.files.tensors import DTYPE_SIZES, TensorColumns, TensorInfo, TensorTable
from sdlib.hashing import MAX_HEADER
from sdlib.taxonomy import Container

#: More dimensions than any model tensor has (PyTorch allows 64; GGUF 4).
MAX_DIMS = 64


def parse_header(raw: bytes, file_size: int, path: str | None = None) -> TensorTable:
    """Validate a decoded header (the JSON bytes) for a file of ``file_size`` bytes."""
    table = _fast_table(raw, file_size)
    if table is not None:
        return table
    return _careful_table(raw, file_size, path)


def _careful_table(raw: bytes, file_size: int, path: str | None = None) -> TensorTable:
    """The table of any header, checked entry by entry: the judge of all the bulk path does
    not accept, with a message saying what is wrong."""
    data_offset = 8 + len(raw)
    data_size = file_size - data_offset
    header = _load_json(raw, path)
    if not isinstance(header, dict):
        raise FormatError("invalid safetensors header: not a JSON object", path=path)
    if b"\\u" in raw:  # only a \uXXXX escape can make a lone surrogate
        header = {_text(k): v for k, v in header.items()}
    metadata = _metadata(header.pop("__metadata__", None), path)
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        tensors[name] = _tensor(name, entry, path)
    _check_layout(tensors, data_size, path)
    return TensorTable(tensors, Container.SAFETENSORS, metadata, data_offset)


def _fast_table(raw: bytes, file_size: int) -> TensorTable | None:
    """The table of a well-formed header, decoded and checked in bulk; None for anything else.

    The careful path (``json.loads`` with a duplicate-refusing hook, then ``_tensor`` per
    entry) costs ~15 us a tensor, and a first scan meets millions. The compiled reader
    (``_stheader.c``, where it was built) reads the entries first, in one pass of C; what it
    does not accept (it reads only the strict subset writers make), msgspec decodes into
    typed structs, so that every type and range check of ``_tensor`` runs in C
    while parsing; the checks left (duplicates, sizes, layout) run as C-level passes over
    columns. It only ever *accepts*: a header any check could refuse, and any header this
    path cannot prove well-formed (metadata not first or not all strings, an escape in a
    tensor name, an entry with other members, ...) returns None, and the careful path
    decides, with its exact message. Accepting here means the careful path would return an
    equal table. msgspec accepts a subset of what ``json.loads`` does (no NaN, no byte-order
    mark, no lone surrogates, strict UTF-8), and reads every text it accepts to the same
    values.
    """
    parts = _split_metadata(raw)
    if parts is None:
        return None
    metadata, start, after_comma = parts
    data_size = file_size - 8 - len(raw)
    if _native is not None:
        read = _native.read_entries(raw, start, after_comma, data_size)
        if read is not None:
            columns = TensorColumns.packed(*read)
            return TensorTable(columns, Container.SAFETENSORS, metadata, 8 + len(raw))
    # The entries' object: the bytes after the metadata member, reopened with '{'.
    body = raw if start == 0 else b"{" + memoryview(raw)[start:]
    try:
        entries = _ENTRIES.decode(body)
    except msgspec.DecodeError:
        return None
    n = len(entries)
    if after_comma and not n:  # '{}' after the metadata's ',': a trailing comma
        return None
    # Duplicates: a dict keeps the last of two equal names silently, and a struct the last
    # of two equal members. msgspec decoded every entry and member it met (a duplicate
    # before it was replaced), and an entry's members are only "dtype", "shape" and
    # "data_offsets" (each at least once), whose values hold one string in all (the
    # dtype): so the body holds 5 strings per decoded entry and more exactly when an entry
    # or a member was lost. Without a backslash in it no string is escaped, so each string
    # is two '"' bytes and no '"' is anything else: one count of them proves it.
    if (
        raw.find(b"\\", start) >= 0
        or "__metadata__" in entries  # a second one, shaped like an entry
        or raw.count(b'"', start) != 10 * n
    ):
        return None
    values = entries.values()
    dtypes = list(map(_DTYPE, values))
    shapes = list(map(_SHAPE, values))
    flat = list(itertools.chain.from_iterable(map(_OFFSETS, values)))
    begins = flat[0::2]
    ends = flat[1::2]
    counts = list(map(math.prod, shapes))
    if counts and max(counts) >= _HUGE:
        return None
    # Each tensor's bytes as its shape and dtype need (so also begin <= end: a count and a
    # size are never negative), with _tensor's own arithmetic.
    sizes = map(DTYPE_SIZES.__getitem__, dtypes)
    if list(map(operator.sub, ends, begins)) != list(map(operator.mul, counts, sizes)):
        return None
    # Layout: the non-empty spans must not overlap nor run past the data. Writers store
    # them in file order, one after another: then begin0 <= end0 <= begin1 <= ... proves
    # it (one run for sorted's merge to find), and the last end bounds every other.
    chained = flat == sorted(flat) and (ends[-1] if n else 0) <= data_size
    if not (chained or _spans_fit(begins, ends, data_size)):
        return None
    rows = dict(zip(entries, range(n), strict=True))
    columns = TensorColumns(rows, dtypes, shapes, begins, ends, counts)
    return TensorTable(columns, Container.SAFETENSORS, metadata, 8 + len(raw))


def _spans_fit(begins: list[int], ends: list[int], data_size: int) -> bool:
    """``_check_layout``'s verdict for spans in any order (each begin <= its end)."""
    lengths = map(operator.sub, ends, begins)
    spans = sorted(filter(_SECOND, zip(begins, lengths, strict=True)))
    starts = list(map(_FIRST, spans))
    stops = list(map(operator.add, starts, map(_SECOND, spans)))
    fits = (stops[-1] if stops else 0) <= data_size
    return fits and all(map(operator.ge, starts[1:], stops[:-1]))


_METADATA_KEY = b'{"__metadata__":'
_NEXT = re.compile(rb"[ \t\n\r]*([,}])")


def _split_metadata(raw: bytes) -> tuple[dict[str, str], int, bool] | None:
    """The metadata, where the entries start (0: no metadata) and whether that is just past
    the metadata's ',' (then an entry must follow; else it is the object's closing '}'), or
    None when this path cannot read the metadata (it is not first, not all strings, or its
    end is not found).

    Writers put ``__metadata__`` first. Its value ends at the last '}' before the first
    '"dtype"' (before the last '}' if there is none) unless a name holds a '}'; whichever
    '}' is taken, the bytes up to it decode as one JSON object only if they are exactly the
    value (a '}' inside a string leaves a string open), so a wrong guess is refused, never
    misread.
    """
    if not raw.startswith(_METADATA_KEY):
        return {}, 0, False
    first = raw.find(b'"dtype"')
    close = raw.rfind(b"}", 0, first if first >= 0 else raw.rfind(b"}"))  # (no tensors: the end)
    after = _NEXT.match(raw, close + 1)  # the ',' before the entries or the header's '}'
    if close < len(_METADATA_KEY) or after is None:
        return None
    # Duplicate keys: each member has one ':' in the bytes, and every ':' in a string is a
    # ':' of its text unless written as an escape (\u003a), so the counts agree exactly
    # when no member was lost.
    if raw.find(b"\\u003", len(_METADATA_KEY), close) >= 0:
        return None
    try:
        metadata = _STRINGS.decode(memoryview(raw)[len(_METADATA_KEY) : close + 1])
    except msgspec.DecodeError:
        return None
    texts = "".join(itertools.chain(metadata, metadata.values()))
    if raw.count(b":", len(_METADATA_KEY), close) != len(metadata) + texts.count(":"):
        return None
    if after[1] == b",":
        return metadata, after.end(), True
    return metadata, after.start(1), False


if TYPE_CHECKING:
    _Dtype = str
else:  # msgspec refuses any other name while it parses
    _Dtype = Literal[tuple(DTYPE_SIZES)]
#: Bounds _tensor checks, here checked by msgspec as it parses.
_Dim = Annotated[int, msgspec.Meta(ge=0, lt=1 << 62)]
_Offset = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]


class _Entry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One tensor's entry: exactly these three members, each of its type and range."""

    dtype: _Dtype
    shape: Annotated[tuple[_Dim, ...], msgspec.Meta(max_length=MAX_DIMS)]
    data_offsets: tuple[_Offset, _Offset]


_ENTRIES = msgspec.json.Decoder(dict[str, _Entry])


# The compiled reader of the same headers (setup.py builds it where a C compiler is found):
# it accepts a subset of what the msgspec path accepts, with equal tables, at about a third
# of its cost per tensor. SDLIB_NO_NATIVE=1 turns it off (benchmarks, tests of the Python
# paths).
def _load_native() -> ModuleType | None:
    if os.environ.get("SDLIB_NO_NATIVE", "") not in ("", "0"):
        return None
    try:
        from sdlib.files import _stheader
    except ImportError:
        return None
    _stheader.configure(DTYPE_SIZES)
    return _stheader


_native = _load_native()
_STRINGS = msgspec.json.Decoder(dict[str, str])
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")
_OFFSETS = operator.attrgetter("data_offsets")


def _load_json(raw: bytes, path: str | None) -> Any:
    """The header as JSON; anything the format cannot be is one ``FormatError``."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_object)
    except _Duplicate as exc:
        raise FormatError(
            f"invalid safetensors header: the name {_text(exc.name)!r} appears twice", path=path
        ) from None
    except RecursionError:
        raise FormatError("invalid safetensors header: JSON nested too deep", path=path) from None
    except json.JSONDecodeError as exc:
        reason = _text(str(exc))[:120]
        raise FormatError(f"invalid safetensors header: not JSON ({reason})", path=path) from None
    except UnicodeDecodeError:
        raise FormatError("invalid safetensors header: not UTF-8 text", path=path) from None
    except ValueError:  # an integer of thousands of digits (Python's own limit on them)
        raise FormatError(
            "invalid safetensors header: a number in it is too long", path=path
        ) from None


class _Duplicate(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that refuses a repeated name: readers disagree on which one wins, so a
    header with two entries of one tensor (or two ``__metadata__``) is corrupt."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Duplicate(name)
            seen.add(name)
    return out


_SURROGATES = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """``value`` with lone surrogates (from ``\\udXXX`` escapes) as U+FFFD: such text cannot
    be printed, written as UTF-8 or stored in SQLite."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    return value


def _metadata(raw: Any, path: str | None) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FormatError("invalid safetensors header: __metadata__ is not an object", path=path)
    # The format says str -> str; some writers store numbers or nested JSON. Keep them as
    # JSON text rather than refusing a file every loader accepts.
    return {
        _text(str(k)): _text(v if isinstance(v, str) else json.dumps(v)) for k, v in raw.items()
    }


def _tensor(name: str, entry: Any, path: str | None) -> TensorInfo:
    # Hot: a checkpoint has ~1,000-3,000 entries. ``type(x) is int`` refuses bools (and int
    # subclasses JSON never makes) in one test.
    if type(entry) is not dict:
        raise FormatError(f"invalid safetensors header: entry {name!r} is not an object", path=path)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    size = DTYPE_SIZES.get(dtype) if isinstance(dtype, str) else None
    if size is None or not isinstance(dtype, str):
        raise FormatError(f"unknown dtype {_short(dtype)} for tensor {name!r}", path=path)
    count = 1
    if type(shape) is not list or len(shape) > MAX_DIMS:
        raise FormatError(f"invalid shape {_short(shape)} for tensor {name!r}", path=path)
    for d in shape:
        if type(d) is not int or not 0 <= d < _HUGE:
            raise FormatError(f"invalid shape {_short(shape)} for tensor {name!r}", path=path)
        count *= d
    if count >= _HUGE:
        raise FormatError(f"invalid shape {_short(shape)} for tensor {name!r}", path=path)
    if type(offsets) is not list or len(offsets) != 2:
        raise FormatError(f"invalid data_offsets {_short(offsets)} for tensor {name!r}", path=path)
    begin, end = offsets
    if type(begin) is not int or type(end) is not int or not 0 <= begin <= end < 1 << 63:
        raise FormatError(f"invalid data_offsets {_short(offsets)} for tensor {name!r}", path=path)
    expected = count * size
    if end - begin != expected:
        raise FormatError(
            f"tensor {name!r}: {end - begin} bytes for a {dtype} tensor of shape "
            f"{shape} that needs {int(expected)}",
            path=path,
        )
    return TensorInfo(name, dtype, tuple(shape), (begin, end))


#: Sizes past this (2**62) are no real tensor: refused before any arithmetic grows with them.
_HUGE = 1 << 62


def _short(value: Any) -> str:
    """A value for an error message: a hostile header may hold megabytes in one field."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_layout(tensors: Mapping[str, TensorInfo], data_size: int, path: str | None) -> None:
    spans = sorted((t.offsets, t.name) for t in tensors.values() if t.offsets and t.nbytes)
    end_prev, name_prev = 0, ""
    for (begin, end), name in spans:
        if begin < end_prev:
            raise FormatError(
                f"tensors {name_prev!r} and {name!r} overlap in the data section", path=path
            )
        end_prev, name_prev = end, name
    if end_prev > data_size:
        raise FormatError(
            f"truncated: the header needs {end_prev} bytes of tensor data, the file has "
            f"{max(data_size, 0)}",
            path=path,
        )


def read_table_from(fh: BinaryIO, file_size: int, path: str | None = None) -> TensorTable:
    """Read and validate the header of an open safetensors file (at position 0)."""
    first = fh.read(8)
    if len(first) < 8:
        raise FormatError("truncated: shorter than a safetensors length prefix", path=path)
    (n,) = struct.unpack("<Q", first)
    if n > MAX_HEADER:
        raise FormatError(f"header length {n} is over the 100 MB limit", path=path)
    if 8 + n > file_size:
        raise FormatError(
            f"header length {n} goes beyond the end of the {file_size}-byte file", path=path
        )
    raw = fh.read(n)
    if len(raw) != n:
        raise FormatError("truncated header", path=path)
    return parse_header(raw, file_size, path)


def read_table(path: str | os.PathLike[str]) -> TensorTable:
    """The tensor table and metadata of a safetensors file, from its header alone."""
    with open_regular(path) as fh:
        try:
            return read_table_from(fh, os.fstat(fh.fileno()).st_size, printable(path))
        except OSError as exc:  # an I/O error mid-read
            raise FormatError(os_problem(exc), path=printable(path)) from None
