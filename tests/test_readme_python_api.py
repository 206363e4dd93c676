"""The README's Python API example runs as written against the demo server and prints
exactly what the README shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sdlib.demo.server import DemoServer

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> tuple[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert code is not None and shown is not None, "the README's Python API section changed"
    return code.group(1), shown.group(1)


@pytest.mark.slow
def test_readme_python_api_example_runs_as_written(civitai: DemoServer, tmp_path: Path) -> None:
    code, shown = _blocks()
    env = {
        **os.environ,
        "SDLIB_CIVITAI_URL": civitai.url,
        "SDLIB_CONFIG": str(tmp_path / "no-config.toml"),
        "SDLIB_CACHE_DIR": str(tmp_path / "cache"),
        "SDLIB_DATA_DIR": str(tmp_path / "data"),
    }
    work = tmp_path / "empty"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown
    assert (work / "my-webui" / "models" / "Lora" / "add_detail.safetensors").is_file()
