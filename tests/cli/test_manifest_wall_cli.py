"""`sdlib install -f`: a manifest folder that would leave the target root is refused with a
one-line usage error (exit 2) before anything is downloaded or written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


def _manifest(tmp_path: Path, folder: str) -> Path:
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        f'[target]\nui = "a1111"\nroot = "webui"\n\n[[model]]\nref = "4384@128713"\n'
        f"folder = '{folder}'\n",
        encoding="utf-8",
    )
    return manifest


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("folder", ["../../elsewhere", "../elsewhere", "/tmp/x", "C:\\x"])
def test_folder_outside_the_root_is_refused(run_cli: Any, tmp_path: Path, folder: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    manifest = _manifest(tmp_path, folder)
    out = run_cli("install", "-f", str(manifest))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert "models.toml:7" in out.stderr and "folder" in out.stderr
    assert _files(tmp_path / "elsewhere") == []
    assert not (tmp_path / "models.lock").exists()


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_folder_through_a_link_out_of_the_root_is_refused(run_cli: Any, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "webui").mkdir()
    (tmp_path / "webui" / "ext").symlink_to(outside, target_is_directory=True)
    manifest = _manifest(tmp_path, "ext/models")
    out = run_cli("install", "-f", str(manifest))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "outside the target root" in out.stderr
    assert _files(outside) == []
    assert not (tmp_path / "models.lock").exists()
