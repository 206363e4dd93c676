"""`sdlib tui --previews auto` asks the terminal what it draws before Textual starts, without
importing textual-image (Pillow and numpy held up the first frame by ~0.3 s), and imports it
when the first preview is wanted without it asking the terminal again (Textual owns the
terminal by then). What previews are drawn with must not change: for terminals answering
like a Sixel terminal, a Kitty terminal and one with neither, the widget is the one
textual-image itself picks there (the reference: textual-image's own import, in the same
simulated terminal)."""

from __future__ import annotations

import os
import select
import struct
import sys
import time

import pytest

if sys.platform == "win32":
    pytest.skip("a pseudo-terminal (forkpty)", allow_module_level=True)

import fcntl
import termios

#: (DA1 answer, answers the Kitty graphics query?) for three kinds of terminal.
TERMINALS = {
    "sixel": (b"\x1b[?62;4;22c", False),
    "kitty": (b"\x1b[?62;22c", True),
    "neither": (b"\x1b[?62;22c", False),
}

SDLIB = """
import sys
from sdlib.tui import graphics
ok = graphics.probe()
heavy = sorted(m for m in ("numpy", "PIL") if m in sys.modules)
print("PROBED", flush=True)
print("RESULT", ok, graphics.detected, heavy, flush=True)
cls = graphics.auto_class(graphics.widgets())
from textual_image._terminal import get_cell_size
r = cls._Renderable
print("CHOICE", r.__module__ + "." + r.__name__, *get_cell_size(), "END", flush=True)
"""

TEXTUAL_IMAGE = """
from textual_image import widget
from textual_image._terminal import get_cell_size
r = widget.Image._Renderable
print("CHOICE", r.__module__ + "." + r.__name__, *get_cell_size(), "END", flush=True)
"""


def in_terminal(code: str, da1: bytes, kitty: bool) -> bytes:
    """What ``code`` writes on a pseudo-terminal (120x40 cells of 10x20 pixels) that answers
    the Device Attributes query with ``da1`` and, if ``kitty``, the graphics query with OK."""
    pid, fd = os.forkpty()
    if pid == 0:  # the child
        os.execv(sys.executable, [sys.executable, "-c", code])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 1200, 800))
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while b"END" not in seen and time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen += chunk
            if b"\x1b_G" in chunk and kitty:
                os.write(fd, b"\x1b_Gi=1;OK\x1b\\")
            if b"\x1b[c" in chunk:
                os.write(fd, da1)
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    assert b"END" in seen, seen.decode(errors="replace")
    return seen


def field(output: bytes, name: str) -> list[str]:
    return output.decode().split(name, 1)[1].splitlines()[0].replace(" END", "").split()


@pytest.mark.parametrize("terminal", list(TERMINALS))
def test_previews_are_drawn_as_textual_image_would_draw_them(terminal: str) -> None:
    da1, kitty = TERMINALS[terminal]
    before, _, after = in_terminal(SDLIB, da1, kitty).partition(b"PROBED")
    assert b"\x1b[c" in before  # the probe asked
    ok, detected, *heavy = field(after, "RESULT")
    assert ok == "True" and heavy == ["[]"]  # without Pillow or numpy
    assert detected == {"sixel": "sixel", "kitty": "kitty", "neither": "halfcell"}[terminal]
    # Importing textual-image afterwards asks the terminal nothing (Textual would read it).
    assert b"\x1b[c" not in after and b"\x1b_G" not in after and b"\x1b[16t" not in after
    # The renderable and the cell size in pixels textual-image picks by itself there.
    reference = in_terminal(TEXTUAL_IMAGE, da1, kitty)
    assert field(after, "CHOICE") == field(reference, "CHOICE")


def test_a_textual_image_without_the_known_helpers_is_probed_by_its_own_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A textual-image whose terminal helpers are not the ones the probe knows (another
    version): previews stay on, probed by textual-image's own import as before, and auto
    is its own ``Image``."""
    from sdlib.tui import graphics

    monkeypatch.setattr(graphics, "_helpers_known", lambda: False)
    monkeypatch.setattr(graphics, "detected", None)
    assert graphics.probe() is True
    assert graphics.detected is None
    module = graphics.widgets()
    assert module is not None
    assert graphics.auto_class(module) is module.Image
