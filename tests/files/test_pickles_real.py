"""The real corpus (../shared/corpus/real): judged as MANIFEST.tsv says, read without unpickling.

Only raw bytes are read here (our scanner, ``zipfile`` for reference bytes). Nothing in the
corpus is ever unpickled or handed to torch.
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sdlib.errors import FormatError, UnsafeFileError
from sdlib.files.pickles import open_pickle, read_table, scan_file
from sdlib.taxonomy import Container, Verdict
from sdlib.transform.convert import convert_file
from tests.support.paths import CORPUS

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"real corpus not found at {CORPUS}")


def _manifest() -> dict[str, dict[str, str]]:
    if not CORPUS.is_dir():
        return {}
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


MANIFEST = _manifest()
MALICIOUS_DIR = [f for f in MANIFEST if f.startswith("malicious/")]
A1111_TI = [
    f
    for f, row in MANIFEST.items()
    if row["kind_expected"] == "embedding" and "A1111 TI dict" in row["notes"]
]


@pytest.mark.parametrize("name", MALICIOUS_DIR)
def test_malicious_folder_is_judged_as_the_manifest_says(name: str, tmp_path: Path) -> None:
    kind = MANIFEST[name]["kind_expected"]
    path = CORPUS / name
    try:
        scan = scan_file(path)
    except FormatError:
        assert kind != "benign-pickle", "a benign pickle control was refused"
        return
    if kind == "malicious-pickle":
        assert scan.verdict is Verdict.UNSAFE, scan.findings
        with pytest.raises(UnsafeFileError):
            convert_file(path, tmp_path / "out.safetensors")
        assert list(tmp_path.iterdir()) == []
    else:
        assert kind == "benign-pickle", kind
        assert scan.verdict is not Verdict.UNSAFE, scan.findings


def test_every_malicious_pickle_in_the_corpus_is_covered() -> None:
    hostile = [f for f in MALICIOUS_DIR if MANIFEST[f]["kind_expected"] == "malicious-pickle"]
    assert len(hostile) >= 90


@pytest.mark.parametrize("name", A1111_TI)
def test_a1111_embeddings_table(name: str) -> None:
    table = read_table(CORPUS / name)
    params = [t for t in table if t.name.startswith("string_to_param.")]
    assert len(params) == 1, list(table.tensors)
    shape = params[0].shape
    assert len(shape) == 2 and shape[1] in (768, 1024) and params[0].dtype == "F32"
    assert "name" in table.metadata


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("embeddings/bad-image-v2-39000.pt", {"string_to_param.*": (4, 768)}),
        ("embeddings/EasyNegative.pt", {"emb_params": (8, 768)}),
        ("embeddings/zPDXL.pt", {"clip_g": (17, 1280), "clip_l": (17, 768)}),
        ("embeddings/learned_embeds.bin", {"<birb-style>": (768,)}),
        ("models/laion_7plus.pt", {"tensor": (768,)}),
        ("models/ViT-L-14_stats.th", {"0": (768,), "1": (768,)}),
    ],
)
def test_other_real_layouts(name: str, expected: dict[str, tuple[int, ...]]) -> None:
    table = read_table(CORPUS / name)
    for key, shape in expected.items():
        assert table.get(key) is not None and table.get(key).shape == shape  # type: ignore[union-attr]


def test_real_models_are_safe_and_readable() -> None:
    for name, row in MANIFEST.items():
        if name.startswith("models/") and "pickle-zip" in row["notes"]:
            loaded = open_pickle(CORPUS / name)
            assert loaded.scan.verdict is Verdict.SAFE, (name, loaded.scan.findings)
            assert loaded.scan.container is Container.PICKLE_ZIP


def test_cloneofsimo_parameter_list() -> None:
    table = read_table(CORPUS / "models/lora_kiriko2.text_encoder.pt")
    assert len(table) == 96 and table.get("0").shape == (768, 4)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name", ["embeddings/bad-artist.pt", "embeddings/bad-image-v2-39000.pt", "embeddings/nfixer.pt"]
)
def test_real_embedding_converts_to_emb_params(name: str, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    src = tmp_path / Path(name).name
    shutil.copy(CORPUS / name, src)
    info = next(t for t in read_table(src) if "string_to_param" in t.name)
    result = convert_file(src)
    out = load_file(str(result.output))
    assert list(out) == ["emb_params"]
    raw = zipfile.ZipFile(src).read(info.storage_key or "")
    expected = np.frombuffer(raw, "<f4")[info.storage_offset :][: info.numel]
    np.testing.assert_array_equal(out["emb_params"].reshape(-1), expected)


def test_deflated_storages_convert_exactly(tmp_path: Path) -> None:
    """realesr-animevideov3.pth stores its storages deflated (an early torch zip writer)."""
    from safetensors.numpy import load_file

    src = tmp_path / "realesr.pth"
    shutil.copy(CORPUS / "models/realesr-animevideov3.pth", src)
    table = read_table(src)
    out = load_file(str(convert_file(src).output))
    archive = zipfile.ZipFile(src)
    for info in table:
        raw = np.frombuffer(archive.read(info.storage_key or ""), "<f4")
        start = info.storage_offset
        np.testing.assert_array_equal(out[info.name].reshape(-1), raw[start : start + info.numel])


def test_legacy_benign_control_converts(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    src = tmp_path / "pytorch_model.bin"
    shutil.copy(CORPUS / "malicious/picklescan/pytorch_model.bin", src)
    result = convert_file(src, dtype="fp16")
    out = load_file(str(result.output))
    assert len(out) == len(read_table(src)) and all(v.dtype == np.float16 for v in out.values())
