"""The key index :mod:`sdlib.files.classify` matches its signatures against.

``Keys`` is one file's tensors (or a subtree of them): names, and the shape, dtype and
element columns the header reader made. What the names alone tell (their sorted order, the
blob of them, which fragments occur, the subtrees under a prefix, a LoRA's module layout)
lives in a ``Names`` made once per list of names and shared through a small cache by every
later file with exactly the same names in the same order: LoRAs trained with one recipe,
checkpoints of one base saved by one tool. The cache's key is the tuple of names, compared
in full, so a shared answer is always the one the file's own names give.
"""

from __future__ import annotations

import math
import operator
import threading
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TypeVar

from sdlib.files.tensors import TensorColumns, TensorInfo

__all__ = ["Keys", "Names", "forget_names"]

_T = TypeVar("_T")
_SHAPE = operator.attrgetter("shape")
_DTYPE = operator.attrgetter("dtype")


class Names:
    """What an ordered list of names tells on its own, each part worked out on first use.

    Shared by files with the same names: never holds anything a file's shapes, dtypes or
    metadata decide. ``memo`` keeps what other modules work out from the names alone (a
    LoRA's module layout), under a key of theirs.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._found: dict[str, bool] = {}
        self._endings: dict[str, list[str]] = {}
        self._subs: dict[str, tuple[Mapping[str, int], Names]] = {}
        self.memo: dict[str, object] = {}

    @cached_property
    def ordered(self) -> list[str]:
        """The names sorted (prefix questions bisect it)."""
        return sorted(self.names)

    @cached_property
    def blob(self) -> str:
        """Every name between newlines ("does any name contain X" at C speed)."""
        return "\n" + "\n".join(self.names) + "\n"

    @cached_property
    def plain(self) -> bool:
        """No name holds a newline: then ``blob`` stands for the names exactly."""
        return "\n" not in "".join(self.names)

    def contains(self, fragment: str) -> bool:
        found = self._found.get(fragment)
        if found is None:
            found = self._found[fragment] = fragment in self.blob
        return found

    def ending(self, suffix: str) -> list[str]:
        known = self._endings.get(suffix)
        if known is None:
            known = self._endings[suffix] = self._ending(suffix)
        return list(known)

    def _ending(self, suffix: str) -> list[str]:
        if "\n" in suffix:
            return [n for n in self.names if n.endswith(suffix)]
        blob, needle = self.blob, suffix + "\n"
        at = blob.find(needle)
        if at < 0:  # every name is followed by a newline: none ends with the suffix
            return []
        if not self.plain:
            return [n for n in self.names if n.endswith(suffix)]
        out: list[str] = []
        while at >= 0:
            out.append(blob[blob.rfind("\n", 0, at) + 1 : at + len(suffix)])
            at = blob.find(needle, at + 1)
        return out

    def sub(self, prefix: str, rows: Mapping[str, int]) -> tuple[Mapping[str, int], Names]:
        """The rows and names of the subtree under ``prefix`` (prefix removed), given this
        tree's ``rows``: every holder of a shared ``Names`` has the same rows (see Keys)."""
        known = self._subs.get(prefix)
        if known is None:
            known = self._subs[prefix] = self._sub(prefix, rows)
        return known

    def _sub(self, prefix: str, rows: Mapping[str, int]) -> tuple[Mapping[str, int], Names]:
        ordered = self.ordered
        lo = bisect_left(ordered, prefix)
        hi = bisect_left(ordered, prefix + "\U0010ffff")
        cut = _cutter(len(prefix))
        if hi - lo == len(ordered):  # everything: keep file order
            names = tuple(map(cut, self.names))
            sub_rows = dict(zip(names, rows.values(), strict=True))
        else:
            names = tuple(map(cut, ordered[lo:hi]))
            sub_rows = dict(zip(names, map(rows.__getitem__, ordered[lo:hi]), strict=True))
        sub = Names(names)
        known = sub.__dict__
        known["ordered"] = sorted(names) if hi - lo == len(ordered) else list(names)
        if self.__dict__.get("plain"):
            known["plain"] = True  # a part of a name holds no newline the name does not
        return sub_rows, sub


@lru_cache(maxsize=64)
def _cutter(n: int) -> Callable[[str], str]:
    """``name[n:]`` as a C-level callable (a subtree's names in one ``map``)."""
    cut: Callable[[str], str] = operator.itemgetter(slice(n, None))
    return cut


#: Names of the last few distinct files, by the tuple of their names, newest last.
_KNOWN: OrderedDict[tuple[str, ...], Names] = OrderedDict()
_KNOWN_KEPT = 32
_KNOWN_LOCK = threading.Lock()  # a scan and an inspect may classify in two threads at once


def _shared(rows: Mapping[str, int]) -> Names:
    key = tuple(rows)
    with _KNOWN_LOCK:
        known = _KNOWN.get(key)
        if known is not None:
            _KNOWN.move_to_end(known.names)  # the stored key: found by identity, not compared
            return known
        known = _KNOWN[key] = Names(key)
        if len(_KNOWN) > _KNOWN_KEPT:
            _KNOWN.popitem(last=False)
    return known


def forget_names() -> None:
    """Drop every shared ``Names`` (tests: classify as if no file came before)."""
    with _KNOWN_LOCK:
        _KNOWN.clear()


@dataclass(frozen=True)
class Keys:
    """The tensors of one (sub)tree, indexed so rules are lookups, not scans.

    Prefix questions bisect the sorted names (O(log n)); the blob of names answers the few
    "does any name contain X" questions at C speed; both come from ``names_info``, shared
    by files with the same names. Shapes and dtypes are columns shared by a tree and its
    subtrees: ``rows`` maps each name to its row, so a subtree is one dict of names, never
    a copy of per-tensor objects.
    """

    rows: Mapping[str, int]
    shapes: Sequence[tuple[int, ...]]
    dtypes: Sequence[str]
    #: Elements per tensor (the product of its shape), a column like the others.
    numels: Sequence[int]
    #: True when ``rows`` holds every row of the columns in column order (0, 1, 2...):
    #: questions about all tensors then read the columns as they are, and the names are
    #: all a shared ``Names`` needs to stand for ``rows``.
    whole: bool = False

    @classmethod
    def of(cls, tensors: Mapping[str, TensorInfo]) -> Keys:
        """The keys of a table's tensors (its columns as they are, for a bulk-read header)."""
        if isinstance(tensors, TensorColumns):
            numels = tensors.numels
            if numels is None:
                numels = list(map(math.prod, tensors.shapes))
            whole = len(tensors.rows) == len(tensors.dtypes)  # rows 0, 1, 2... by contract
            return cls(tensors.rows, tensors.shapes, tensors.dtypes, numels, whole)
        infos = list(tensors.values())
        shapes = list(map(_SHAPE, infos))
        rows = dict(zip(tensors, range(len(infos)), strict=True))
        return cls(rows, shapes, list(map(_DTYPE, infos)), list(map(math.prod, shapes)), True)

    @cached_property
    def names_info(self) -> Names:
        """What the names tell: shared with earlier files of the same names when ``rows``
        follows from the names alone (a whole table), else this tree's own."""
        if self.whole:
            return _shared(self.rows)
        return Names(tuple(self.rows))

    @cached_property
    def elements(self) -> int:
        """Elements of all these tensors (the parameter count)."""
        return sum(self.column(self.numels))

    @property
    def blob(self) -> str:
        return self.names_info.blob

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, name: object) -> bool:
        return name in self.rows

    def shape(self, name: str) -> tuple[int, ...] | None:
        row = self.rows.get(name)
        return self.shapes[row] if row is not None else None

    def dim(self, name: str, axis: int) -> int | None:
        """``shape[axis]`` of ``name``, or None if absent or of lower rank."""
        shape = self.shape(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    def has_prefix(self, prefix: str) -> bool:
        names = self.names_info.ordered
        i = bisect_left(names, prefix)
        return i < len(names) and names[i].startswith(prefix)

    def count_prefix(self, prefix: str) -> int:
        names = self.names_info.ordered
        return bisect_left(names, prefix + "\U0010ffff") - bisect_left(names, prefix)

    def contains(self, fragment: str) -> bool:
        return self.names_info.contains(fragment)

    def all_prefixed(self, prefix: str) -> bool:
        return bool(self.rows) and self.count_prefix(prefix) == len(self.rows)

    def sub(self, prefix: str) -> Keys:
        """The subtree under ``prefix``, with the prefix removed."""
        rows, names = self.names_info.sub(prefix, self.rows)
        whole = self.whole and len(rows) == len(self.rows)
        sub = Keys(rows, self.shapes, self.dtypes, self.numels, whole)
        sub.__dict__["names_info"] = names
        return sub

    def names(self) -> Iterable[str]:
        return self.rows.keys()

    def ending(self, suffix: str) -> list[str]:
        """The names that end with ``suffix``, in order: found in the blob at C speed (a
        checkpoint has thousands of names and a rule wants the few of one layer)."""
        return self.names_info.ending(suffix)

    def shaped(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every tensor, in order."""
        return zip(self.rows, map(self.shapes.__getitem__, self.rows.values()), strict=True)

    def column(self, values: Sequence[_T]) -> Sequence[_T]:
        """``values`` (a column such as ``shapes`` or ``dtypes``) for these names, in order
        (the column itself for a whole table: never change what this returns)."""
        if self.whole:
            return values
        return list(map(values.__getitem__, self.rows.values()))

    def heads(self) -> Counter[str]:
        """Tensor count per top-level name segment (for "unknown" evidence)."""
        return Counter(k.split(".", 1)[0] for k in self.rows)
