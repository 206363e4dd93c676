"""Properties of the pickle scanner and the zip reader on hostile input (hypothesis).

Whatever bytes they get (random opcode sequences with plausible arguments, mutations of the
real corpus files' bytes, mutated zips and torch archives), ``sniff_bytes``, the scanner
(``open_pickle_bytes``: scan plus tensor table) and ``inspect_file`` return a result or raise
sdlib's ``FormatError``, and quickly. ``UnsafeFileError`` is not part of that family here:
the scanner reports unsafe pickles as a verdict, it never raises for them. The files are only
ever read as bytes; nothing is unpickled. (The oracle-based fuzzing against CPython's own
unpickler is in ``test_pickles_fuzz.py``.)

Each property is bounded (max_examples, small inputs, a per-example time limit), so the file
runs in seconds.
"""

from __future__ import annotations

import contextlib
import io
import struct
import tarfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdlib.errors import FormatError
from sdlib.files._torchzip import parse_zip
from sdlib.files.pickles import PickleFile, open_pickle_bytes
from sdlib.files.sniff import sniff_bytes
from sdlib.inspect import inspect_file
from sdlib.taxonomy import Container
from tests.support.paths import CORPUS
from tests.support.pickles import (
    Tensor,
    call_pickle,
    dump,
    lightning_checkpoint,
    ramp,
    ti_embedding,
    torch_legacy,
    torch_zip,
    zip_bytes,
)

pytestmark = pytest.mark.slow  # fuzz

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Scanning these small inputs takes milliseconds; two seconds means a loop or a blow-up.
SLOW = 2.0


def _corpus_files() -> dict[str, bytes]:
    """The small files of the real corpus (malicious fixtures, embeddings), as bytes."""
    if not CORPUS.is_dir():
        return {}
    out = {}
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.suffix != ".tsv" and path.stat().st_size <= 64 << 10:
            out[str(path.relative_to(CORPUS))] = path.read_bytes()
    return out


CORPUS_BYTES = _corpus_files()
CORPUS_ZIPS = {k: v for k, v in CORPUS_BYTES.items() if v[:4] == b"PK\x03\x04"}
BUILT_ZIPS = {
    "lightning": torch_zip(lightning_checkpoint({"a": Tensor(ramp(4), "F32", (2, 2))})),
    "ti-parameter-dict": torch_zip(ti_embedding(1, 8, parameter_dict=True)),
    "hostile-member": zip_bytes([("x/data.txt", call_pickle("posix", "system", "x"))]),
    "nested": zip_bytes([("in.zip", zip_bytes([("p.pkl", dump([1])[0])]))]),
    "deflated": zip_bytes([("archive/data.pkl", dump({"a": 1})[0])], compress=["archive/data.pkl"]),
}


def _torch_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("sys_info", dump({"little_endian": True})[0]), ("pickle", b"N.")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


SEEDS = {
    **CORPUS_BYTES,
    "legacy": torch_legacy({"x": Tensor(ramp(4), "F32", (4,))}),
    "torch-0.1-tar": _torch_tar(),
    "p0": call_pickle("posix", "system", "x", proto=0),
    "p4": call_pickle("builtins", "eval", "1", proto=4),
}


def _judge(data: bytes) -> PickleFile | None:
    """Scan ``data``; only FormatError may escape, and it must be quick."""
    start = time.process_time()
    try:
        result: PickleFile | None = open_pickle_bytes(data)
    except FormatError:
        result = None
    assert time.process_time() - start < SLOW
    sniff_bytes(data[:64], len(data))
    return result


# --- random opcode sequences -----------------------------------------------------------------

_SHORT = st.binary(max_size=12)
_NAMES = st.sampled_from(
    ["posix", "system", "builtins", "eval", "torch._utils", "_rebuild_tensor_v2", "x", ""]
)


def _with_len(fmt: str) -> st.SearchStrategy[bytes]:
    return _SHORT.map(lambda b: bytes(fmt[0], "latin-1") + struct.pack(fmt[1:], len(b)) + b)


# One opcode with an argument of the right shape (or a lying length), as the VM reads it.
OPCODE = st.one_of(
    st.sampled_from(list(b"().0123NRbadelotsu]}\x85\x86\x87\x88\x89\x8f\x90\x91\x93\x94Q")).map(
        lambda c: bytes([c])
    ),
    st.tuples(_NAMES, _NAMES).map(lambda t: f"c{t[0]}\n{t[1]}\n".encode()),
    st.tuples(_NAMES, _NAMES).map(lambda t: f"i{t[0]}\n{t[1]}\n".encode()),
    _NAMES.map(lambda s: f"V{s}\n".encode()),
    _NAMES.map(lambda s: f"S'{s}'\n".encode()),
    st.integers(-(2**40), 2**40).map(lambda n: f"I{n}\n".encode()),
    st.integers(0, 300).map(lambda n: f"g{n}\np{n}\n".encode()),
    st.integers(0, 255).map(lambda n: b"h" + bytes([n])),
    st.integers(0, 255).map(lambda n: b"q" + bytes([n])),
    st.integers(0, 2**32 - 1).map(lambda n: b"j" + struct.pack("<I", n)),
    st.integers(0, 2**32 - 1).map(lambda n: b"r" + struct.pack("<I", n)),
    st.integers(0, 255).map(lambda n: b"K" + bytes([n])),
    st.integers(0, 6).map(lambda n: b"\x80" + bytes([n])),
    st.integers(0, 2**64 - 1).map(lambda n: b"\x95" + struct.pack("<Q", n)),
    st.integers(0, 2**64 - 1).map(lambda n: b"\x8d" + struct.pack("<Q", n)),  # BINUNICODE8
    st.integers(0, 255).map(lambda n: b"\x82" + bytes([n])),  # EXT1
    st.binary(min_size=1, max_size=10).map(lambda b: b"\x8a" + bytes([len(b)]) + b),
    _with_len("X<I"),
    _with_len("\x8c<B"),
    _with_len("B<I"),
    _with_len("T<i"),
    _with_len("U<B"),
    _SHORT.map(lambda b: b"G" + (b + bytes(8))[:8]),
    st.binary(max_size=4),  # raw noise between opcodes
)


@BOUNDED
@given(st.lists(OPCODE, max_size=40), st.booleans())
def test_random_opcode_sequences_only_raise_format_errors(ops: list[bytes], stop: bool) -> None:
    data = b"".join(ops) + (b"." if stop else b"")
    _judge(data)


@BOUNDED
@given(st.lists(OPCODE, max_size=30), st.sampled_from(["npy", "zip", "legacy-prefix"]))
def test_random_streams_inside_containers(ops: list[bytes], wrapper: str) -> None:
    body = b"".join(ops) + b"."
    if wrapper == "npy":
        header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n"
        data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body
    elif wrapper == "zip":
        data = zip_bytes([("archive/data.pkl", body), ("archive/version", b"3\n")])
    else:
        data = dump(0x1950A86A20F9469CFC6C)[0] + dump(1001)[0] + body
    _judge(data)


# --- mutations of real bytes -----------------------------------------------------------------

MUTATION = st.tuples(
    st.sampled_from(["set", "insert", "delete", "truncate"]),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=8),
)


def _mutate(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        i = int(where * len(out)) if out else 0
        if kind == "set":
            out[i : i + len(value)] = value
        elif kind == "insert":
            out[i:i] = value
        elif kind == "delete":
            del out[i : i + len(value)]
        else:
            del out[i:]
    return bytes(out)


@pytest.mark.skipif(not CORPUS_BYTES, reason="real corpus not found")
@BOUNDED
@given(st.sampled_from(sorted(SEEDS)), st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_corpus_files_only_raise_format_errors(
    name: str, edits: list[tuple[str, float, bytes]]
) -> None:
    _judge(_mutate(SEEDS[name], edits))


# --- the zip reader --------------------------------------------------------------------------

ZIPS = {**CORPUS_ZIPS, **BUILT_ZIPS}


@BOUNDED
@given(st.sampled_from(sorted(ZIPS)), st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_zips_only_raise_format_errors(
    name: str, edits: list[tuple[str, float, bytes]]
) -> None:
    data = _mutate(ZIPS[name], edits)
    start = time.process_time()
    with contextlib.suppress(FormatError):
        parse_zip(data)
    assert time.process_time() - start < SLOW
    _judge(data)


@BOUNDED
@given(
    st.sampled_from(sorted(BUILT_ZIPS)),
    st.sampled_from([18, 20, 22, 24]),  # compressed/uncompressed size fields (LFH or CD)
    st.integers(0, 2**32 - 1),
)
def test_zip_size_fields_that_lie_stay_bounded(name: str, field: int, value: int) -> None:
    """Any declared size in any header: never inflated past it, never a crash."""
    data = bytearray(BUILT_ZIPS[name])
    for sig, base in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):
        at = data.find(sig)
        if at >= 0 and field + base + 4 <= len(data) - at:
            data[at + field + base : at + field + base + 4] = struct.pack("<I", value)
    _judge(bytes(data))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)), st.lists(MUTATION, min_size=1, max_size=3))
def test_inspect_on_mutated_files_only_raises_format_errors(
    tmp_path_factory: pytest.TempPathFactory, name: str, edits: list[tuple[str, float, bytes]]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "m.pt"
    path.write_bytes(_mutate(SEEDS[name], edits))
    try:
        report = inspect_file(path)
    except FormatError:
        return
    assert report.container is not Container.UNKNOWN  # judged, or refused with a reason
