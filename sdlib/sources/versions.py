"""Which version of a model is the newest, and whether early access is still running.

Civitai lists a model's versions in the creator's ``index`` order, which is usually newest
first but not always: a creator can pin an older version to the top. "Newest" in sdlib
therefore never means "listed first". It means the latest ``publishedAt``; a version
without one counts by its ``createdAt``; equal dates fall back to ``createdAt``, then to
the order the API listed them in. ``download MODEL``, ``show``, ``updates``, manifests
without a version and the TUI's version picker all ask ``newest_first`` / ``newest``.

Pure and stdlib only: the same functions order ``CivitaiVersion`` values and the raw JSON
dicts the library's update cache keeps (``date_keys`` says how to read each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

__all__ = ["early_access_active", "newest", "newest_first", "parse_when", "raw_dates"]

T = TypeVar("T")

#: Sorts before every real date (a version with no usable date is the oldest).
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def parse_when(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as Civitai writes it (``2023-07-30T19:22:08.871Z``) -> UTC.

    None for anything else (missing, not a string, not a date). A date without a zone is
    taken as UTC, which is what Civitai means.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def raw_dates(version: Any) -> tuple[Any, Any]:
    """(publishedAt, createdAt) of a raw API dict (or a cache dict with those keys)."""
    if not isinstance(version, dict):
        return None, None
    return version.get("publishedAt"), version.get("createdAt")


def _attr_dates(version: Any) -> tuple[Any, Any]:
    return getattr(version, "published_at", None), getattr(version, "created_at", None)


def newest_first(
    versions: Sequence[T], dates: Callable[[T], tuple[Any, Any]] | None = None
) -> list[T]:
    """``versions`` ordered newest first (see the module docstring for the rule).

    ``dates`` returns (publishedAt, createdAt) of one item; the default reads the
    ``published_at`` / ``created_at`` attributes of ``CivitaiVersion``. The sort is stable
    on the API's order, so equal dates keep the order Civitai listed them in.
    """
    read = dates or _attr_dates

    def key(pair: tuple[int, T]) -> tuple[datetime, datetime, int]:
        position, item = pair
        published, created = read(item)
        created_at = parse_when(created)
        when = parse_when(published) or created_at or _NEVER
        return (when, created_at or _NEVER, -position)

    ranked = sorted(enumerate(versions), key=key, reverse=True)
    return [item for _, item in ranked]


def newest(versions: Sequence[T], dates: Callable[[T], tuple[Any, Any]] | None = None) -> T | None:
    """The newest of ``versions`` (None when there are none)."""
    ordered = newest_first(versions, dates)
    return ordered[0] if ordered else None


def early_access_active(ends: str | None, now: datetime | None = None) -> bool:
    """True while an early-access end date lies ahead of ``now`` (default: the clock).

    Civitai's older payloads keep ``earlyAccessEndsAt`` after the date has passed; a past
    date means the version is freely downloadable. An end date that cannot be read is
    taken at its word (still active), since the server will say so if it is not.
    """
    if not ends:
        return False
    when = parse_when(ends)
    if when is None:
        return True
    return when > (now or datetime.now(timezone.utc))
