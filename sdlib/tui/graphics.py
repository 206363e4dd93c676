"""What the terminal can draw: asked before Textual starts, textual-image loaded after.

textual-image decides when it is imported: its renderables ask the terminal for Sixel, then
Kitty graphics (the Terminal Graphics Protocol), and its widgets for the cell size in
pixels; that must happen before Textual reads the terminal, and the import takes Pillow and
numpy with it (~0.3 s of CPU, which held up `sdlib tui --previews auto`'s first frame).
``probe`` asks the same questions the same way (textual-image's own terminal helpers, same
sequences and order, same cached cell size) without those imports; ``widgets`` imports
textual-image when the first preview is wanted (in the worker that fetches or decodes it,
never in the UI thread) with its own questions answered "not a terminal", so it never
talks to the terminal Textual now owns; ``auto`` is drawn with the class textual-image
would have picked from the answers.
"""

from __future__ import annotations

import sys
import threading
from random import randint
from types import ModuleType
from typing import Any, TextIO

#: What ``probe`` found: "sixel", "kitty", "halfcell" (a terminal without graphics) or
#: "unicode" (no terminal); None when it has not run (textual-image then asks for itself).
detected: str | None = None

_lock = threading.Lock()
_installed: bool | None = None


def probe() -> bool:
    """Ask the terminal what it draws (call before Textual starts). False when textual-image
    is not installed or the terminal could not be asked (no previews then)."""
    global detected
    if not _helpers_known():
        return _import_now()
    from textual_image._terminal import get_cell_size

    out = sys.__stdout__
    if out is None or not out.isatty():
        detected = "unicode"
        return True
    try:
        found = "sixel" if _sixel(out) else "kitty" if _kitty(out) else "halfcell"
        get_cell_size()  # kept by textual-image for its widgets
    except Exception:  # what made textual-image's import fail made the old probe fail
        return False
    detected = found
    return True


def _helpers_known() -> bool:
    """Has textual-image the terminal helpers ``probe`` asks with (as 0.12 has them)?"""
    try:
        from textual_image._terminal import (  # noqa: F401
            TerminalError,
            capture_terminal_response,
            get_cell_size,
        )
    except ImportError:
        return False
    return True


def _import_now() -> bool:
    """The probe as textual-image itself runs it, by importing it now (a version whose
    terminal helpers are not the ones ``probe`` knows): ``auto`` is then its own choice."""
    try:
        import textual_image.renderable
        import textual_image.widget  # noqa: F401
    except ImportError:
        return False
    return True


def _sixel(out: TextIO) -> bool:
    """textual-image's Sixel question: does the terminal list attribute 4 (DA1)?"""
    from textual_image._terminal import TerminalError, capture_terminal_response

    try:
        with capture_terminal_response("\x1b[?", "c", timeout=0.1) as response:
            out.write("\x1b[c")
            out.flush()
    except (TerminalError, TimeoutError):
        return False
    return "4" in response.sequence[len("\x1b[?") : -len("c")].split(";")


def _kitty(out: TextIO) -> bool:
    """textual-image's Kitty graphics question: a query for a 1x1 image, answered OK?"""
    from textual_image._terminal import TerminalError, capture_terminal_response

    try:
        with capture_terminal_response("\x1b_G", "\x1b\\", timeout=0.1) as response:
            out.write(f"\x1b_Gi={randint(1, 2**32)},s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\")
            out.flush()
    except (TerminalError, TimeoutError):
        return False
    _, _, status = response.sequence[len("\x1b_G") : -len("\x1b\\")].rpartition(";")
    return bool(status == "OK")


class _NotATerminal:
    """stdout as textual-image's import sees it after ``probe``: writes go through, but it
    is no terminal, so the import asks nothing (the answers are in ``detected``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def widgets() -> ModuleType | None:
    """``textual_image.widget``, imported once; None when textual-image is not installed."""
    with _lock:
        loaded = sys.modules.get("textual_image.widget")
        if loaded is not None:
            return loaded
        real = sys.__stdout__
        if detected is not None and real is not None:
            setattr(sys, "__stdout__", _NotATerminal(real))  # noqa: B010 (a Final name)
        try:
            from textual_image import widget
        except ImportError:
            return None
        finally:
            setattr(sys, "__stdout__", real)  # noqa: B010
        return widget


def available(protocol: str) -> bool:
    """Can previews be drawn with ``protocol``? Without importing textual-image (the main
    thread asks; workers import it, see ``widgets``)."""
    global _installed
    if protocol == "off":
        return False
    if _installed is None:
        from importlib.util import find_spec

        _installed = "textual_image.widget" in sys.modules or find_spec("textual_image") is not None
    return _installed


def load_in_background() -> None:
    """Start importing textual-image in a thread (a preview is about to need it)."""
    if "textual_image.widget" not in sys.modules:
        threading.Thread(target=widgets, name="sdlib-graphics-import", daemon=True).start()


def auto_class(module: ModuleType) -> Any:
    """The widget class textual-image picks for this terminal: Sixel before Kitty before
    half blocks, characters when not a terminal."""
    by_answer = {
        "sixel": module.SixelImage,
        "kitty": module.TGPImage,
        "halfcell": module.HalfcellImage,
        "unicode": module.UnicodeImage,
    }
    return by_answer.get(detected or "", module.Image)
