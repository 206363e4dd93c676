"""The helpers merging added to ``_tensordata`` and ``_stwriter``: exact widening to float32
(every fp16 and bf16 bit pattern) and a metadata rewrite that may shrink."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from sdlib.transform._stwriter import OutTensor, SafetensorsWriter, read_header
from sdlib.transform._tensordata import raw_dtype, to_float32

ALL16 = np.arange(1 << 16, dtype="<u2")


def _bits(values: np.ndarray) -> np.ndarray:
    return values.view("<u4")


def test_fp16_every_finite_pattern_takes_the_fast_path_exactly() -> None:
    h = ALL16.view("<f2")
    finite = np.ascontiguousarray(h[np.isfinite(h)])  # subnormals, zeros, both signs
    out = np.empty(finite.size, "<f4")
    to_float32(finite, "F16", out)
    np.testing.assert_array_equal(_bits(out), _bits(finite.astype("<f4")))


def test_fp16_inf_and_nan_fall_back_to_numpy() -> None:
    h = ALL16.view("<f2")
    out = np.empty(h.size, "<f4")
    to_float32(h, "F16", out)
    np.testing.assert_array_equal(_bits(out), _bits(h.astype("<f4")))  # NaN payloads too


def test_big_endian_fp16_and_bf16() -> None:
    values = np.array([1.5, -2.25, 65504.0, 6e-8], "<f4")
    be16 = values.astype(">f2")
    out = np.empty(4, "<f4")
    np.testing.assert_array_equal(to_float32(be16, "F16", out), values.astype("<f2"))
    exact = np.array([1.5, -2.25, 65280.0, 2.0**-20], "<f4")  # representable in bf16
    bf16 = (exact.view("<u4") >> 16).astype(">u2")
    assert raw_dtype("BF16", big_endian=True) == np.dtype(">u2")
    np.testing.assert_array_equal(to_float32(bf16, "BF16", out), exact)


def test_bf16_every_pattern() -> None:
    out = np.empty(ALL16.size, "<f4")
    to_float32(ALL16, "BF16", out)
    np.testing.assert_array_equal(_bits(out), ALL16.astype("<u4") << 16)


def test_integers_cannot_be_widened() -> None:
    from sdlib.errors import FormatError

    with pytest.raises(FormatError, match="I64"):
        to_float32(np.zeros(2, "<i8"), "I64", np.empty(2, "<f4"))


def test_rewrite_metadata_pads_a_shorter_header() -> None:
    fh = io.BytesIO()
    fh.fileno = lambda: 0  # type: ignore[method-assign]
    tensors = [OutTensor("w", "F32", (2,))]
    writer = SafetensorsWriter(fh, tensors, {"k": "x" * 100})
    writer.write(np.array([1.0, 2.0], "<f4").tobytes())
    writer.rewrite_metadata({"k": "short"})
    with pytest.raises(RuntimeError, match="changed length"):
        writer.rewrite_metadata({"k": "x" * 200})
    raw = fh.getvalue()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and json.loads(raw[8 : 8 + n])["__metadata__"] == {"k": "short"}
    assert raw[8 + n :] == np.array([1.0, 2.0], "<f4").tobytes()


def test_padded_header_reads_back(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "p.safetensors"
    with open(path, "wb") as fh:
        writer = SafetensorsWriter(fh, [OutTensor("w", "F32", (2,))], {"k": "y" * 64})
        writer.write(np.array([1.0, 2.0], "<f4").tobytes())
        writer.rewrite_metadata({"k": "z"})
        writer.close()
    with open(path, "rb") as fh:
        assert read_header(fh).metadata == {"k": "z"}
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"k": "z"}
        np.testing.assert_array_equal(f.get_tensor("w"), [1.0, 2.0])
