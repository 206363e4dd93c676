"""Bounded hashing of the values a pickle uses as dict keys and set items."""

from __future__ import annotations

from sdlib.files._pickle_values import BadCall, GlobalRef, Opaque, TensorRef, TooDeep

__all__ = ["KeyGuard"]

_MAX_KEY_DEPTH = 64
_MAX_KEY_NODES = 10_000
_ATOMS = (str, int, float, bytes, bool, complex, type(None), GlobalRef, Opaque, TensorRef)


class KeyGuard:
    """Bounded hashing of the values a pickle uses as dict keys and set items.

    CPython hashes a tuple by hashing every element (nothing is cached), recursively in C, so
    a key built from shared sub-tuples costs its whole tree, and a key pushed a million times
    (DUP, memo GET) costs that tree a million times. Each key's tree size, repeats included,
    is capped; a key already checked is remembered with its size (the object is pinned so its
    id stays unique), and a machine-wide budget caps the total, so hashing stays linear in the
    bytes of the stream.
    """

    def __init__(self, budget: int = 20_000_000) -> None:
        self.budget = budget
        self.spent = 0
        self._sizes: dict[int, tuple[object, int]] = {}

    def check(self, key: object) -> object:
        if isinstance(key, _ATOMS):
            self._spend(1)
            return key
        known = self._sizes.get(id(key))
        if known is not None:
            self._spend(known[1])
            return key
        size = 0
        todo: list[tuple[object, int]] = [(key, 0)]
        while todo:
            item, depth = todo.pop()
            if depth > _MAX_KEY_DEPTH:
                raise TooDeep("dict key or set item nested too deeply")
            if isinstance(item, (tuple, frozenset)):
                sub = self._sizes.get(id(item))
                if sub is not None:
                    size += sub[1]
                else:
                    size += 1
                    todo.extend((x, depth + 1) for x in item)
            elif isinstance(item, (list, dict, set)):
                raise BadCall("unhashable dict key or set item")
            else:
                size += 1
            if size > _MAX_KEY_NODES:
                raise TooDeep("dict key or set item nested too deeply")
        self._spend(size)
        try:
            hash(key)
        except TypeError as exc:
            raise BadCall("unhashable dict key or set item") from exc
        self._sizes[id(key)] = (key, size)
        return key

    def _spend(self, n: int) -> None:
        self.spent += n
        if self.spent > self.budget:
            raise TooDeep("dict keys and set items exhaust the hashing budget")
