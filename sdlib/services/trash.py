"""Move model files, each with its sidecars, to the trash (``sdlib trash``; the TUI's Library
screen trashes one file through ``services.library.trash``).

Every path is checked against the webUI folder's wall (the root, plus the folders its layout
is configured to read elsewhere) before anything moves: one path outside refuses them all.
A link is trashed as the link, never through it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.services._context import Context

__all__ = ["TrashOutcome", "trash_paths"]


@dataclass(frozen=True)
class TrashOutcome:
    root: str
    #: What was asked for, and everything that moved (models and their sidecars).
    asked: tuple[str, ...]
    system: tuple[str, ...]
    fallback: tuple[str, ...]
    #: ``<root>/.sdlib-trash/<time>`` when the system trash refused a file, else None.
    folder: str | None

    @property
    def moved(self) -> tuple[str, ...]:
        return self.system + self.fallback

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "asked": list(self.asked), "moved": list(self.moved),
            "system_trash": list(self.system), "fallback": list(self.fallback),
            "folder": self.folder,
        }  # fmt: skip


def trash_paths(
    ctx: Context,
    paths: Sequence[str | os.PathLike[str]],
    *,
    root: str | Path | None = None,
    ui: str | None = None,
) -> TrashOutcome:
    """Move ``paths`` (files in the webUI folder ``root``, default: the configured one) and
    each one's sidecars to the system trash, or where there is none ``<root>/.sdlib-trash``.

    UsageError, before anything moves, for a path outside the wall, a folder, or a path
    that does not exist.
    """
    from sdlib.errors import UsageError
    from sdlib.library.trash import move_to_trash
    from sdlib.library.wall import Wall, real
    from sdlib.services.library import scan

    folder, layout = ctx.library_root(root, ui)
    wall = Wall.for_layout(folder, layout)
    names: list[str] = []
    for raw in paths:
        name = os.path.abspath(os.path.expanduser(os.fspath(raw)))
        # The name, not its target: a link is judged (and trashed) as the link.
        spelled = os.path.join(
            real(os.path.dirname(name)), os.path.normcase(os.path.basename(name))
        )
        if not wall.holds_real(spelled):
            raise UsageError(f"{raw}: outside the webUI folder {folder}: not moved to the trash")
        if not os.path.lexists(name):
            raise UsageError(f"{raw}: no such file")
        if os.path.isdir(name) and not os.path.islink(name):
            raise UsageError(f"{raw}: a folder; name the files to trash")
        names.append(name)
    order: list[str] = []
    reports = scan(ctx, folder, layout=layout, only=names, workers=None).files
    sidecars = {r.path: r.sidecars for r in reports if r.role == "model"}
    for name in names:
        for path in [*sidecars.get(name, []), name]:  # sidecars first, the model last
            if path not in order:
                order.append(path)
    result = move_to_trash(order, folder, wall=wall)
    return TrashOutcome(
        str(folder), tuple(names), result.system, result.fallback,
        str(result.folder) if result.folder is not None else None,
    )  # fmt: skip
