"""The README's Hugging Face Python example runs as written against the demo Hub and prints
what its comments say, with the published sha256 of the served bytes (issue 17: the Python
API is documented with real output)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdlib
from sdlib.config import Settings
from sdlib.demo.server import DemoServer

README = Path(__file__).resolve().parent.parent / "README.md"


def _hub_example() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Hugging Face\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the README's Hugging Face section has no Python example"
    return code.group(1)


@pytest.mark.slow
def test_readme_hub_python_example_runs_as_written(civitai: DemoServer, tmp_path: Path) -> None:
    code = _hub_example()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update({
        "HF_ENDPOINT": civitai.hub_url,
        "SDLIB_CIVITAI_URL": civitai.url,
        "SDLIB_CONFIG": str(tmp_path / "no-config.toml"),
        "SDLIB_CACHE_DIR": str(tmp_path / "cache"),
        "SDLIB_DATA_DIR": str(tmp_path / "data"),
    })  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    # The comment beside the first print is what it prints.
    assert first == re.search(r"print\(model\.id, model\.downloads\)\s+# (.*)", code)[1]  # type: ignore[index]
    [last] = rest
    url, size, sha256, commit = last.split()
    served = civitai.hub.files[("stabilityai/sdxl-vae", "sdxl_vae.safetensors")].read()
    assert (int(size), sha256) == (len(served), hashlib.sha256(served).hexdigest())
    assert url == f"{civitai.hub_url}/stabilityai/sdxl-vae/resolve/{commit}/sdxl_vae.safetensors"


def test_show_of_a_hub_reference_names_the_hub_function(
    civitai: DemoServer, civitai_settings: Settings
) -> None:
    """sdlib.show is Civitai's; given an hf: reference it said 'AIR source 'hf' is not
    Civitai', as if the reference were malformed."""
    with sdlib.Context(civitai_settings) as ctx, pytest.raises(sdlib.SdlibError) as caught:
        sdlib.show(ctx, "hf:stabilityai/sdxl-vae")
    assert caught.value.exit_code == 2
    assert "hub_show" in str(caught.value) and "AIR" not in str(caught.value)
