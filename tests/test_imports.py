"""Start-up stays light: importing sdlib or asking for --help loads neither torch nor textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys, runpy
import sdlib, sdlib.cli
from click.testing import CliRunner
from sdlib.cli import main
result = CliRunner().invoke(main, {args!r})
assert result.exit_code == 0, result.output
heavy = [m for m in ("torch", "textual", "numpy", "sqlite3") if m in sys.modules]
print(",".join(heavy))
"""


def _heavy(args: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(args=args)], capture_output=True, text=True, check=True
    )
    return [m for m in proc.stdout.strip().split(",") if m]


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_help_loads_no_heavy_module() -> None:
    assert _heavy(["--help"]) == []


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_subcommand_help_loads_no_heavy_module() -> None:
    from sdlib.cli import _COMMANDS, _available

    for command in (name for name in _COMMANDS if _available(name)):
        heavy = _heavy([command, "--help"])
        assert "torch" not in heavy and "textual" not in heavy, (command, heavy)


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_files_package_imports_no_io_library() -> None:
    code = (
        "import sys, sdlib.files.safetensors, sdlib.files.sniff, sdlib.taxonomy;"
        "print([m for m in ('httpx2','sqlite3','textual','rich','torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
