"""`sdlib inspect` from the real command line, on synthetic files and the real corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sdlib.demo.specs import CONTAINERS, EXPECTED, flux_transformer, spec_with_metadata
from sdlib.demo.writers import quantize_specs, write_gguf, write_safetensors
from sdlib.inspect import inspect_file
from tests.support.cli import run_sdlib
from tests.support.paths import CORPUS

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

SAFETENSORS_FIXTURES = sorted(n for n in EXPECTED if n not in CONTAINERS)
KEYS = {"path", "size", "container", "kind", "base", "variant", "precision", "quantization",
        "weights", "components", "tensors", "parameters", "metadata", "evidence"}  # fmt: skip


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    for name in SAFETENSORS_FIXTURES:
        spec, metadata = spec_with_metadata(name)
        write_safetensors(folder / f"{name}.safetensors", spec, metadata, sparse=True)
    return folder


def test_json_for_every_synthetic_fixture(fixture_dir: Path) -> None:
    paths = [str(fixture_dir / f"{n}.safetensors") for n in SAFETENSORS_FIXTURES]
    proc = run_sdlib("inspect", "--json", *paths)
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert len(reports) == len(paths)
    for name, report in zip(SAFETENSORS_FIXTURES, reports, strict=True):
        assert set(report) >= KEYS, name
        for key in ("kind", "base", "variant", "weights"):
            if key in EXPECTED[name]:
                assert report[key] == EXPECTED[name][key], (name, key)
        assert report["container"] == "safetensors"


def test_explain_prints_the_evidence(fixture_dir: Path) -> None:
    proc = run_sdlib("inspect", "--explain", str(fixture_dir / "sd15_inpaint.safetensors"))
    assert proc.returncode == 0
    assert "inpaint" in proc.stdout and "evidence:" in proc.stdout
    assert "9 input channels" in proc.stdout


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_a_big_checkpoint_is_judged_from_well_under_a_mebibyte(fixture_dir: Path) -> None:
    path = fixture_dir / "sdxl_base.safetensors"
    assert path.stat().st_size > 6 << 30

    def rchar() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar")

    before = rchar()
    report = inspect_file(path)
    read = rchar() - before
    assert report.classification is not None and report.classification.base.value == "sdxl"
    assert read < 1 << 20


def test_missing_and_non_model_files(tmp_path: Path) -> None:
    page = tmp_path / "model.safetensors"
    page.write_text("<!DOCTYPE html><html><body>Not found</body></html>")
    proc = run_sdlib("inspect", str(page), str(tmp_path / "missing.ckpt"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    assert "HTML" in lines[0] and "no such file" in lines[1]


def test_gguf_flux_from_the_command_line(tmp_path: Path) -> None:
    specs = quantize_specs(flux_transformer("", "BF16"), "Q8_0")
    md = {"general.architecture": "flux", "general.file_type": 7}
    path = write_gguf(tmp_path / "flux1-dev-Q8_0.gguf", specs, md)
    proc = run_sdlib("inspect", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    assert set(report) >= KEYS
    assert (report["container"], report["kind"], report["base"], report["variant"]) == (
        "gguf", "unet", "flux", "dev",
    )  # fmt: skip
    assert (report["precision"], report["quantization"]) == (None, "Q8_0")
    proc = run_sdlib("inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "gguf" in proc.stdout and re.search(r"quantization\s+Q8_0", proc.stdout)


def test_real_embedding_from_the_corpus() -> None:
    path = CORPUS / "embeddings" / "EasyNegative.safetensors"
    if not path.exists():
        pytest.skip("../shared/corpus/real is not present on this machine")
    proc = run_sdlib("inspect", "--json", str(path))
    [report] = json.loads(proc.stdout)
    assert (report["kind"], report["base"], report["vectors"]) == ("embedding", "sd1", 8)


def test_unsafe_pickle_makes_exit_code_3() -> None:
    path = CORPUS / "malicious" / "picklescan" / "malicious1_v4.pkl"
    if not path.exists():
        pytest.skip("../shared/corpus/real is not present on this machine")
    proc = run_sdlib("inspect", "--json", str(path))
    assert proc.returncode == 3
    [report] = json.loads(proc.stdout)
    assert report["safety"]["verdict"] == "unsafe"
    assert any(f["global"] == "builtins.eval" for f in report["safety"]["findings"])
