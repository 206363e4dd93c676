"""Mutation fuzzing: the scanner never crashes, and never misses an import a real unpickler makes.

The oracle is CPython's own pure-Python unpickler with ``find_class`` replaced by a recorder
that returns an inert dummy: it shows exactly which globals a loader would import from the
mutated bytes, without importing or running any of them. (The pure-Python unpickler is the
more permissive of the two, e.g. it accepts an unterminated last line and non-tuple REDUCE
arguments; the C one is not used as an oracle because a mutated LONG_BINPUT index makes it
allocate and clear a memo table of gigabytes.)
"""

from __future__ import annotations

import contextlib
import io
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from sdlib.errors import FormatError
from sdlib.files._pickle_rules import Rule, classify_global, normalise
from sdlib.files.pickles import scan_bytes
from sdlib.taxonomy import Verdict
from tests.support.pickles import (
    Tensor,
    call_pickle,
    dump,
    hypernetwork,
    lightning_checkpoint,
    ramp,
    ti_embedding,
)

pytestmark = pytest.mark.slow  # fuzz

_MUTATION_BYTES = list(b"(]}).cNILFSVUTXKJMGBqhjrpgabeostuR\x81\x93\x94\x95Q\x80\x8c")


class _Dummy:
    """Stands in for every global: accepts any call or state and does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Dummy:
        return _Dummy()

    def __setstate__(self, state: object) -> None:
        pass

    def append(self, item: object) -> None:
        pass

    def extend(self, items: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass


def _imports(data: bytes, base: Any) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    class Recorder(base):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> type:
            seen.append(normalise(module, name, self.proto))
            return _Dummy

        def persistent_load(self, pid: object) -> object:
            return _Dummy()

    with contextlib.suppress(Exception):
        Recorder(io.BytesIO(data)).load()
    return seen


def _seeds() -> list[bytes]:
    sentinel = "/nonexistent/PWNED"
    seeds = [call_pickle("posix", "system", sentinel, proto=p) for p in (0, 2, 3, 4)]
    seeds += [call_pickle("builtins", "eval", "1", proto=4), call_pickle("evil.mod", "run", "x")]
    seeds += [dump(hypernetwork((8,), 1))[0], dump(ti_embedding(1, 4))[0]]
    seeds.append(dump(lightning_checkpoint({"a": Tensor(ramp(4), "F32", (2, 2))}))[0])
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(out) or 1)
        op = rng.random()
        if op < 0.5 and out:
            out[i] = rng.randrange(256)
        elif op < 0.7:
            del out[i : i + rng.randint(1, 4)]
        else:
            out[i:i] = bytes([rng.choice(_MUTATION_BYTES)])
    return bytes(out)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_scanner_sees_every_import_a_real_unpickler_makes() -> None:
    rng = random.Random(20260501)
    seeds = _seeds()
    for _ in range(6000):
        data = _mutate(rng, rng.choice(seeds))
        try:
            scan = scan_bytes(data)
            ours, verdict = set(scan.globals), scan.verdict
        except FormatError:
            ours, verdict = set(), None
        for base in (pickle._Unpickler,):
            risky = [
                g
                for g in _imports(data, base)
                if classify_global(g[0], g[1], 3).rule is not Rule.ALLOWED
            ]
            # Where the scanner stops before CPython (a limit, a write to a non-container) it
            # must already have said unsafe; otherwise it must have seen every import.
            seen_all = all(f"{m}.{n}" in ours for m, n in risky)
            assert seen_all or verdict is Verdict.UNSAFE, (data, risky, ours)
            assert not risky or verdict in (Verdict.SUSPICIOUS, Verdict.UNSAFE), (data, risky)


def test_fuzz_inputs_are_deterministic(tmp_path: Path) -> None:
    rng = random.Random(1)
    assert _mutate(rng, b"\x80\x02N.") == _mutate(random.Random(1), b"\x80\x02N.")
