"""Tell running webUIs to rescan their model lists after sdlib changed their folders.

The webUIs are the config's ``[webui.NAME]`` tables (``url``, ``ui``, optional Basic
``username``/``password``). Best effort: a webUI that is not running, slow, or refusing
the call gives one line through ``on_note``, never an exception, so an install that
worked stays a success. ``download``, ``install`` and ``organize`` call this after they
changed files (unless ``--no-refresh``), as does the TUI after each download.

    from sdlib.services import Context, refresh

    with Context() as ctx:
        for outcome in refresh.refresh(ctx, ["lora"], on_note=print):
            print(outcome.name, outcome.ok, outcome.refreshed)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sdlib.refresh import WebuiRefresh, call_webui, plan_calls
from sdlib.taxonomy import Kind

if TYPE_CHECKING:
    from sdlib.library.layouts import Layout
    from sdlib.services._context import Context

__all__ = ["WebuiRefresh", "changed_kinds", "refresh", "refresh_webuis"]


def refresh(
    ctx: Context, kinds: Iterable[Kind | str], *, on_note: Callable[[str], None] | None = None
) -> tuple[WebuiRefresh, ...]:
    """Ask every configured webUI to rescan the lists ``kinds`` appear in.

    One :class:`WebuiRefresh` (and one ``on_note`` line) per webUI that had something to
    be told; none when no webUI is configured or no kind has a list. Calls go out over
    ``ctx.webui_http`` with each webUI's own timeout (2 s by default) and no retries.
    """
    wanted = tuple(kinds)
    outcomes: list[WebuiRefresh] = []
    for webui in ctx.settings.webuis:
        plan = plan_calls(webui.ui, wanted)
        if not plan.calls and not plan.caveats:
            continue
        outcome = call_webui(ctx.webui_http, webui, plan)
        outcomes.append(outcome)
        if on_note is not None:
            on_note(outcome.line())
    return tuple(outcomes)


#: ``sdlib.refresh_webuis``: the top-level name (``sdlib.refresh`` is the package).
refresh_webuis = refresh


def changed_kinds(
    layout: Layout | None,
    root: str | os.PathLike[str] | None,
    placed: Iterable[tuple[str | os.PathLike[str], Kind | str | None]],
) -> frozenset[Kind]:
    """The kinds whose webUI lists the files ``placed`` (path, kind if known) changed.

    A webUI lists files by folder, so the folder decides: a Flux checkpoint that SD.Next
    keeps in ``models/UNET`` changes its UNet list; a file moved between two folders
    changes both lists (give both paths). The known kind wins where its folder agrees; a
    file no rule of ``layout`` lists (a sidecar, a preview) changes none. Without a layout
    (``--to DIR``) the known kinds are the answer.
    """
    out: set[Kind] = set()
    for path, hint in placed:
        kind = _kind_at(layout, root, Path(path), _as_kind(hint))
        if kind is not None and kind is not Kind.UNKNOWN:
            out.add(kind)
    return frozenset(out)


def _kind_at(layout: Layout | None, root: str | os.PathLike[str] | None, path: Path,
             hint: Kind | None) -> Kind | None:  # fmt: skip
    from sdlib.library.layouts import folder_within, list_kind

    if layout is None or layout.any_kind or root is None:
        return hint
    path = Path(os.path.abspath(path))
    try:
        parent, inside = path.parent.relative_to(os.path.abspath(root)).as_posix(), True
    except ValueError:  # a folder override may be absolute (D:/loras); or a shared store
        parent, inside = str(path.parent), False

    def lists(folder: str, recursive: bool) -> bool:
        within = folder_within(parent, folder)
        return within if recursive else within and folder_within(folder, parent)

    candidates = [
        rule.kind
        for rule in layout.rules
        if rule.accepts_name(path.name) and any(lists(f, rule.recursive) for f in rule.folders)
    ]
    if not candidates:
        # Inside the root but where the webUI lists nothing of its name: no list changed.
        return None if inside else hint
    if hint is not None and list_kind(hint) in {list_kind(k) for k in candidates}:
        return hint
    return candidates[0]


def _as_kind(value: Kind | str | None) -> Kind | None:
    if value is None or isinstance(value, Kind):
        return value
    try:
        return Kind(value)
    except ValueError:
        return None
