"""The compiled safetensors header reader (sdlib/files/_stheader.c), on its own.

Its rule is the bulk path's: it only ever accepts, and what it accepts the careful path
(json.loads and a check per entry) accepts with an equal table. Here: it is built wherever
a C compiler was (CI has one); it accepts the compact headers real writers make, so that
it pays; on every odd number, name, member and layout it refuses or agrees; and cut or
mutated bytes never make it read past the buffer or crash (run once under AddressSanitizer
too, see README "Development").
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdlib.errors import FormatError
from sdlib.files import safetensors
from sdlib.files.tensors import DTYPE_SIZES
from tests.files.test_safetensors_bulk import _corpus, _header
from tests.support.paths import CORPUS

native = safetensors._native


def _native_facts(raw: bytes, size: int) -> Any:
    """What the compiled reader gives for a whole header, as (name, dtype, shape, offsets)
    rows; None when it does not accept it."""
    assert native is not None
    parts = safetensors._split_metadata(raw)
    if parts is None:
        return None
    _, start, after_comma = parts
    read = native.read_entries(raw, start, after_comma, size - 8 - len(raw))
    if read is None:
        return None
    rows, dtypes, shapes, offsets, counts = read
    assert counts == [math.prod(shape) for shape in shapes]
    pairs = struct.unpack(f"={2 * len(shapes)}Q", offsets)
    begins, ends = pairs[0::2], pairs[1::2]
    return [(n, dtypes[i], shapes[i], (begins[i], ends[i])) for n, i in rows.items()]


def _careful_facts(raw: bytes, size: int) -> Any:
    try:
        table = safetensors._careful_table(raw, size)
    except FormatError as exc:
        return exc.message
    return [(t.name, t.dtype, t.shape, t.offsets) for t in table.tensors.values()]


def _agrees(raw: bytes, size: int) -> bool:
    """The compiled reader refuses, or gives the careful path's table; True if it accepted."""
    got = _native_facts(raw, size)
    if got is not None:
        assert got == _careful_facts(raw, size)
    return got is not None


needs_native = pytest.mark.skipif(native is None, reason="the compiled reader is not built")


def test_the_compiled_reader_is_built_where_a_compiler_is() -> None:
    """setup.py builds it as optional: a silent build failure would leave every scan on
    the slower path. SDLIB_NO_NATIVE=1 turns it off on purpose."""
    if os.environ.get("SDLIB_NO_NATIVE", "") not in ("", "0"):
        pytest.skip("turned off by SDLIB_NO_NATIVE")
    assert native is not None, (
        "sdlib.files._stheader is not built: `pip install -e .` needs a C compiler and the "
        "Python headers (or set SDLIB_NO_NATIVE=1 to test without it)"
    )


def _header_of(entries: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    body = {"__metadata__": metadata, **entries} if metadata is not None else entries
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _size(raw: bytes, data: int) -> int:
    return 8 + len(raw) + data


@needs_native
@pytest.mark.parametrize("metadata", [None, {}, {"format": "pt", "a:b": "}"}])
def test_a_compact_header_is_read_with_every_field(metadata: dict[str, str] | None) -> None:
    entries = {
        "a.weight": {"dtype": "F16", "shape": [320, 4, 3, 3], "data_offsets": [0, 23040]},
        "a.bias": {"dtype": "F32", "shape": [320], "data_offsets": [23040, 24320]},
        "alpha": {"dtype": "BF16", "shape": [], "data_offsets": [24320, 24322]},
        "empty": {"dtype": "I64", "shape": [0, 7], "data_offsets": [24322, 24322]},
    }
    raw = _header_of(entries, metadata)
    assert _agrees(raw, _size(raw, 24322))
    assert _native_facts(raw, _size(raw, 24322)) == [
        (k, v["dtype"], tuple(v["shape"]), tuple(v["data_offsets"])) for k, v in entries.items()
    ]


@needs_native
@pytest.mark.parametrize(
    ("body", "data"),
    [
        ('{ "w" : { "dtype" : "F16" , "shape" : [ 2 ] , "data_offsets" : [ 0 , 4 ] } }', 4),
        (
            '{\n  "w": {\n    "dtype": "F16",\n    "shape": [2],\n'
            '    "data_offsets": [0, 4]\n  }\n}',
            4,
        ),
        ('{"w":{"data_offsets":[0,4],"shape":[2],"dtype":"F16"}}', 4),  # members in any order
        ('{"é.ü":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),  # UTF-8 names
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}}', 12),  # a gap before
        ("{}", 0),
        ('{"__metadata__":{"k":"v"}}', 0),
        ('{"__metadata__":{"k":"v"} }   ', 0),
    ],
)
def test_well_formed_spellings_are_accepted(body: str, data: int) -> None:
    raw = body.encode()
    assert _agrees(raw, _size(raw, data)), body


@needs_native
@pytest.mark.parametrize(
    ("body", "data"),
    [
        # Numbers only json.loads reads, or no tensor has.
        ('{"w":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}', 0),
        ('{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[true],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[4611686018427387904],"data_offsets":[0,1]}}', 1),  # 2**62
        ('{"w":{"dtype":"U8","shape":[2147483648,2147483648],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,9223372036854775808]}}', 1),
        ('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551617]}}', 1),
        ('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,100000000000000000000]}}', 1),
        ('{"w":{"dtype":"F64","shape":[1152921504606846976],"data_offsets":[0,1]}}', 1),
        ('{"w":{"dtype":"U8","shape":[' + ",".join(["1"] * 65) + '],"data_offsets":[0,1]}}', 1),
        # Names and members.
        (
            '{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"w":{"dtype":"F16","shape":[2],'
            '"data_offsets":[4,8]}}',
            8,
        ),
        ('{"w":{"dtype":"F16","dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4),
        ('{"w":{"dtype":"F16","shape":[2]}}', 4),
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4],"x":1}}', 4),
        ('{"w\\u0041":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4),
        ('{"w\tx":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4),
        ('{"__metadata__":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4),
        ('{"w":{"dtype":"F17","shape":[2],"data_offsets":[0,4]}}', 4),
        ('{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', 1),  # half a byte each
        # Layout.
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 3),  # past the data
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,5]}}', 5),  # wrong size
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[4,0]}}', 4),
        (
            '{"a":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},'
            '"b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}',
            8,
        ),  # not in file order
        (
            '{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},'
            '"b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}}',
            8,
        ),  # overlapping
        # Syntax.
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},}', 4),
        ('{"w":{"dtype":"F16","shape":[2,],"data_offsets":[0,4]}}', 4),
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}} x', 4),
        ('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}}', 4),
        ('[{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}]', 4),
        ('{"__metadata__":{"k":"v"},}', 0),
    ],
)
def test_what_it_does_not_accept_is_left_to_the_python_paths(body: str, data: int) -> None:
    """Each of these is refused here; the verdict (accept or a message) is the careful
    path's either way."""
    raw = body.encode()
    assert _native_facts(raw, _size(raw, data)) is None, body
    try:
        either: Any = [(t.name, t.shape) for t in safetensors.parse_header(raw, _size(raw, data))]
    except FormatError as exc:
        either = exc.message
    careful = _careful_facts(raw, _size(raw, data))
    assert either == (careful if isinstance(careful, str) else [r[::2] for r in careful])


@needs_native
def test_invalid_utf8_in_a_name_is_refused() -> None:
    for name in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"):
        raw = b'{"' + name + b'":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
        assert _native_facts(raw, _size(raw, 1)) is None


@needs_native
def test_the_largest_accepted_numbers() -> None:
    big = (1 << 62) - 1
    raw = _header_of({"w": {"dtype": "U8", "shape": [big], "data_offsets": [0, big]}})
    assert _agrees(raw, _size(raw, big))
    top = (1 << 63) - 1
    raw = _header_of({"w": {"dtype": "U8", "shape": [0], "data_offsets": [top, top]}})
    assert _agrees(raw, _size(raw, top))
    # A zero dimension makes no elements, however large the others.
    raw = _header_of({"w": {"dtype": "U8", "shape": [big, big, 0], "data_offsets": [0, 0]}})
    assert _agrees(raw, _size(raw, 0))


@needs_native
def test_it_reads_only_inside_the_buffer() -> None:
    """Every cut of a real header, and bytes changed at random, are refused or agree."""
    paths = [p for p in _corpus() if p.stat().st_size < 64 << 20][:6]
    heads = []
    for path in paths:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            heads.append((fh.read(n), path.stat().st_size))
    raw = _header_of({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}}, {"a": "b"})
    heads.append((raw, _size(raw, 12)))
    rng = random.Random(20)
    for raw, size in heads:
        for cut in sorted({*range(0, min(len(raw), 300)), *rng.sample(range(len(raw)), 50)}):
            _agrees(raw[:cut], size)
        for _ in range(200):
            b = bytearray(raw)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.choice(b'{}[],:"\\0123456789 \n\x00\xff')
            _agrees(bytes(b), size)


@needs_native
def test_bad_arguments_are_refused() -> None:
    assert native is not None
    raw = b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    for start in (-1, len(raw) + 1):
        assert native.read_entries(raw, start, False, 1) is None
    with pytest.raises(TypeError):
        native.read_entries("text", 0, False, 1)  # type: ignore[arg-type]
    assert native.read_entries(raw, 0, False, -1) is None


@pytest.mark.skipif(not CORPUS.is_dir(), reason="no shared corpus next to the repository")
@needs_native
def test_every_real_header_is_accepted() -> None:
    """Real writers' headers are what a scan meets: the compiled reader must take them
    (except half-byte dtypes and files not in offset order, which no corpus file has),
    each time: the first notes each layout, the second keeps it as a template, the third
    follows it."""
    for _ in range(3):
        for path in _corpus():
            with open(path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                raw = fh.read(n)
            assert _agrees(raw, path.stat().st_size), path.name


def _chained_and_whole(raw: bytes, size: int) -> bool:
    """The careful table's entries are in file order and every dtype a whole byte size."""
    table = safetensors._careful_table(raw, size)
    infos = list(table.tensors.values())
    whole = all(DTYPE_SIZES[t.dtype] == int(DTYPE_SIZES[t.dtype]) for t in infos)
    flat = [x for t in infos for x in t.offsets]
    return whole and flat == sorted(flat)


@pytest.mark.slow  # hypothesis
@needs_native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_header())
def test_generated_headers_are_refused_or_read_as_the_careful_path(
    header: tuple[bytes, int, bool],
) -> None:
    raw, size, well_formed = header
    accepted = _agrees(raw, size)
    if well_formed and _chained_and_whole(raw, size):
        assert accepted, raw


@needs_native
def test_names_and_shapes_kept_between_calls_never_change_a_table() -> None:
    """The reader keeps recent names and shapes (and shares them between tables); more of
    them than it keeps, names equal but for their last bytes, shapes equal but for one
    dimension, and names that are not ASCII all read back exactly, again and again."""

    def header(names: list[str], dims: list[tuple[int, ...]]) -> tuple[bytes, int]:
        entries, at = {}, 0
        for name, shape in zip(names, dims, strict=True):
            n = 1
            for d in shape:
                n *= d
            entries[name] = {"dtype": "U8", "shape": list(shape), "data_offsets": [at, at + n]}
            at += n
        raw = _header_of(entries)
        return raw, _size(raw, at)

    rng = random.Random(7)
    many = [f"model.layer.{i}.weight" for i in range(50_000)]  # more than the cache holds
    shapes = [(1 + i % 3, 1 + i // 3 % 7) for i in range(50_000)]
    tails = ["a" * 40 + c for c in "abcdefgh"] + ["é" * 3, "naïve", "x"]
    odd_shapes = [(2, 3), (2, 4), (3, 2), (2, 3, 1), (1, 2, 3), (6,), (), (0,)]
    heads = [
        header(many, shapes),
        header(tails, [rng.choice(odd_shapes) for _ in tails]),
        header(many[::-1][:20_000], shapes[:20_000]),
    ]
    for _ in range(2):
        for raw, size in heads:
            assert _agrees(raw, size)
    first = _native_facts(*heads[1])
    again = _native_facts(*heads[1])
    assert first == again
    # The same ASCII names are the same objects in both tables.
    assert all(a[0] is b[0] for a, b in zip(first, again, strict=True) if a[0].isascii())


def _family_header(names: list[str], dims: list[int], dtype: str = "U8") -> tuple[bytes, int]:
    """A header of 1-D tensors ``names`` (in this order, repeats kept: it is written as
    text, not from a dict) of ``dims`` elements each."""
    parts, at = [], 0
    size = int(DTYPE_SIZES[dtype])
    for name, n in zip(names, dims, strict=True):
        entry = {"dtype": dtype, "shape": [n], "data_offsets": [at, at + n * size]}
        parts.append(
            json.dumps(name, ensure_ascii=False) + ":" + json.dumps(entry, separators=(",", ":"))
        )
        at += n * size
    raw = ("{" + ",".join(parts) + "}").encode()
    return raw, _size(raw, at)


def _family(base: list[str]) -> list[tuple[list[str], str]]:
    """Headers whose names follow ``base`` for a while: the same names (read with other
    shapes and dtypes), a prefix, more after them, a different tail, a repeat of the first
    name after all of them or in the middle, and one name swapped."""
    return [
        (base, "same"),
        (base[: len(base) * 2 // 3], "prefix"),
        ([*base, "extra.0", "extra.1"], "longer"),
        ([*base[: len(base) // 2], *(f"other.{i}" for i in range(len(base) // 2))], "diverges"),
        ([*base, base[0]], "repeat after"),
        ([*base[:5], base[0], *base[5:]], "repeat inside"),
        ([*base[:3], base[4], base[3], *base[5:]], "swapped"),
    ]


def _rows_of(raw: bytes, size: int) -> Any:
    assert native is not None
    parts = safetensors._split_metadata(raw)
    assert parts is not None
    read = native.read_entries(raw, parts[1], parts[2], size - 8 - len(raw))
    assert read is not None
    return read[0]


@needs_native
def test_files_with_the_same_names_share_one_rows_dict_and_each_reads_exactly() -> None:
    """The reader keeps the names of files whose layout came again as templates: a header
    that follows one to the end shares its rows dict; one that leaves it anywhere (ends
    early, goes on, diverges, repeats a name) still reads exactly as the careful path,
    which refuses the repeats."""
    base = [f"lora_unet_block_{i}.lora_down.weight" for i in range(40)]
    family = _family(base)
    rng = random.Random(11)
    order = [kind for kind in range(len(family)) for _ in range(4)]
    rng.shuffle(order)
    for kind in order:
        names, label = family[kind]
        dims = [rng.randint(0, 9) for _ in names]
        raw, size = _family_header(names, dims, rng.choice(["U8", "F16", "F32"]))
        accepted = _agrees(raw, size)
        assert accepted == (not label.startswith("repeat")), label
    # The same names again and again: from the second time on, one dict is shared.
    rows = []
    for _ in range(4):
        raw, size = _family_header(base, [rng.randint(0, 9) for _ in base])
        assert _agrees(raw, size)
        rows.append(_rows_of(raw, size))
    assert rows[1] is rows[2] is rows[3]
    assert list(rows[3]) == base and list(rows[3].values()) == list(range(len(base)))


@needs_native
def test_a_layout_met_once_keeps_no_template() -> None:
    """A library whose layouts never repeat pays nothing for templates: a layout is only
    noted the first time, kept the second, and shared from the third."""
    names = [f"unique_{random.Random(5).random()}.{i}" for i in range(30)]
    reads = []
    for _ in range(3):
        raw, size = _family_header(names, [1] * len(names))
        reads.append(_rows_of(raw, size))
    assert reads[0] is not reads[1] and reads[1] is reads[2]


@needs_native
def test_names_that_are_not_ascii_are_never_a_template() -> None:
    base = [f"w.{i}" for i in range(20)] + ["ü.weight"]
    for _ in range(3):
        raw, size = _family_header(base, [1] * len(base))
        assert _agrees(raw, size)
    raw, size = _family_header(base[:-1] + ["u.weight"], [1] * len(base))
    assert _agrees(raw, size)


@pytest.mark.slow  # hypothesis
@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_sequence_of_related_headers_reads_as_the_careful_path(data: st.DataObject) -> None:
    """Headers made by editing one list of names (cut, extended, a name changed, moved or
    repeated), read one after another: the templates the reader keeps between calls
    never change what it gives."""
    count = data.draw(st.integers(8, 60), label="names")
    base = [f"model.layer_{i}.weight" for i in range(count)]
    for _ in range(data.draw(st.integers(1, 6), label="headers")):
        names = list(base)
        for _ in range(data.draw(st.integers(0, 3), label="edits")):
            edit = data.draw(st.sampled_from(["cut", "add", "change", "move", "repeat"]))
            at = data.draw(st.integers(0, max(0, len(names) - 1)))
            if edit == "cut" and len(names) > 1:
                del names[at:]
            elif edit == "add":
                names.insert(at, f"added_{at}.bias")
            elif edit == "change" and names:
                names[at] = names[at] + "x"
            elif edit == "move" and names:
                names.append(names.pop(at))
            elif edit == "repeat" and names:
                names.append(names[at])
        dims = data.draw(st.lists(st.integers(0, 4), min_size=len(names), max_size=len(names)))
        raw, size = _family_header(names, dims)
        accepted = _agrees(raw, size)
        assert accepted == (len(set(names)) == len(names))
