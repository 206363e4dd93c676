"""When to stop following ``nextCursor``: one guard for every cursor walk in sdlib.

Civitai pages can be short or empty while a cursor is still given (it filters after paging),
so "follow the cursor until it is absent" is the rule. Two things break it: a known Civitai
bug answers an empty page with the *same* ``nextCursor`` again, and a broken or hostile
server can hand out new cursors with empty pages forever (sdlib once made 434 requests in
20 s that way). ``PageGuard`` ends the walk on a repeated cursor, after ``max_empty`` empty
pages in a row, or after ``max_pages`` pages, and says why in one line (``stopped``).

The CLI's ``search``, the TUI's "load more" and the library's update batches all use it;
the TUI keeps one guard per search across its page requests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_EMPTY_PAGES", "MAX_PAGES", "PageGuard", "normalise_cursor"]

#: Empty pages in a row before giving up (Civitai's filtered pages are rarely empty twice).
MAX_EMPTY_PAGES = 5
#: Pages per walk (100 models a page: 20,000 models, more than any search needs).
MAX_PAGES = 200


@dataclass
class PageGuard:
    """Decides, page after page, whether the next cursor is worth following. Thread-safe."""

    max_pages: int = MAX_PAGES
    max_empty: int = MAX_EMPTY_PAGES
    pages: int = 0
    items: int = 0
    empty_run: int = 0
    #: Why the walk was stopped early (one line), or None while it may go on.
    stopped: str | None = None
    _seen: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def follow(self, next_cursor: str | None, items: int, *, sent: str | None = None) -> str | None:
        """Record a page of ``items`` results that offered ``next_cursor``; return the cursor
        to request next, or None when the walk is over (``stopped`` says why if it was cut
        short). ``sent`` is the cursor the page was requested with (None for the first)."""
        with self._lock:
            self.pages += 1
            self.items += items
            self.empty_run = 0 if items else self.empty_run + 1
            if sent is not None:
                self._seen.add(sent)
            if next_cursor is None or self.stopped is not None:
                return None
            reason = None
            if next_cursor in self._seen or next_cursor == sent:
                reason = "the server repeated a page cursor"
            elif self.empty_run >= self.max_empty:
                reason = f"{self.empty_run} empty pages in a row"
            elif self.pages >= self.max_pages:
                reason = f"the limit of {self.max_pages} pages was reached"
            if reason is not None:
                pages = f"{self.pages} page{'s' if self.pages != 1 else ''}"
                found = f"{self.items} result{'s' if self.items != 1 else ''}"
                self.stopped = f"stopped paging after {pages} ({found}): {reason}"
                return None
            self._seen.add(next_cursor)
            return next_cursor


def normalise_cursor(value: Any) -> str | None:
    """``nextCursor`` as a string (Civitai sends numbers or strings), or None at the end."""
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return str(value)
        value = int(value)
    text = str(value)
    return text[:1024] or None
