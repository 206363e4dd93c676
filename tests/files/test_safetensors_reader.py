"""The header reader accepts real files and refuses hostile ones with a clear FormatError."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sdlib.errors import FormatError
from sdlib.files.safetensors import read_table
from sdlib.testing.writers import write_safetensors

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "real"


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


@pytest.mark.parametrize("case", ["length beyond file", "not json", "overlap", "truncated data"])
def test_hostile_headers_give_one_line_and_exit_1_from_the_cli(tmp_path: Path, case: str) -> None:
    header, length, message = HOSTILE[case]
    path = _raw(tmp_path / "h.safetensors", header, body=bytes(16), length=length)
    proc = subprocess.run(
        [sys.executable, "-m", "sdlib", "inspect", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_real_embedding_header() -> None:
    path = CORPUS / "embeddings" / "EasyNegative.safetensors"
    if not path.exists():
        pytest.skip("../shared/corpus/real is not present on this machine")
    table = read_table(path)
    assert [(t.name, t.shape) for t in table] == [("emb_params", (8, 768))]
