"""``terminal_safe``: what a terminal would obey is taken out; ordinary text is untouched.
File names sdlib creates hold no C1 controls or bidi overrides either."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdlib.formatting import terminal_safe
from sdlib.names import safe_filename

#: Characters that must never survive (ECMA-48 C0 but TAB/LF, DEL, C1; Unicode bidi
#: embeddings, overrides and isolates), written out by hand.
FORBIDDEN = (
    {chr(c) for c in range(0x00, 0x20)} - {"\t", "\n"}
) | {chr(0x7F)} | {chr(c) for c in range(0x80, 0xA0)} | {
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
}  # fmt: skip

CASES = [
    ("title\x1b]0;pwned\x07 set", "title set"),  # OSC 0 ended by BEL
    ("title\x1b]2;pwned\x1b\\ set", "title set"),  # ended by ST
    ("a\x1b]8;;https://evil/\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink
    ("clear\x1b[2J\x1b[H!", "clear!"),
    ("\x1b[1;31mred\x1b[0m", "red"),
    ("8-bit \x9b31mCSI", "8-bit CSI"),
    ("8-bit \x9d0;t\x9cOSC", "8-bit OSC"),
    ("dcs\x1bPq#0\x1b\\done", "dcsdone"),
    ("reset\x1bc", "reset"),
    ("cr\rover", "crover"),
    ("bell\x07 bs\x08 del\x7f", "bell bs del"),
    ("exe\u202egpj.safetensors", "exegpj.safetensors"),
    ("iso\u2066late\u2069d", "isolated"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("画风 ñ (v2) — ok", "画风 ñ (v2) — ok"),
    ("unterminated \x1b]0;title\nnext line", "unterminated \nnext line"),
]


@pytest.mark.parametrize(("raw", "shown"), CASES)
def test_sequences_and_controls_are_removed(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_newlines_can_become_spaces() -> None:
    assert terminal_safe("one\r\ntwo\nthree", newlines=False) == "one two three"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_nothing_forbidden_survives_and_it_is_idempotent(text: str) -> None:
    out = terminal_safe(text)
    assert not FORBIDDEN & set(out)
    assert terminal_safe(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_printable_ascii_is_untouched(text: str) -> None:
    assert terminal_safe(text) == text


@pytest.mark.parametrize("name", ["evil\u202egpj.safetensors", "a\x9b31mb.pt", "x\u2066y.ckpt"])
def test_file_names_hold_no_c1_or_bidi_controls(name: str) -> None:
    safe = safe_filename(name)
    assert not FORBIDDEN & set(safe)
    assert safe.endswith(name.rsplit(".", 1)[1])
