"""Counts of one are said in the singular by the commands (issue 16, "wording": the TUI had
been fixed, the CLI still said "from 1 example images", "1 files (1 models", "1 steps",
"1 requests", "StableDiffusion: 1 files").

The expected counts are facts of the demo catalogue (``sdlib.demo.catalogue``) and of the
folders built here, not sdlib's output.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sdlib.demo.catalogue import CATALOGUE
from sdlib.demo.server import DemoServer
from tests.support import trees

pytestmark = pytest.mark.slow  # subprocesses: every test runs python -m sdlib


def _examples_with_meta(version_id: int) -> int:
    for model in CATALOGUE:
        for version in model.versions:
            if version.id == version_id:
                return sum(1 for image in version.images if image.meta)
    raise AssertionError(f"no version {version_id} in the demo catalogue")


@pytest.mark.parametrize("ref, version_id", [("7808", 9536), ("4384@128713", 128713)])
def test_show_counts_example_images(run_cli: Any, ref: str, version_id: int) -> None:
    n = _examples_with_meta(version_id)
    out = run_cli("show", ref)
    assert out.returncode == 0, out.stderr
    said = re.search(r"\(from (\d+) (example images?)\)", out.stdout)
    assert said is not None, out.stdout
    assert int(said.group(1)) == n
    assert said.group(2) == ("example image" if n == 1 else "example images")


def test_scan_identify_and_organize_say_one_in_the_singular(
    run_cli: Any, civitai: DemoServer, tmp_path: Path
) -> None:
    assert _examples_with_meta(9536) == 1  # the case above is the singular one
    root = trees.a1111(tmp_path / "webui")
    served = civitai.files[95361].path  # easynegative.safetensors (an embedding)
    assert served is not None
    # One model, no sidecar, in the LoRA folder: one step moves it to embeddings/.
    lora = root / "models" / "Lora"
    lora.mkdir(parents=True, exist_ok=True)
    (root / "embeddings").mkdir(exist_ok=True)  # so the plan is the move alone
    shutil.copyfile(served, lora / "easynegative.safetensors")
    scan = run_cli("scan", str(root))
    assert scan.returncode == 0, scan.stderr
    assert re.search(r"^1 file \(1 model, [\d.]+ KiB; 0 sidecars\) in ", scan.stdout, re.M), (
        scan.stdout
    )
    plan = run_cli("organize", str(root))
    assert plan.returncode == 0, plan.stderr
    assert "1 step. Run with --apply" in plan.stdout, plan.stdout
    ident = run_cli("identify", str(root), "--no-preview")
    assert ident.returncode == 0, ident.stderr
    (summary,) = [line for line in ident.stdout.splitlines() if " identified, " in line]
    assert not re.search(r"\b1 (errors|requests|sidecars)\b", summary), summary
    assert re.search(r"\b0 errors\b", summary), summary  # zero stays plural


def test_show_prints_a_hub_files_sha256_uppercase(run_cli: Any, civitai: DemoServer) -> None:
    """Every SHA256 sdlib prints is uppercase (issue 16), a Hub file's too (its LFS sha256
    is lowercase); ``--json`` keeps the Hub's value. Expected: hashlib over the served file."""
    repo, name = "stable-diffusion-v1-5/stable-diffusion-v1-5", "v1-5-pruned-emaonly.safetensors"
    data = httpx2.get(
        f"{civitai.hub_url}/{repo}/resolve/main/{name}", follow_redirects=True
    ).content
    digest = hashlib.sha256(data).hexdigest()
    out = run_cli("show", f"hf:{repo}", env={"HF_ENDPOINT": civitai.hub_url})
    assert out.returncode == 0, out.stderr
    assert f"SHA256 {digest.upper()}" in out.stdout and digest not in out.stdout
