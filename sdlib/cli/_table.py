"""Tables for people, records for pipes: the one way CLI commands print rows.

On a terminal a rich table (columns sized to the window, long cells folded). Through a pipe
or into a file (``sdlib scan | less``, ``> out.txt``) a table would wrap paths inside
narrow cells at rich's default 80 columns, so there it is one record per line instead: a
header line, then each row's cells separated by tabs, whole (full paths, nothing cut or
folded), with no colour or escape sequence, ready for ``cut -f5`` or ``grep``. ``--json``
does not come through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from sdlib.formatting import terminal_safe

__all__ = ["Column", "print_records", "record_line"]

#: A cell: plain text, or styled parts (text, rich style) shown joined by ``", "``.
Cell = Union[str, Sequence[tuple[str, str]]]  # noqa: UP007 - a runtime alias on 3.10


@dataclass(frozen=True)
class Column:
    name: str
    #: Never wrapped on a terminal (short values: a status, a size).
    no_wrap: bool = False
    justify: str = "left"
    style: str = ""
    #: Widest a terminal cell may be (longer text folds); no limit through a pipe.
    max_width: int | None = None


def _plain(cell: Cell) -> str:
    return cell if isinstance(cell, str) else ", ".join(text for text, _style in cell)


def record_line(cells: Sequence[Cell]) -> str:
    """One record: cells tab-separated, each on one line with no tab or control inside."""
    return "\t".join(terminal_safe(_plain(c), newlines=False).replace("\t", " ") for c in cells)


def print_records(
    out: Any, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, title: str = ""
) -> None:
    """``rows`` as a rich table on a terminal, else as a header line plus one tab-separated
    line per row (``out`` is a console from ``_common.console``)."""
    if not out.is_terminal:
        lines = ([f"# {terminal_safe(title, newlines=False)}"] if title else []) + [
            record_line([c.name for c in columns]),
            *(record_line(row) for row in rows),
        ]
        out.file.write("".join(line + "\n" for line in lines))  # the console's stream
        out.file.flush()
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=title or None, title_justify="left", show_edge=False, pad_edge=False, box=None,
        header_style="bold",
    )  # fmt: skip
    for col in columns:
        table.add_column(
            col.name, no_wrap=col.no_wrap, overflow="fold", justify=col.justify,  # type: ignore[arg-type]
            style=col.style or None, max_width=col.max_width,
        )  # fmt: skip
    # Text() drops BEL and friends itself: sequences must go whole before (terminal_safe).
    for row in rows:
        cells: list[Any] = []
        for cell in row:
            if isinstance(cell, str):
                cells.append(Text(terminal_safe(cell)))
            else:
                text = Text()
                for i, (part, style) in enumerate(cell):
                    if i:
                        text.append(", ")
                    text.append(terminal_safe(part), style=style or None)
                cells.append(text)
        table.add_row(*cells)
    out.print(table)
