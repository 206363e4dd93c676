"""Remote catalogues: a reference in, model, version and file facts out.

Each source lives in its own package (``sdlib.sources.civitai`` today) over the client
``sdlib.http`` builds; what no single source owns stays here: ``PageGuard``, the one rule
for when to stop following a ``nextCursor`` (``paging``), and ``newest_first``, the one
rule for which version is the newest (``versions``). Both are pure and stdlib only, so the
TUI and the library import them without loading any client.

The download engine imports nothing from here (an import-linter contract says so): it is
handed URLs, sizes, hashes and the source's error mapper.
"""

from __future__ import annotations

from sdlib.sources.paging import MAX_EMPTY_PAGES, MAX_PAGES, PageGuard, normalise_cursor
from sdlib.sources.versions import (
    early_access_active,
    newest,
    newest_first,
    parse_when,
    raw_dates,
)

__all__ = [
    "MAX_EMPTY_PAGES",
    "MAX_PAGES",
    "PageGuard",
    "early_access_active",
    "newest",
    "newest_first",
    "normalise_cursor",
    "parse_when",
    "raw_dates",
]
