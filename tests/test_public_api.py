"""The top-level API is small, sorted, and every name in it resolves (lazily)."""

from __future__ import annotations

import sdlib


def test_all_is_sorted_and_resolves() -> None:
    assert sdlib.__all__ == sorted(sdlib.__all__)
    for name in sdlib.__all__:
        assert getattr(sdlib, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        sdlib.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
