"""sdlib's own section of ComfyUI's ``extra_model_paths.yaml``, as text.

There is no YAML library among sdlib's dependencies, and a round trip through one would lose
the user's comments anyway. The section is a clearly delimited block of plain text appended
to the file; everything else in the file is left byte for byte. Removing it cuts exactly the
lines between the markers. The caller parses the result back with the library's reader
(:mod:`sdlib.library.comfy_paths`) to check that ComfyUI will read what was meant.

Pure functions over text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sdlib.errors import ConfigError

__all__ = ["BEGIN", "END", "SECTION", "add_section", "has_section", "remove_section", "section"]

SECTION = "sdlib_store"
BEGIN = "# >>> sdlib store: added by `sdlib link`; `sdlib unlink` removes this block >>>"
END = "# <<< sdlib store <<<"
_INDENT = "    "


def section(store: str, keys: Mapping[str, Sequence[str]], newline: str = "\n") -> str:
    """The block: ``base_path`` is the store, each ComfyUI key lists store folders."""
    lines = [BEGIN, f"{SECTION}:", f"{_INDENT}base_path: {_quoted(store)}"]
    for key, folders in keys.items():
        if len(folders) == 1:
            lines.append(f"{_INDENT}{key}: {_quoted(folders[0])}")
        else:
            lines.append(f"{_INDENT}{key}: |")
            lines += [f"{_INDENT}{_INDENT}{f}" for f in folders]
    lines.append(END)
    return newline.join(lines) + newline


def _quoted(text: str) -> str:
    """A double-quoted scalar (a JSON string is a valid YAML double-quoted one)."""
    if any(c in text for c in "\r\n"):
        raise ConfigError(f"a folder name cannot hold a line break: {text!r}")
    return json.dumps(text, ensure_ascii=False)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def has_section(text: str) -> bool:
    """Whether ``text`` already has sdlib's block, or a section named like it."""
    return BEGIN in text or any(
        line.rstrip() == f"{SECTION}:" or line.startswith(f"{SECTION}:")
        for line in text.splitlines()
    )


def add_section(text: str, store: str, keys: Mapping[str, Sequence[str]]) -> str:
    """``text`` with sdlib's block appended after a blank line (the file's line endings)."""
    if has_section(text):
        raise ConfigError(f"extra_model_paths.yaml already has a {SECTION!r} section")
    newline = _newline(text)
    block = section(store, keys, newline)
    if not text:
        return block
    sep = "" if text.endswith(("\n", "\r")) else newline
    return text + sep + newline + block


def remove_section(text: str) -> str:
    """``text`` without sdlib's block (and the blank line ``add_section`` put before it).

    The user's lines are kept as they are; text without the block comes back unchanged.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip("\r\n") == BEGIN), None)
    if start is None:
        return text
    end = next((i for i in range(start + 1, len(lines)) if lines[i].rstrip("\r\n") == END), None)
    if end is None:
        raise ConfigError("sdlib's block in extra_model_paths.yaml has lost its end marker")
    del lines[start : end + 1]
    if start > 0 and not lines[start - 1].strip():
        del lines[start - 1]
    return "".join(lines)
