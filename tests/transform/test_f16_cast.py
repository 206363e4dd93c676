"""The integer float32 -> float16 cast gives torch's bits for every kind of float32: each
sign, exponent and kept mantissa with the dropped bits at, just under and just over a tie,
plus random bit patterns; NaN stays NaN (its payload is not compared)."""

from __future__ import annotations

import numpy as np
import pytest

from sdlib.transform._f16 import SMALL, f32_to_f16
from sdlib.transform._tensordata import convert

torch = pytest.importorskip("torch")


def _every_rounding_case() -> np.ndarray:
    """sign x exponent x 10 kept mantissa bits x 6 dropped-bit patterns (3.1 M values)."""
    top = np.arange(1 << 19, dtype=np.uint32) << 13  # sign, exponent, kept mantissa
    low = np.array([0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF], dtype=np.uint32)
    return (top[:, None] | low[None, :]).reshape(-1)


def _torch_half_bits(bits: np.ndarray) -> np.ndarray:
    return torch.from_numpy(bits.view("<f4").copy()).half().view(torch.int16).numpy().view("<u2")


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    got_nan = (got & 0x7C00 == 0x7C00) & (got & 0x03FF != 0)
    want_nan = (want & 0x7C00 == 0x7C00) & (want & 0x03FF != 0)
    assert np.array_equal(got_nan, want_nan)
    differ = np.flatnonzero((got != want) & ~want_nan)
    assert differ.size == 0, [(hex(got[i]), hex(want[i])) for i in differ[:5]]


@pytest.mark.parametrize("source", ["rounding cases", "random bits"])
def test_every_float32_class_rounds_as_torch(source: str) -> None:
    if source == "random bits":
        bits = np.random.default_rng(7).integers(0, 1 << 32, 1 << 22, dtype=np.uint32)
    else:
        bits = _every_rounding_case()
    out = np.empty(bits.size, "<u2")
    f32_to_f16(bits.view("<f4"), out)
    _assert_same(out, _torch_half_bits(bits))


@pytest.mark.parametrize("size", [SMALL - 1, SMALL, (1 << 16) + 3, 3 << 18])
def test_convert_takes_it_for_any_size_and_gives_torchs_bits(size: int) -> None:
    """Through ``convert`` (which picks numpy's cast for small arrays): tensors of
    trained-weight scale, with zeros, subnormals, the fp16 limit and overflow mixed in."""
    rng = np.random.default_rng(size)
    values = (rng.standard_normal(size) * 0.02).astype("<f4")
    special = np.array([0.0, -0.0, 3e-8, -6e-5, 65504.0, 65519.0, 65520.0, -1e6], "<f4")
    values[rng.integers(0, size, special.size)] = special
    buf = np.empty(size * 2, "u1")
    got = convert(values, "F32", "F16", buf).view("<u2")
    _assert_same(got, _torch_half_bits(values.view("<u4")))
