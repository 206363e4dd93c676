"""The header reader accepts real files and refuses hostile ones with a clear FormatError."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sdlib.demo.writers import write_safetensors
from sdlib.errors import FormatError
from sdlib.files.safetensors import read_table
from tests.support.cli import run_sdlib
from tests.support.paths import CORPUS


def _raw(path: Path, header: object, body: bytes = b"", length: int | None = None) -> Path:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    n = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + raw + body)
    return path


def test_reads_names_dtypes_shapes_and_metadata(tmp_path: Path) -> None:
    spec = {"a.weight": ("F16", (4, 3)), "b": ("F32", (2,)), "empty": ("F32", (0, 5))}
    path = write_safetensors(tmp_path / "m.safetensors", spec, {"ss_network_dim": "8"})
    table = read_table(path)
    assert [(t.name, t.dtype, t.shape) for t in table] == [
        ("a.weight", "F16", (4, 3)), ("b", "F32", (2,)), ("empty", "F32", (0, 5)),
    ]  # fmt: skip
    assert table.metadata == {"ss_network_dim": "8"}
    assert table.parameters == 14


def test_sparse_seven_gigabyte_file_reads_header_only(tmp_path: Path) -> None:
    spec = {f"t{i}": ("F32", (1024, 1024, 64)) for i in range(28)}  # 7 GiB of holes
    path = write_safetensors(tmp_path / "big.safetensors", spec, sparse=True)
    assert path.stat().st_size > 7 << 30
    assert len(read_table(path)) == 28


HOSTILE = {
    "length beyond file": (b'{"a":1}', 10_000, "beyond the end"),
    "length over 100 MB": (b"{}", 200_000_000, "100 MB"),
    "not json": (b"{not json}", None, "not JSON"),
    "not an object": (b"[1,2,3]  ", None, "not a JSON object"),
    "unknown dtype": (
        {"x": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, None, "unknown dtype"
    ),
    "negative shape": (
        {"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, None, "invalid shape"
    ),
    "offsets wrong size": (
        {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, None, "needs 8"
    ),
    "offsets reversed": (
        {"x": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}, None, "data_offsets"
    ),
    "overlap": (
        {
            "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        },
        None,
        "overlap",
    ),
    "truncated data": (
        {"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, None, "truncated"
    ),
    "bad metadata": ({"__metadata__": [1]}, None, "__metadata__"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_raise_format_error(tmp_path: Path, case: str) -> None:
    header, length, message = HOSTILE[case]
    path = _raw(tmp_path / "h.safetensors", header, body=bytes(16), length=length)
    with pytest.raises(FormatError, match=message):
        read_table(path)


@pytest.mark.slow  # runs python -m sdlib in a subprocess
@pytest.mark.parametrize("case", ["length beyond file", "not json", "overlap", "truncated data"])
def test_hostile_headers_give_one_line_and_exit_1_from_the_cli(tmp_path: Path, case: str) -> None:
    header, length, message = HOSTILE[case]
    path = _raw(tmp_path / "h.safetensors", header, body=bytes(16), length=length)
    proc = run_sdlib("inspect", path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_real_embedding_header() -> None:
    path = CORPUS / "embeddings" / "EasyNegative.safetensors"
    if not path.exists():
        pytest.skip("../shared/corpus/real is not present on this machine")
    table = read_table(path)
    assert [(t.name, t.shape) for t in table] == [("emb_params", (8, 768))]


_ONE = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (json.dumps({"a": {**_ONE, "dtype": ["F32"]}}).encode(), "unknown dtype"),
        # Python's own refusal of a 5,000-digit integer names an interpreter setting; the
        # reason says what is wrong with the file instead.
        (b'{"a": {"dtype": "F32", "shape": [' + b"7" * 5000 + b'], "data_offsets": [0, 4]}}',
         "a number in it is too long"),
        (b'{"a\xff": 1}', "not UTF-8 text"),
        (b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested too deep"),
        (b'{"__metadata__": {"x": ' + b"{\"y\": " * 1000 + b"1" + b"}" * 1001 + b"}", "too deep"),
        (b'{"a": %s, "a": %s}' % (json.dumps(_ONE).encode(), json.dumps(_ONE).encode()),
         "'a' appears twice"),
        (b'{"__metadata__": {}, "__metadata__": {}}', "appears twice"),
        (json.dumps({"a": {**_ONE, "shape": [1] * 65}}).encode(), "invalid shape"),
        (json.dumps({"a": {**_ONE, "shape": [1 << 62]}}).encode(), "invalid shape"),
    ],
)  # fmt: skip
def test_hostile_headers_are_one_format_error(tmp_path: Path, raw: bytes, message: str) -> None:
    path = _raw(tmp_path / "bad.safetensors", raw, b"\0" * 4)
    with pytest.raises(FormatError, match=message) as info:
        read_table(path)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)
    assert "sys." not in str(info.value)


def test_lone_surrogates_in_names_and_metadata_become_replacement_characters(
    tmp_path: Path,
) -> None:
    # JSON allows "\ud800" (a lone surrogate): Python decodes it to a str that cannot be
    # printed or stored as UTF-8. The reader keeps the text readable instead.
    raw = b'{"__metadata__": {"title": "a\\ud800b"}, "w\\udc80": %s}' % json.dumps(_ONE).encode()
    table = read_table(_raw(tmp_path / "s.safetensors", raw, b"\0" * 4))
    (name,) = table.tensors
    assert name.startswith("w\ufffd") and table.metadata["title"].startswith("a\ufffd")
    for text in (name, *table.metadata.values()):
        text.encode("utf-8")  # would raise on a lone surrogate


@pytest.mark.slow  # runs python -m sdlib in a subprocess
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX FIFOs")
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    code = (
        "import sys\nfrom sdlib.files.safetensors import read_table\n"
        "from sdlib.errors import FormatError\n"
        "try:\n    read_table(sys.argv[1])\nexcept FormatError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=20
    )
    assert "not a regular file (a FIFO" in out.stdout, out.stderr
