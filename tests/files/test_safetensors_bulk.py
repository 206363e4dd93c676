"""The bulk header path (what a first scan runs: the compiled reader, then msgspec for what
it leaves; each test runs with both and with msgspec alone) against the careful per-entry
path: on every real header, every demo fixture and generated hostile headers, whatever the
bulk path accepts the careful path accepts with an equal table (names in order, dtypes,
shapes, offsets, metadata), and the well-formed ones it does accept (else it would not pay)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from sdlib.demo.catalogue import slim
from sdlib.demo.specs import METADATA, SPECS
from sdlib.demo.writers import safetensors_header
from sdlib.errors import FormatError
from sdlib.files import safetensors
from sdlib.files.tensors import DTYPE_SIZES, TensorTable
from tests.support.paths import CORPUS

#: Every test here runs with the compiled bulk reader and with msgspec's alone.
pytestmark = pytest.mark.usefixtures("bulk_reader")


def _facts(table: TensorTable) -> tuple[Any, ...]:
    """Everything a table says, in order (a TensorColumns and a dict compare alike here)."""
    rows = [(t.name, t.dtype, t.shape, t.offsets) for t in table.tensors.values()]
    return rows, list(table.metadata.items()), table.data_offset, table.container


def _careful(raw: bytes, size: int) -> Any:
    try:
        return _facts(safetensors._careful_table(raw, size))
    except FormatError as exc:
        return exc.message


def _agree(raw: bytes, size: int) -> bool:
    """The bulk path's verdict agrees with the careful one; True when it accepted."""
    careful = _careful(raw, size)
    bulk = safetensors._fast_table(raw, size)
    if bulk is not None:
        assert _facts(bulk) == careful
    try:
        either: Any = _facts(safetensors.parse_header(raw, size))
    except FormatError as exc:
        either = exc.message
    assert either == careful
    return bulk is not None


def _corpus() -> list[Path]:
    return sorted(CORPUS.rglob("*.safetensors")) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_every_real_header_is_read_in_bulk_as_the_careful_path_and_safetensors_read_it(
    path: Path,
) -> None:
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    raw = blob[8 : 8 + n]
    assert _agree(raw, len(blob)), "a well-formed real header fell back to the careful path"
    table = safetensors.parse_header(raw, len(blob))
    # The format's own reader, independent of sdlib, on the same file.
    with safe_open(str(path), framework="numpy") as f:  # reads the header only
        names = set(f.keys())
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in names}
        metadata = f.metadata() or {}
    assert set(table.tensors) == names
    assert {t.name: t.shape for t in table} == shapes
    assert dict(table.metadata) == metadata


def test_a_corpus_is_there_to_read() -> None:
    if not CORPUS.is_dir():
        pytest.skip("no shared corpus next to the repository")
    assert len(_corpus()) >= 10


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("slimmed", [False, True], ids=["full", "slim"])
def test_every_demo_fixture_is_read_in_bulk_as_the_careful_path(name: str, slimmed: bool) -> None:
    spec = SPECS[name]()
    if slimmed:
        spec = slim(spec)
    blob = safetensors_header(spec, METADATA.get(name))
    raw = blob[8:]
    data = sum(int(_numel(s) * DTYPE_SIZES[d]) for d, s in spec.values())
    assert _agree(raw, 8 + len(raw) + data)
    table = safetensors.parse_header(raw, 8 + len(raw) + data)
    assert [(t.name, t.dtype, t.shape) for t in table] == [
        (k, d, tuple(s)) for k, (d, s) in spec.items()
    ]


_ONE = '"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}'


@pytest.mark.parametrize(
    "body",
    [
        '{"dtype":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}',  # names like members
        '{"shape":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}',
    ],
)
def test_tensors_named_like_a_member_are_read_in_bulk(body: str) -> None:
    assert _agree(body.encode(), 8 + len(body) + 4)


@pytest.mark.parametrize(
    "body",
    [
        "{" + _ONE + "," + _ONE + "}",  # the same name twice: five strings lost
        '{"w":{"dtype":"F16","shape":[2],"shape":[2],"data_offsets":[0,4]}}',  # one key lost
        '{"w":{"dtype":"F16","shape":[2],"data_offsets":[9,9],"data_offsets":[0,4]}}',
        '{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,4]}}',  # two lost
        '{"__metadata__":{"a":"b"},' + _ONE + ',"__metadata__":{"a":"b"}}',
    ],
)
def test_a_lost_duplicate_is_never_accepted_in_bulk(body: str) -> None:
    raw = body.encode()
    assert safetensors._fast_table(raw, 8 + len(raw) + 4) is None
    with pytest.raises(FormatError, match="appears twice"):
        safetensors.parse_header(raw, 8 + len(raw) + 4)


def _numel(shape: Any) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


# --- generated headers -------------------------------------------------------------------------


class _Obj(list):  # type: ignore[type-arg]
    """A JSON object as its members in order, so that a name can appear twice."""


class _Lit(str):
    """A number written as is (spellings json.dumps never makes)."""


_WS = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])
_NAMES = st.sampled_from(
    ["w", "b", "a.weight", "x:y", "}", "dtype", "shape", "__metadata__", "é", '"q"', "back\\slash",
     "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]
)  # fmt: skip
_ODD_NUMBERS = st.sampled_from(
    [-1, 1 << 62, (1 << 63) - 1, 1 << 63, 1 << 64, 10**30, 2.0, 1.5, True, False, None, "2",
     _Lit("2e0"), _Lit("-0"), _Lit("02"), _Lit("NaN"), _Lit("Infinity")]
)  # fmt: skip


@st.composite
def _text(draw: st.DrawFn, value: str) -> str:
    """``value`` as a JSON string, written plainly or with some escapes."""
    how = draw(st.sampled_from(["plain"] * 12 + ["ascii", "u-colon", "u-all", "slash"]))
    if how == "plain":
        return json.dumps(value, ensure_ascii=False)
    if how == "ascii":
        return json.dumps(value)
    if how == "u-colon":
        return json.dumps(value, ensure_ascii=False).replace(":", "\\u003a")
    if how == "slash":
        return json.dumps(value, ensure_ascii=False).replace("/", "\\/")
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in value) + '"'


@st.composite
def _dump(draw: st.DrawFn, value: Any) -> str:
    ws = draw(_WS)
    if isinstance(value, _Obj):
        parts = [f"{draw(_text(k))}{ws}:{draw(_WS)}{draw(_dump(v))}" for k, v in value]
        return "{" + ws + ("," + draw(_WS)).join(parts) + draw(_WS) + "}"
    if isinstance(value, list):
        return "[" + ("," + ws).join([draw(_dump(v)) for v in value]) + "]"
    if isinstance(value, _Lit):
        return str(value)
    if isinstance(value, str):
        return draw(_text(value))
    return json.dumps(value)


_META_VALUES = st.one_of(
    st.text(max_size=12),
    st.text(max_size=12),
    st.sampled_from(["a:b", "}", '{"k": "v"}', "\\u003a", "\ud800", "ss_network_dim", "x/y"]),
    st.sampled_from([-1, 0, 2.5, 1e300, True, None, ["x"], {"a": 1}]),
)


@st.composite
def _header(draw: st.DrawFn) -> tuple[bytes, int, bool]:
    """(header bytes, file size, well formed: True when no oddity was drawn)."""
    odd = False
    members = _Obj()
    offset = 0
    for name in draw(st.lists(_NAMES | st.text("ab._:/", min_size=1, max_size=8), max_size=6)):
        dtype = draw(st.sampled_from(sorted(DTYPE_SIZES)))
        shape = draw(st.lists(st.integers(0, 40), max_size=4))
        nbytes = _numel(shape) * DTYPE_SIZES[dtype]
        odd = odd or nbytes != int(nbytes)  # half a byte of F4: no whole size fits
        offsets: list[Any] = [offset, offset + int(nbytes)]
        offset += int(nbytes)
        entry = _Obj([("dtype", dtype), ("shape", shape), ("data_offsets", offsets)])
        change = draw(st.sampled_from(["none"] * 20 + ["dim", "offset", "dtype", "extra",
                                       "twice", "missing", "order", "gap", "overlap"]))  # fmt: skip
        odd = odd or change not in ("none", "order", "gap")
        if change == "dim" and shape:
            shape[draw(st.integers(0, len(shape) - 1))] = draw(_ODD_NUMBERS)
        elif change == "offset":
            offsets[draw(st.integers(0, 1))] = draw(_ODD_NUMBERS)
        elif change == "dtype":
            entry[0] = ("dtype", draw(st.sampled_from(["Q9", "f16", "", 2, None])))
        elif change == "extra":
            entry.append(draw(st.sampled_from([("x", 1), ("dtype", dtype), ("shape", shape)])))
        elif change == "twice":
            entry.insert(0, entry[draw(st.integers(0, 2))])
        elif change == "missing":
            entry.pop(draw(st.integers(0, 2)))
        elif change == "order":
            entry.reverse()
        elif change == "gap":
            offset += 4
        elif change == "overlap":
            offsets[0] = max(0, offsets[0] - 2)
        members.append((name, entry))
    if any(m[0] == "__metadata__" for m in members):
        odd = True  # a second metadata shaped like an entry: left to the careful path
    if len({m[0] for m in members}) != len(members) or any("\\" in m[0] for m in members):
        odd = True
    if any("}" in m[0] for m in members):
        odd = True  # may hide where the metadata ends: left to the careful path
    where = draw(st.sampled_from(["first", "first", "none", "last", "middle", "twice"]))
    if where != "none":
        meta = _Obj(draw(st.lists(st.tuples(st.text(max_size=6), _META_VALUES), max_size=4)))
        odd = odd or where != "first" or any(type(v) is not str for _, v in meta)
        odd = odd or len({k for k, _ in meta}) != len(meta)
        at = {"first": 0, "last": len(members), "middle": len(members) // 2}.get(where, 0)
        members.insert(at, ("__metadata__", meta))
        if where == "twice":
            members.append(("__metadata__", meta))
    if draw(st.booleans()):  # writers store entries in any order
        members[:] = draw(st.permutations(members))
        odd = odd or (where != "none" and members[0][0] != "__metadata__")
    text = draw(_dump(members))
    odd = odd or "\\" in text or text[:1] != "{" or text[1:2] not in ('"', "}")
    odd = odd or any(0xD800 <= ord(c) <= 0xDFFF for c in text)  # msgspec refuses these bytes
    raw = text.encode("utf-8", "surrogatepass") + b" " * draw(st.integers(0, 7))
    short = draw(st.sampled_from([0] * 8 + [1, offset]))
    odd = odd or short != 0
    return raw, 8 + len(raw) + offset - short, not odd


BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow  # hypothesis
@BOUNDED
@given(_header())
def test_generated_headers_get_the_careful_verdict(header: tuple[bytes, int, bool]) -> None:
    raw, size, _ = header
    _agree(raw, size)


@pytest.mark.slow  # hypothesis
@settings(max_examples=100, deadline=None)
@given(_header())
def test_generated_well_formed_headers_are_read_in_bulk(header: tuple[bytes, int, bool]) -> None:
    raw, size, well_formed = header
    if well_formed:
        assert _agree(raw, size), raw


def test_a_trailing_comma_after_the_metadata_is_refused_as_the_careful_path_refuses() -> None:
    """Found by the compiled reader's tests: the bulk path read '{"__metadata__":{..},}' as
    metadata and no tensors, where the header is not JSON."""
    raw = b'{"__metadata__":{"k":"v"},}'
    assert safetensors._fast_table(raw, 8 + len(raw)) is None
    with pytest.raises(FormatError, match="not JSON"):
        safetensors.parse_header(raw, 8 + len(raw))
