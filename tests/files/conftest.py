"""Fixtures shared by the file-format tests."""

from __future__ import annotations

import pytest

from sdlib.files import safetensors


@pytest.fixture(params=["native", "msgspec"])
def bulk_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each bulk header reader in front of the careful path: the compiled
    one (then msgspec for what it leaves), and msgspec alone (where no compiler was)."""
    if request.param == "msgspec":
        monkeypatch.setattr(safetensors, "_native", None)
    elif safetensors._native is None:
        pytest.skip("the compiled header reader is not built here (test_stheader.py says why)")
    return str(request.param)
