"""Short human strings for sizes, counts, rates, durations and progress bars (pure).

Shared by the CLI and the TUI so both print the same numbers the same way. Also the one
function that makes text from a server or a file name safe to show in a terminal
(:func:`terminal_safe`).
"""

from __future__ import annotations

import re

#: Escape sequences a terminal would act on: CSI (7- and 8-bit), the string commands OSC,
#: DCS, SOS, PM and APC up to their terminator (BEL or ST, 7- or 8-bit; else the end of
#: the line), and the other two- and three-byte ESC commands (ESC c resets, ESC ( B, ESC 7...).
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|(?=\n)|\Z)"
    r"|\x1b[ -/]*[0-~]",
    re.DOTALL,
)
#: What is left after the sequences: C0 controls but tab and newline, DEL, C1 controls, and
#: the bidi embeddings, overrides and isolates that make text display in another order.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str, *, newlines: bool = True) -> str:
    """``text`` with everything a terminal would obey instead of print taken out.

    Removes escape sequences whole (an OSC title-set, ``ESC[2J``, 8-bit CSI ``0x9b``...),
    then any remaining C0/C1 control character and bidi override or isolate. Tabs stay;
    newlines stay unless ``newlines`` is False (then each becomes a space). Pure, and a
    no-op on ordinary text. Apply it where text reaches a terminal, never to data (``--json``
    keeps names exact).
    """
    if text.isprintable() and text.isascii():
        return text
    text = _SEQUENCES.sub("", text)
    if not newlines:
        text = text.replace("\r\n", " ").replace("\n", " ")
    return _CONTROLS.sub("", text)


def human_size(n: int | float | None) -> str:
    """``2.0 MiB``; ``?`` when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - loop always returns


def count(n: int | None) -> str:
    """``1.3M``, ``48k``, ``9000``; ``-`` when unknown (as ``sdlib search`` prints them)."""
    if n is None:
        return "-"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return str(n)


def rate(bytes_per_second: float | None) -> str:
    if not bytes_per_second:
        return ""
    return human_size(bytes_per_second) + "/s"


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``1h02m``; empty when unknown."""
    if seconds is None or seconds < 0 or seconds != seconds:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files`` (``many``: ``copies``, where not just +s)."""
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def bar(done: int, total: int | None, width: int = 12) -> str:
    """A text progress bar with a percentage: ``██████░░░░░░  50%``."""
    if not total:
        return "░" * width + "    ?"
    fraction = max(0.0, min(1.0, done / total))
    full = int(fraction * width)
    return "█" * full + "░" * (width - full) + f" {fraction * 100:3.0f}%"


def date(iso: str | None) -> str:
    """The date part of an ISO timestamp."""
    return (iso or "")[:10]


def ellipsize(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells with an ellipsis (CJK characters take two)."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return set_cell_size(text, max(width, 0))
    return set_cell_size(text, width - 1).rstrip() + "…"


def tilde(path: object) -> str:
    """``path`` with the home folder shown as ``~`` (shorter, and the same on every machine)."""
    import os

    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    home = os.path.expanduser("~")
    if home not in ("", "/") and (text == home or text.startswith(home.rstrip(os.sep) + os.sep)):
        return "~" + text[len(home.rstrip(os.sep)) :]
    return text
