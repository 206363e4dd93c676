"""float32 -> float16 with integer numpy operations, rounding exactly as torch (IEEE RNE).

numpy's own float32 -> float16 cast converts one element at a time: about 4.5 ns an element
on the bench machine (twice that when many values are fp16 subnormals, as small trained
weights are), which made it the largest CPU cost of ``convert --dtype fp16``. The same result
from a dozen vectorised integer passes over cache-sized blocks takes about 60% of that time.

The common case (a magnitude in fp16's normal range) is the classic bit trick: add the
exponent rebias and a rounding term (0xFFF plus the lowest kept mantissa bit, which makes a
tie round to even), then shift the 13 dropped bits out; a carry out of the mantissa bumps the
exponent, which is also how 65520 and up round to Inf. The rare cases are patched per block
only when present: magnitudes under 2**-14 (fp16 subnormals and zero) are rounded by the FPU
(adding 0.5 puts the value's fp16 subnormal units in the low mantissa bits), and magnitudes
of 2**16 and up, Inf and NaN become Inf or a quiet NaN.
"""

from __future__ import annotations

import numpy as np

#: Elements per block: three uint32 scratch blocks (768 KiB) stay in the CPU's cache.
_BLOCK = 1 << 16
#: Below this many elements numpy's cast is faster than the block loop's call overhead.
SMALL = 1 << 14
#: Exponent rebias (127 -> 15) plus the round-half-up term, as uint32 (it is negative).
_BIAS = np.uint32((((15 - 127) << 23) + 0xFFF) & 0xFFFFFFFF)
_MIN_NORMAL = 113 << 23  # 2**-14, fp16's smallest normal magnitude
_TOO_BIG = 143 << 23  # 2**16: nothing from here on rounds to a finite fp16
_INF = 255 << 23
_HALF = np.float32(0.5)
_HALF_BITS = np.uint32(126 << 23)


def f32_to_f16(src: np.ndarray, out: np.ndarray) -> None:
    """Cast little-endian, C-contiguous float32 ``src`` into uint16 ``out`` (same size)."""
    bits = src.reshape(-1).view("<u4")
    dst = out.reshape(-1)
    if bits.size != dst.size:
        raise ValueError("f32_to_f16: sizes differ")
    size = min(_BLOCK, bits.size)
    mag_buf, half_buf, sign_buf = (np.empty(size, "<u4") for _ in range(3))
    for start in range(0, bits.size, _BLOCK):
        f = bits[start : start + _BLOCK]
        n = f.size
        mag, half, sign = mag_buf[:n], half_buf[:n], sign_buf[:n]
        np.bitwise_and(f, 0x7FFFFFFF, out=mag)
        np.right_shift(mag, 13, out=half)
        np.bitwise_and(half, 1, out=half)  # the lowest kept bit: ties go to even
        np.add(half, mag, out=half)
        np.add(half, _BIAS, out=half)
        np.right_shift(half, 13, out=half)
        if int(mag.min()) < _MIN_NORMAL:
            small = mag < _MIN_NORMAL
            half[small] = (mag[small].view("<f4") + _HALF).view("<u4") - _HALF_BITS
        if int(mag.max()) >= _TOO_BIG:
            big = mag >= _TOO_BIG
            half[big] = np.where(mag[big] > _INF, 0x7E00, 0x7C00)
        np.right_shift(f, 16, out=sign)
        np.bitwise_and(sign, 0x8000, out=sign)
        np.bitwise_or(half, sign, out=half)
        np.copyto(dst[start : start + n], half, casting="unsafe")
