"""Finding NaN and Inf in the tensors convert and merge write, as they are written.

A1111's merger refuses to save a model whose weights went NaN; a NaN or Inf weight makes
every image black or noise, and nothing downstream says why. So every floating-point chunk
of the output is checked in its *output* bits, after the final cast: that catches NaN and
Inf carried over from an input, made by the arithmetic (``inf - inf``, ``inf * 0``), and
made by the cast itself (fp32 values beyond fp16's +-65504 become Inf).

The test is two integer passes over each 256 KiB of the chunk, with no allocation:
``bits & exponent_mask`` into a reused scratch buffer, then its maximum, which equals the
mask exactly when some element has every exponent bit set (Inf or NaN, in every IEEE
format). Only then, which in a healthy model is never, are NaN and Inf counted one by one.
It costs about 0.1 s per GiB written, on the writer thread (a third of its CRC-32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sdlib.errors import NonFiniteError

#: Output dtype -> (the numpy view of its bits, exponent mask, mantissa mask).
_MASKS: dict[str, tuple[str, int, int]] = {
    "F16": ("<u2", 0x7C00, 0x03FF),
    "BF16": ("<u2", 0x7F80, 0x007F),
    "F32": ("<u4", 0x7F800000, 0x007FFFFF),
    "F64": ("<u8", 0x7FF0000000000000, 0x000FFFFFFFFFFFFF),
}
#: Tensors named in an error message; the rest are counted.
SHOWN = 3
#: Bytes checked at a time: the masked copy stays in L2 (a 16 MiB one would not: 2x slower).
_BLOCK = 256 << 10


@dataclass(frozen=True)
class NonFinite:
    """One output tensor holding NaN or Inf values: how many of each."""

    name: str
    nan: int
    inf: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "nan": self.nan, "inf": self.inf}


class FiniteCheck:
    """Counts NaN and Inf per output tensor, chunk by chunk.

    ``chunk`` may run on a writer thread; ``end`` is called on the caller's thread after
    that thread's work for the tensor is done (``Sink.take`` waits for it).
    """

    def __init__(self) -> None:
        self.found: list[NonFinite] = []
        self._scratch = bytearray()
        self._nan = 0
        self._inf = 0

    def chunk(self, data: np.ndarray, dtype: str) -> None:
        """Check one chunk of an output tensor (``data`` holds ``dtype``'s bits)."""
        spec = _MASKS.get(dtype)
        if spec is None or not data.size:
            return  # integers, bools and fp8 (which the transforms only copy)
        code, exponent, mantissa = spec
        bits = data.reshape(-1).view(code)
        step = _BLOCK // bits.itemsize
        if not self._scratch:
            self._scratch = bytearray(_BLOCK)
        scratch = np.frombuffer(self._scratch, code)
        for start in range(0, bits.size, step):  # blocks that stay in the CPU's cache
            part = bits[start : start + step]
            masked = scratch[: part.size]
            np.bitwise_and(part, exponent, out=masked)
            if int(masked.max()) == exponent:
                special = part[masked == exponent]
                nan = int(np.count_nonzero(special & mantissa))
                self._nan += nan
                self._inf += special.size - nan

    def end(self, name: str) -> None:
        """The tensor ``name`` is complete: record it if it held NaN or Inf."""
        if self._nan or self._inf:
            self.found.append(NonFinite(name, self._nan, self._inf))
        self._nan = self._inf = 0


def describe(found: Sequence[NonFinite]) -> str:
    """``2 tensors hold NaN or Inf: a (3 NaN), b (1 Inf)``, the first few named."""
    nan = sum(f.nan for f in found)
    inf = sum(f.inf for f in found)
    what = " and ".join(x for x, n in (("NaN", nan), ("Inf", inf)) if n)
    names = ", ".join(f"{f.name} ({_counts(f)})" for f in found[:SHOWN])
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    noun = "tensor holds" if len(found) == 1 else "tensors hold"
    return f"{len(found)} {noun} {what}: {names}{more}"


def _counts(f: NonFinite) -> str:
    return ", ".join(f"{n} {label}" for label, n in (("NaN", f.nan), ("Inf", f.inf)) if n)


def refuse(found: Sequence[NonFinite], what: str, fp16_cast: bool) -> NonFiniteError:
    """The error that stops ``what`` (``the merged model``...) from being written."""
    hint = ""
    if fp16_cast and any(f.inf for f in found):
        hint = " (fp16 holds at most +-65504: --dtype bf16 or keep avoids an overflow to Inf)"
    return NonFiniteError(
        f"{what} would be broken: {describe(found)}{hint}; nothing was written "
        "(--allow-nan writes it anyway)",
        tensors=tuple(f.name for f in found),
    )
