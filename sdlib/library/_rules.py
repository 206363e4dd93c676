"""What a layout's folder rules say about a file name: which list the front end shows it
in, under which key, and which rules of a folder take a kind of content.

``Rules`` answers the same questions for the thousands of files of one scan, each worked
out once per folder and name ending: a rule only tests whether a name ends with one of its
extensions or exclusions, each of which starts with a dot and holds at most a few dots, so
two names that agree from their last few dots on get the same answer. Endings that are
not ASCII (where lower-casing may change a length), and layouts with a pattern that does
not start with a dot, are looked up each time.
"""

from __future__ import annotations

import os
import unicodedata

from sdlib.library._walk import rules_listing
from sdlib.library.layouts import FolderRule, KeyedBy, Layout, list_kind
from sdlib.taxonomy import Base, Kind

__all__ = ["Rules", "kinds_accepted", "listing_rule", "name_key"]


def kinds_accepted(layout: Layout, kind: Kind, base: Base) -> set[Kind]:
    kinds = {kind}
    if kind in (Kind.LORA, Kind.LYCORIS):
        kinds |= {Kind.LORA, Kind.LYCORIS}
    if kind is Kind.CHECKPOINT and base in layout.dit_bases:
        kinds.add(Kind.UNET)
    return kinds


def listing_rule(layout: Layout, folder: str, name: str, kind: Kind | None) -> FolderRule | None:
    """The rule the front end lists ``name`` in ``folder`` under (content kind first)."""
    return _first(rules_listing(layout, folder, name), kind)


def _first(rules: list[FolderRule], kind: Kind | None) -> FolderRule | None:
    if kind is not None:
        for r in rules:
            if r.kind is kind or list_kind(r.kind) is list_kind(kind):
                return r
    return rules[0] if rules else None


def name_key(rule: FolderRule, folder: str, rel: str) -> tuple[str, str]:
    """(list, key) the front end knows a file by; keys compare case-insensitively."""
    name = os.path.basename(rel)
    if rule.keyed_by is KeyedBy.STEM:
        key = os.path.splitext(name)[0]
    elif rule.keyed_by is KeyedBy.NAME:
        key = name
    else:
        key = rel.replace(os.sep, "/")
    listing = list_kind(rule.kind).value
    if rule.kind is Kind.UPSCALER:
        listing = f"upscaler:{folder}"
    return listing, unicodedata.normalize("NFC", key).casefold()


class Rules:
    """``layout``'s answers for one scan, remembered by (folder, name ending)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        patterns = [x for r in layout.rules for x in (*r.extensions, *r.exclude)]
        #: Dots the name ending keeps (0: remember nothing, look each name up).
        self._dots = max((x.count(".") for x in patterns), default=0)
        if not all(x.startswith(".") for x in patterns):
            self._dots = 0
        self._listing: dict[tuple[str, str], list[FolderRule]] = {}
        self._here: dict[tuple[str, Kind, Base], tuple[FolderRule, ...]] = {}
        self._accepts: dict[tuple[str, Kind, Base, str], bool] = {}

    def _end(self, name: str) -> str | None:
        """``name`` from its ``_dots``-th last dot on (from its first, with fewer; empty
        without any): every pattern a name ends with starts at one of these dots."""
        if not self._dots:
            return None
        start = len(name)
        for _ in range(self._dots):
            dot = name.rfind(".", 0, start)
            if dot < 0:
                break
            start = dot
        tail = name[start:]
        return tail if tail.isascii() else None

    def listing(self, folder: str, name: str) -> list[FolderRule]:
        """``rules_listing(layout, folder, name)`` (do not change the list)."""
        tail = self._end(name)
        if tail is None:
            return rules_listing(self.layout, folder, name)
        found = self._listing.get((folder, tail))
        if found is None:
            found = self._listing[folder, tail] = rules_listing(self.layout, folder, tail)
        return found

    def listing_rule(self, folder: str, name: str, kind: Kind | None) -> FolderRule | None:
        return _first(self.listing(folder, name), kind)

    def here(self, folder: str, kind: Kind, base: Base) -> tuple[FolderRule, ...]:
        """The rules of ``folder`` that take content of this kind and base."""
        key = (folder, kind, base)
        found = self._here.get(key)
        if found is None:
            kinds = kinds_accepted(self.layout, kind, base)
            found = tuple(x for x in self.layout.rules if folder in x.folders and x.kind in kinds)
            self._here[key] = found
        return found

    def accepts(self, folder: str, kind: Kind, base: Base, name: str) -> bool:
        """Whether one of ``here(folder, kind, base)`` lists ``name``."""
        tail = self._end(name)
        if tail is None:
            return any(x.accepts_name(name) for x in self.here(folder, kind, base))
        key = (folder, kind, base, tail)
        found = self._accepts.get(key)
        if found is None:
            found = any(x.accepts_name(tail) for x in self.here(folder, kind, base))
            self._accepts[key] = found
        return found
