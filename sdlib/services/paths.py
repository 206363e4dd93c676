"""Which webUI a path the user typed belongs to, and which model files it means.

``sdlib identify PATH`` (and any command taking files or folders) accepts a webUI folder,
any folder inside one (``models/Lora/detail``), a file anywhere, relative or absolute. A
path inside a webUI is scanned with that webUI's layout and its root as the wall (sidecars
are written beside the files, never behind a link leading out); a path in no webUI is a
plain folder of models, or a file named on its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdlib.library.layouts import Layout
    from sdlib.library.scan import FileReport, ScanProgress
    from sdlib.services._context import Context

__all__ = ["Target", "locate", "model_files"]


@dataclass(frozen=True)
class Target:
    #: Where the scan starts: the webUI folder, or the plain folder named.
    root: Path
    layout: Layout
    #: Only these files (a file was named); None: every model under ``within``.
    only: tuple[Path, ...] | None = None
    #: Only models under this folder (a folder inside a webUI was named).
    within: Path | None = None
    #: False for a file named outside any webUI: its sidecars go beside it, unwalled.
    walled: bool = True


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _webui_above(path: Path) -> tuple[Path, Layout] | None:
    """The nearest folder at or above ``path`` that a front end lives in."""
    from sdlib.library.layouts import detect

    for folder in (path, *path.parents):
        layout = detect(folder)
        if layout is not None:
            return folder, layout
    return None


def locate(ctx: Context, paths: Sequence[str | os.PathLike[str]], ui: str | None = None
           ) -> list[Target]:  # fmt: skip
    """A target per path (none given: the configured webUI folder). ``ui`` names the front
    end when it cannot be detected from marker files."""
    from sdlib.library.layouts import PLAIN

    if not paths:
        root, layout = ctx.library_root(None, ui)
        return [Target(_absolute(root), layout)]
    out: list[Target] = []
    for given in paths:
        path = _absolute(given)
        folder = path if path.is_dir() else path.parent
        found = _webui_above(folder)
        if found is not None:
            root = found[0]
            _, layout = ctx.library_root(root, ui or "auto")  # with the configured folders
        elif ui and path.is_dir():
            root, layout = ctx.library_root(path, ui)
        else:
            root, layout = folder, PLAIN
        if not path.is_dir():
            out.append(Target(root, layout, only=(path,), walled=found is not None))
        else:
            out.append(Target(root, layout, within=None if path == root else path))
    return out


def model_files(
    ctx: Context,
    targets: Sequence[Target],
    *,
    on_progress: Callable[[ScanProgress], None] | None = None,
) -> list[tuple[Target, FileReport]]:
    """Scan each target (incrementally: unchanged files are not read) and pair it with each
    model file it means, every file once."""
    from sdlib.services.library import scan

    seen: set[str] = set()
    out: list[tuple[Target, FileReport]] = []
    for target in targets:
        result = scan(ctx, target.root, layout=target.layout, only=target.only,
                      on_progress=on_progress, workers=None)  # fmt: skip
        wanted = {os.fspath(p) for p in target.only} if target.only is not None else None
        for report in result.models:
            path = os.path.abspath(report.path)
            if path in seen or (wanted is not None and path not in wanted):
                continue
            if target.within is not None and not _inside(path, target.within):
                continue
            seen.add(path)
            out.append((target, report))
    return out


def _inside(path: str, folder: Path) -> bool:
    try:
        return os.path.commonpath([path, os.fspath(folder)]) == os.fspath(folder)
    except ValueError:  # another drive
        return False
