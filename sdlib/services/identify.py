"""Identify the model files a user names, wherever they are (``sdlib identify PATH...``).

A path is anything a user types: a webUI folder, a folder inside one (``models/Lora/sub``),
a file in any sub-folder, relative or absolute, or a plain folder or file in no webUI
(``services.paths`` finds which). Files inside a webUI are identified with its layout and
its root as the wall (no sidecar is written behind a link that leads outside it); a file in
no webUI gets its sidecars beside it. One lookup, paced and counted, serves every path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.library.identify import IdentifyEvent, IdentifyResult
    from sdlib.library.scan import ScanProgress
    from sdlib.services._context import Context

__all__ = ["IdentifyReport", "identify_paths"]

_STATES = ("identified", "unidentified", "error", "skipped")


@dataclass(frozen=True)
class IdentifyReport:
    """Every model file's result, and what it cost at the source."""

    results: tuple[IdentifyResult, ...]
    #: Requests made to the source, and answers taken from its cache instead.
    requests: int
    cache_hits: int
    #: Model files that could not be read (they are skipped, with the reason, in ``results``).
    unreadable: tuple[str, ...] = ()

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r.state == state)

    @property
    def exit_code(self) -> int:
        """The worst file's exit code; 1 when a file could not be read; else 0."""
        codes = [r.exit_code for r in self.results if r.exit_code]
        return max(codes + ([1] if self.unreadable else []), default=0)

    def summary(self) -> dict[str, int]:
        return {
            "files": len(self.results), **{s: self.count(s) for s in _STATES},
            "sidecars_written": sum(len(r.sidecars) for r in self.results),
            "requests": self.requests, "cache_hits": self.cache_hits,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"files": [r.to_dict() for r in self.results], "summary": self.summary()}


def identify_paths(
    ctx: Context,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    ui: str | None = None,
    refresh: bool = False,
    previews: bool = True,
    jobs: int = 4,
    rate: float = 4.0,
    on_event: Callable[[IdentifyEvent], None] | None = None,
    on_scan: Callable[[ScanProgress], None] | None = None,
) -> IdentifyReport:
    """Identify the model files at ``paths`` (files, or folders: every model under them;
    none: every model of the configured webUI folder) at the source, by hash, and write
    their sidecars. ``ui`` names the front end where marker files cannot tell.

    A path that does not exist is a ``UsageError`` (exit 2); paths that hold no model file
    a ``LibraryError`` (exit 1) rather than an empty result.
    """
    from sdlib.errors import LibraryError, UsageError
    from sdlib.services.library import identify
    from sdlib.services.paths import locate, model_files

    for raw in paths:
        if not os.path.exists(Path(raw).expanduser()):
            raise UsageError(f"{raw}: no such file or folder")
    files = model_files(ctx, locate(ctx, paths, ui), on_progress=on_scan)
    if paths and not files:
        raise LibraryError(f"no model files in {', '.join(os.fspath(p) for p in paths)}")
    remote = ctx.remote(rate)
    groups: dict[tuple[Path | None, str], tuple[Any, list[Any]]] = {}
    for target, report in files:
        key = (target.root if target.walled else None, target.layout.name)
        groups.setdefault(key, (target.layout, []))[1].append(report)
    results: list[IdentifyResult] = []
    for (root, _name), (layout, reports) in groups.items():
        results += identify(
            ctx, reports, root=root, layout=layout, refresh=refresh, previews=previews,
            jobs=jobs, remote=remote, on_event=on_event,
        )  # fmt: skip
    unreadable = tuple(report.path for _, report in files if report.row.problem)
    return IdentifyReport(tuple(results), remote.requests, remote.cache_hits, unreadable)
