"""``sdlib.cli._table``: through a pipe a row is one line, whole, with nothing a terminal obeys."""

from __future__ import annotations

import pytest

from sdlib.cli._common import console
from sdlib.cli._table import Column, print_records, record_line


def test_a_record_is_one_line_whatever_its_cells_hold() -> None:
    line = record_line(["a\tb", "two\nlines", [("ok", "green"), ("dup", "cyan")], "\x1b]0;t\x07x"])
    assert line == "a b\ttwo lines\tok, dup\tx"


def test_piped_rows_are_whole_tab_separated_lines(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/models/" + "very_long_folder/" * 12 + "model.safetensors"
    out = console()
    assert not out.is_terminal  # pytest captures stdout: a pipe, as for `sdlib scan | less`
    print_records(out, [Column("status", no_wrap=True), Column("file", max_width=12)],
                  [[[("misplaced", "yellow")], path], ["ok", "b"]], title="T")  # fmt: skip
    assert capsys.readouterr().out == f"# T\nstatus\tfile\nmisplaced\t{path}\nok\tb\n"
