"""Per-file progress of scan/identify when stderr is not a terminal: nothing on stdout, and on
stderr at most one plain line per period (a live bar would fill a log with redraws)."""

from __future__ import annotations

import pytest

from sdlib.cli._library import Progress


def test_piped_progress_is_a_periodic_stderr_line(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(every=0) as progress:
        assert not progress.live  # pytest captures stderr: not a terminal
        progress.update("identify", 3, 40, "/models/Lora/add_detail.safetensors")
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "sdlib: identify: 3 of 40 (add_detail.safetensors)\n"
    with Progress(every=3600) as progress:
        for done in range(1, 200):
            progress.update("hash", done, 200, "x.safetensors")
    assert capsys.readouterr() == ("", "")  # nothing before a period has passed
