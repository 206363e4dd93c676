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
from typing import Any, BinaryIO

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
    """The table of a well-formed header, checked in bulk; None for anything else.

    The careful path (``_load_json`` with a duplicate-refusing hook, then ``_tensor`` per
    entry) costs ~15 us a tensor, and a first scan meets millions. Here one plain
    ``json.loads`` builds the header and every check ``_tensor`` and ``_check_layout`` make
    runs as C-level ``map``s over columns. It only ever *accepts*: a header any check could
    refuse (and any header with an escape, a metadata value that is not a string, or an
    entry with other members) returns None, and the careful path decides, with its exact
    message. Accepting here means the careful path would return an equal table.
    """
    if b"\\u" in raw:  # escapes may hide surrogates and make the colon count below unsound
        return None
    try:
        # As json.loads(raw) decodes a header that starts with '{' (NUL-free: not UTF-16/32).
        text = raw.decode("utf-8", "surrogatepass")
        header = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if type(header) is not dict:
        return None
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta_members = meta_colons = 0
        metadata: dict[str, str] = {}
    else:
        if type(meta) is not dict or set(map(type, meta.values())) - {str}:
            return None
        metadata = _metadata(meta, None)
        meta_members = len(meta) + 1
        meta_colons = sum(map(operator.methodcaller("count", ":"), meta)) + sum(
            map(operator.methodcaller("count", ":"), meta.values())
        )
    names = list(header)
    entries = list(header.values())
    n = len(entries)
    # Duplicates: json.loads keeps the last of two equal names silently. Every member of
    # every object has one ':' in the bytes, and without escapes every ':' inside a string
    # is a ':' in the bytes: the counts agree exactly when no member was lost.
    try:
        # Each entry an object with these members (anything else raises here: a list, a
        # string, a number or null cannot be indexed by a name) and, by the count, no
        # others; each dtype a known name (so a string).
        dtypes = list(map(_DTYPE, entries))
        shapes = list(map(_SHAPE, entries))
        offsets = list(map(_OFFSETS, entries))
        sizes = list(map(DTYPE_SIZES.__getitem__, dtypes))
    except (KeyError, TypeError, IndexError):
        return None
    if sum(map(len, entries)) != 3 * n:
        return None
    colons = 3 * n + n + meta_members + meta_colons + "".join(names).count(":")
    if text.count(":") != colons:
        return None
    if set(map(type, shapes)) - {list}:
        return None
    if set(map(type, offsets)) - {list} or set(map(len, offsets)) - {2}:
        return None
    dims = list(itertools.chain.from_iterable(shapes))
    if set(map(type, dims)) - {int} or (dims and not 0 <= min(dims) <= max(dims) < _HUGE):
        return None
    if n and max(map(len, shapes)) > MAX_DIMS:
        return None
    flat = list(itertools.chain.from_iterable(offsets))  # pairs, by the check above
    if set(map(type, flat)) - {int}:
        return None
    begins = flat[0::2]
    ends = flat[1::2]
    counts = list(map(math.prod, shapes))
    if n and not (min(begins) >= 0 and max(ends) < 1 << 63 and max(counts) < _HUGE):
        return None
    if not all(map(operator.le, begins, ends)):
        return None
    if not all(map(operator.eq, map(operator.sub, ends, begins), map(operator.mul, counts, sizes))):
        return None
    data_size = file_size - 8 - len(raw)
    # Layout: the non-empty spans must not overlap nor run past the data. Writers store
    # them in file order, one after another: then a pass over neighbours proves it.
    if not (all(map(operator.le, ends[:-1], begins[1:])) and (ends[-1] if n else 0) <= data_size):
        lengths = map(operator.sub, ends, begins)
        spans = sorted(filter(_SECOND, zip(begins, lengths, strict=True)))
        starts = list(map(_FIRST, spans))
        stops = list(map(operator.add, starts, map(_SECOND, spans)))
        if not all(map(operator.ge, starts[1:], stops[:-1])):
            return None
        if (stops[-1] if stops else 0) > data_size:
            return None
    rows = dict(zip(names, range(n), strict=True))
    columns = TensorColumns(rows, dtypes, list(map(tuple, shapes)), begins, ends, counts)
    return TensorTable(columns, Container.SAFETENSORS, metadata, 8 + len(raw))


_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_DTYPE = operator.itemgetter("dtype")
_SHAPE = operator.itemgetter("shape")
_OFFSETS = operator.itemgetter("data_offsets")


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
