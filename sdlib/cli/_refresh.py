"""``--no-refresh`` and the webUI refresh that follows ``download``, ``install`` and
``organize --apply/--undo``: one stderr line per configured webUI, never a failure."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import click

__all__ = ["no_refresh_option", "refresh_after"]

no_refresh_option = click.option(
    "--no-refresh", is_flag=True,
    help="Do not ask running webUIs ([webui.NAME] in the config) to rescan their model lists.",
)  # fmt: skip


def refresh_after(
    settings: Any,
    layout: Any,
    root: str | os.PathLike[str] | None,
    placed: Iterable[tuple[str | os.PathLike[str], str | None]],
) -> None:
    """Tell the configured webUIs about the files ``placed`` (path, kind if known) changed:
    the lists their folders hold (``services.refresh.changed_kinds``)."""
    if not settings.webuis:
        return
    from sdlib.cli._common import cli_context, console
    from sdlib.services.refresh import changed_kinds, refresh

    kinds = changed_kinds(layout, root, placed)
    if not kinds:
        return
    err = console(stderr=True)

    def note(line: str) -> None:
        err.print(f"sdlib: {line}", markup=False, highlight=False)

    with cli_context(settings) as ctx:
        if not err.is_terminal:
            refresh(ctx, kinds, on_note=note)
            return
        with err.status("asking running webUIs to refresh…"):  # a UI may take its timeout
            refresh(ctx, kinds, on_note=note)
