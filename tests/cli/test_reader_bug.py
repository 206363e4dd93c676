"""A bug in sdlib's own readers on one file (an exception nobody foresaw, not a FormatError)
never stops a batch: ``scan`` records that file as ``unreadable`` with a one-line reason and
reports the others; ``inspect`` of several files gives it one line naming a crash report and
prints the rest (issue 13 item 3).

The bug is simulated by replacing ``sdlib.inspect.inspect_file`` in the real entry point so
that it raises for files named ``boom*``, as a reader's bug would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sdlib.demo.specs import EXPECTED
from tests.support import trees
from tests.support.cli import isolated_env

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

_SCRIPT = """
import sys
import sdlib.inspect

real = sdlib.inspect.inspect_file

def buggy(path, *args, **kwargs):
    if str(path).rsplit("/", 1)[-1].rsplit(chr(92), 1)[-1].startswith("boom"):
        raise IndexError("tuple index out of range")
    return real(path, *args, **kwargs)

sdlib.inspect.inspect_file = buggy
from sdlib.cli import main
main(sys.argv[1:])
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = isolated_env(tmp_path / "env", PYTHONIOENCODING="utf-8", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def _library(root: Path) -> tuple[Path, Path, Path]:
    trees.a1111(root)
    good = trees.st(root / "models" / "Lora" / "good.safetensors", "lora_sd15_kohya")
    boom = trees.st(root / "models" / "Lora" / "boom.safetensors", "lora_sd15_kohya",
                    {"ss_output_name": "boom"})  # fmt: skip
    emb = trees.st(root / "embeddings" / "emb.safetensors", "embedding_sd15")
    return good, boom, emb


def test_scan_records_the_file_as_unreadable_and_reports_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "webui"
    _library(root)
    out = _run(tmp_path, "scan", str(root), "--json")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    files = {f["rel"]: f for f in json.loads(out.stdout)["files"]}
    boom = files["models/Lora/boom.safetensors"]
    assert boom["status"] == ["unreadable"]
    [note] = boom["notes"]
    assert "IndexError" in note and "\n" not in note
    assert files["models/Lora/good.safetensors"]["status"] == ["ok"]
    assert files["models/Lora/good.safetensors"]["kind"] == EXPECTED["lora_sd15_kohya"]["kind"]
    assert files["embeddings/emb.safetensors"]["kind"] == EXPECTED["embedding_sd15"]["kind"]


def test_inspect_gives_the_file_one_line_and_a_report_and_prints_the_rest(
    tmp_path: Path,
) -> None:
    good, boom, emb = _library(tmp_path / "webui")
    out = _run(tmp_path, "inspect", str(good), str(boom), str(emb), "--json")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    m = re.fullmatch(r"sdlib: (.+): internal error: IndexError: .* \(report: (.+)\)", line)
    assert m is not None and m.group(1) == str(boom), line
    report = Path(m.group(2))
    assert "Traceback (most recent call last)" in report.read_text(encoding="utf-8")
    assert report.parent == tmp_path / "env" / "cache" / "crash-reports"
    reports = json.loads(out.stdout)
    assert [r.get("kind") for r in reports] == [
        EXPECTED["lora_sd15_kohya"]["kind"], None, EXPECTED["embedding_sd15"]["kind"],
    ]  # fmt: skip
    assert os.path.basename(reports[1]["path"]) == "boom.safetensors" and "error" in reports[1]
