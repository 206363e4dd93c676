"""How the CLI renders download progress: binary units everywhere, a resume said as such,
and through a pipe plain lines that are paced (no bar, no line per event)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from sdlib.cli._progress import DownloadDisplay, progress_line, started_line
from sdlib.download import Finished, Progress, Started, Verifying

MIB = 1 << 20


def _render(terminal: bool) -> str:
    out = io.StringIO()
    err = Console(file=out, force_terminal=terminal, width=120, color_system=None)
    with DownloadDisplay(err) as display:
        display.event(Started("model.safetensors", total=48 * MIB, resumed_from=3_879_731,
                              connections=1))  # fmt: skip
        for done in range(4 * MIB, 48 * MIB, 4 * MIB):  # far quicker than 0.5 s apart
            display.event(Progress("model.safetensors", done=done, total=48 * MIB))
        display.event(Progress("model.safetensors", done=48 * MIB, total=48 * MIB))
        display.event(Verifying("model.safetensors"))
        display.event(Finished("model.safetensors", path="/m/model.safetensors", size=48 * MIB))
    return out.getvalue()


def test_a_resume_is_said_in_mib() -> None:
    assert started_line("a.safetensors", 3_879_731, 48 * MIB) == (
        "a.safetensors: resumed at 3.7 MiB of 48.0 MiB"
    )
    assert started_line("a.safetensors", 0, 48 * MIB) is None
    assert progress_line("a.safetensors", 12 * MIB, 48 * MIB, 2.5 * MIB) == (
        "a.safetensors: 12.0 MiB of 48.0 MiB (25%), 2.5 MiB/s"
    )


def test_through_a_pipe_progress_is_paced_plain_lines() -> None:
    text = _render(terminal=False)
    lines = text.splitlines()
    assert lines[0] == "model.safetensors: resumed at 3.7 MiB of 48.0 MiB"
    # Eleven events within a blink: only the last byte is worth a line.
    progress = [line for line in lines if "%" in line]
    assert len(progress) == 1 and progress[0].startswith(
        "model.safetensors: 48.0 MiB of 48.0 MiB (100%)"
    )
    assert lines[-1] == "model.safetensors: verifying"
    assert "\x1b" not in text and "━" not in text  # no bar, no cursor moves


def test_on_a_terminal_sizes_and_speeds_are_binary() -> None:
    text = _render(terminal=True)
    assert "resumed at 3.7 MiB of 48.0 MiB" in text
    assert "48.0/48.0 MiB" in text
    assert not re.search(r"\d (?:k|M|G)B\b", text), text  # never decimal MB beside MiB
