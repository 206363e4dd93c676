"""``sdlib inspect`` and ``sdlib convert`` over every row of the real corpus's MANIFEST.tsv.

The expected kinds come from the manifest (written from the files' provenance, not from
sdlib): every ``malicious-pickle`` row must exit 3 from both commands, with the accepted
exceptions listed below with their reason; no other row may ever exit 3, and the benign
pickle controls must be judged (exit 0). Only raw bytes are read; nothing is unpickled.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from sdlib.cli.convert_cmd import convert_cmd
from sdlib.cli.inspect_cmd import inspect_cmd
from tests.support.paths import CORPUS

pytestmark = [
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"real corpus not found at {CORPUS}"),
    pytest.mark.slow,  # subprocess: the CLI over every corpus row
]

#: malicious-pickle rows that do not exit 3, and why that is right.
EXCEPTIONS = {
    "malicious/picklescan/malicious1.7z": (
        "7z archive",  # the one-line refusal
        "torch.load cannot open a 7z archive, so nothing in it runs; sdlib does not unpack it",
    ),
}


def _rows() -> list[dict[str, str]]:
    if not CORPUS.is_dir():
        return []
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _rows()
HOSTILE = [r["file"] for r in ROWS if r["kind_expected"] == "malicious-pickle"]
OTHERS = [r["file"] for r in ROWS if r["kind_expected"] != "malicious-pickle"]
BENIGN_PICKLES = [r["file"] for r in ROWS if r["kind_expected"] == "benign-pickle"]


@pytest.mark.parametrize("name", HOSTILE)
def test_every_malicious_pickle_exits_3(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    result = CliRunner().invoke(inspect_cmd, [str(path)])
    if name in EXCEPTIONS:
        assert result.exit_code == 1, result.output
        assert EXCEPTIONS[name][0] in result.output
        assert len(result.output.strip().splitlines()) == 1
        return
    assert result.exit_code == 3, result.output
    out = tmp_path / "out.safetensors"
    converted = CliRunner().invoke(convert_cmd, [str(path), "-o", str(out)])
    assert converted.exit_code == 3, converted.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", OTHERS)
def test_no_other_row_exits_3(name: str) -> None:
    result = CliRunner().invoke(inspect_cmd, [str(CORPUS / name)])
    assert result.exit_code in (0, 1), result.output
    if name in BENIGN_PICKLES:
        assert result.exit_code == 0, result.output


def test_the_corpus_and_its_exceptions_are_all_there() -> None:
    assert len(HOSTILE) >= 90 and len(BENIGN_PICKLES) >= 10
    assert set(EXCEPTIONS) <= set(HOSTILE)
