"""A traceback is never the user interface: an unexpected error is one line plus a crash
report under the cache dir (exit 1), Ctrl-C is 130, and a crashed TUI exits non-zero."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support import trees

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

#: Run the real entry point with one function replaced, as a bug would behave.
_SCRIPT = """
import sys
import sdlib.cli.inspect_cmd as cmd

def broken(*args, **kwargs):
    raise {error}

cmd._print = broken
from sdlib.cli import main
main(sys.argv[1:])
"""


def _run(tmp_path: Path, error: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SDLIB_CACHE_DIR": str(tmp_path / "cache"),
           "SDLIB_DATA_DIR": str(tmp_path / "data"), "SDLIB_CONFIG": str(tmp_path / "none.toml"),
           "PYTHONIOENCODING": "utf-8"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(error=error), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_an_unexpected_error_is_one_line_and_a_crash_report(tmp_path: Path) -> None:
    model = trees.st(tmp_path / "m.safetensors", "embedding_sd15")
    out = _run(tmp_path, 'ValueError("boom\\nsecond line")', "inspect", str(model))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    m = re.fullmatch(r"sdlib: internal error: ValueError: boom second line \(report: (.+)\)", line)
    assert m is not None, line
    report = Path(m.group(1))
    assert report.parent == tmp_path / "cache" / "crash-reports"
    text = report.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text
    assert "sdlib " in text and f"python {sys.version.split()[0]}" in text
    assert "'inspect'" in text and str(model) in text  # argv


def test_ctrl_c_is_130_without_a_traceback(tmp_path: Path) -> None:
    model = trees.st(tmp_path / "m.safetensors", "embedding_sd15")
    out = _run(tmp_path, "KeyboardInterrupt()", "inspect", str(model))
    assert out.returncode == 130
    assert out.stderr.strip() == "sdlib: error: interrupted"
    assert not (tmp_path / "cache" / "crash-reports").exists()


def test_a_report_that_cannot_be_written_still_gives_one_line(tmp_path: Path) -> None:
    model = trees.st(tmp_path / "m.safetensors", "embedding_sd15")
    (tmp_path / "cache").write_text("a file where the cache dir should be")
    out = _run(tmp_path, 'RuntimeError("boom")', "inspect", str(model))
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("sdlib: internal error: RuntimeError: boom (no report written")


def test_a_crashed_tui_exits_non_zero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Textual shows the error and sets return_code 1; the command must not exit 0."""
    import sdlib.tui.app

    class CrashedApp:
        return_code = 1
        theme = ""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def run(self) -> None:
            pass  # what App.run does after an unhandled exception: return, code 1

    monkeypatch.setattr(sdlib.tui.app, "SdlibApp", CrashedApp)
    monkeypatch.setenv("SDLIB_CONFIG", str(tmp_path / "none.toml"))
    from sdlib.cli.tui_cmd import tui_cmd

    result = CliRunner().invoke(tui_cmd, ["--previews", "off", "--root", str(tmp_path)])
    assert result.exit_code == 1, result.output
