"""The bulk header path (what a first scan of thousands of files runs) accepts exactly what
the careful per-entry path accepts, gives equal tables, and makes no Python call per tensor."""

from __future__ import annotations

import json
import sys
from types import FrameType
from typing import Any

import pytest

from sdlib.errors import FormatError
from sdlib.files import safetensors
from sdlib.files.safetensors import parse_header
from sdlib.files.tensors import TensorInfo

#: Every test here runs with the compiled bulk reader and with msgspec's alone.
pytestmark = pytest.mark.usefixtures("bulk_reader")

F16 = {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}
F32 = {"dtype": "F32", "shape": [4], "data_offsets": [12, 28]}


def _careful(raw: bytes, size: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(safetensors, "_fast_table", lambda *_a: None)
        try:
            return parse_header(raw, size)
        except FormatError as exc:
            return exc.message


def _either(raw: bytes, size: int) -> Any:
    try:
        return parse_header(raw, size)
    except FormatError as exc:
        return exc.message


def test_a_well_formed_header_is_read_in_bulk_with_every_field() -> None:
    raw = (
        json.dumps(
            {"__metadata__": {"ss_network_dim": "8", "a:b": "c:d"}, "w": F16, "b": F32},
            separators=(",", ":"),
        ).encode()
        + b"   "
    )  # writers pad the header with spaces to 8 bytes
    table = safetensors._fast_table(raw, 8 + len(raw) + 28)
    assert table is not None
    assert list(table.tensors.values()) == [
        TensorInfo("w", "F16", (2, 3), (0, 12)), TensorInfo("b", "F32", (4,), (12, 28)),
    ]  # fmt: skip
    assert table.metadata == {"ss_network_dim": "8", "a:b": "c:d"}
    assert table.data_offset == 8 + len(raw)


#: Headers the careful path refuses (or reads specially); the bulk path must decline them
#: all, so that the same message comes out. The duplicate cases are what plain json.loads
#: would silently merge.
ODD = {
    "duplicate tensor": b'{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},'
    b'"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}',
    "duplicate key in an entry": b'{"w":{"dtype":"F32","dtype":"F16","shape":[2,3],'
    b'"data_offsets":[0,12]}}',
    "duplicate first value not an object": b'{"w":5,"w":{"dtype":"F16","shape":[2,3],'
    b'"data_offsets":[0,12]}}',
    "duplicate metadata key": b'{"__metadata__":{"a":"1","a":"2"},"w":{"dtype":"F16",'
    b'"shape":[2,3],"data_offsets":[0,12]}}',
    "two metadata": b'{"__metadata__":{"a":"1"},"__metadata__":{"a":"1"}}',
    # An escaped colon must not stand in for the member a duplicate lost.
    "escaped colon hides a duplicate": b'{"x\\u003a":{"dtype":"F16","shape":[2,3],'
    b'"data_offsets":[0,12]},"w":5,"w":{"dtype":"F16","shape":[2,3],"data_offsets":[12,24]}}',
    "bool in shape": b'{"w":{"dtype":"F16","shape":[true,6],"data_offsets":[0,12]}}',
    "float offset": b'{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12.0]}}',
    "string dim": b'{"w":{"dtype":"F16","shape":["ab",3],"data_offsets":[0,12]}}',
    "wrong size": b'{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,10]}}',
    "overlap": b'{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},'
    b'"b":{"dtype":"F16","shape":[2,3],"data_offsets":[6,18]}}',
    "truncated data": b'{"w":{"dtype":"F16","shape":[200,3],"data_offsets":[0,1200]}}',
    "huge dim": b'{"w":{"dtype":"U8","shape":[4611686018427387904],'
    b'"data_offsets":[0,4611686018427387904]}}',
    "extra member": b'{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12],"x":1}}',
    "metadata number": b'{"__metadata__":{"steps":1000},"w":{"dtype":"F16","shape":[2,3],'
    b'"data_offsets":[0,12]}}',
    "metadata null": b'{"__metadata__":null}',
    "null entry": b'{"w":null}',
    "offsets of three": b'{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12,12]}}',
    "unknown dtype": b'{"w":{"dtype":"Q9","shape":[2,3],"data_offsets":[0,12]}}',
    "utf-16": '{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}'.encode("utf-16-le"),
    "not json": b'{"w":',
    "empty, data size negative": b"{}",
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_headers_give_what_the_careful_path_gives(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = ODD[case]
    size = 8 + len(raw) + (100 if case != "empty, data size negative" else -1)
    assert _either(raw, size) == _careful(raw, size, monkeypatch)


@pytest.mark.parametrize(
    "case", ["duplicate tensor", "duplicate key in an entry", "duplicate first value not an "
             "object", "duplicate metadata key", "two metadata", "escaped colon hides a duplicate"]
)  # fmt: skip
def test_duplicate_names_are_refused_not_merged(case: str) -> None:
    with pytest.raises(FormatError, match="appears twice"):
        parse_header(ODD[case], 8 + len(ODD[case]) + 100)


def test_a_large_header_costs_no_python_call_per_tensor() -> None:
    n = 3000
    header = {
        f"lora_unet_block_{i}.lora_down.weight": {
            "dtype": "F16", "shape": [16, 320], "data_offsets": [i * 10240, (i + 1) * 10240]
        }
        for i in range(n)
    }  # fmt: skip
    raw = json.dumps(header, separators=(",", ":")).encode()
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        table = parse_header(raw, 8 + len(raw) + n * 10240)
    finally:
        sys.setprofile(None)
    assert len(table) == n
    assert table.get("lora_unet_block_7.lora_down.weight") == TensorInfo(
        "lora_unet_block_7.lora_down.weight", "F16", (16, 320), (71680, 81920)
    )
    assert calls < 100, f"{calls} Python calls for {n} tensors"
