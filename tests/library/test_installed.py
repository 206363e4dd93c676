"""``record_download``: a file sdlib installed is in the index at once, classified, with its
identity and verification, and the next scan keeps all of it without opening the file."""

from __future__ import annotations

import json
from pathlib import Path

from sdlib.files import CLASSIFIER_VERSION
from sdlib.hashcache import HashCache
from sdlib.library.index import Index
from sdlib.library.installed import record_download
from sdlib.library.scan import load_layout, scan
from tests.support import trees


def test_recorded_download_is_classified_identified_and_kept_by_scan(tmp_path: Path) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora = trees.st(root / "models" / "Lora" / "add_detail.safetensors", "lora_sd15_kohya")
    sha = trees.sha256(lora).upper()
    info = {"id": 62833, "modelId": 58390, "name": "v1.0", "baseModel": "SD 1.5",
            "model": {"name": "Detail Tweaker LoRA", "type": "LORA"},
            "files": [{"id": 628331, "name": lora.name, "hashes": {"SHA256": sha}}]}  # fmt: skip
    lora.with_name("add_detail.civitai.info").write_text(json.dumps(info), "utf-8")
    crc = {"hash": "CRC32", "published": "DEADBEEF", "actual": "0A1B2C3D"}
    verification = {"status": "verified", "decided_by": "SHA256", "size_matches": True,
                    "disagreements": [crc], "checked": ["SHA256"]}  # fmt: skip
    with (
        Index(tmp_path / "data" / "library.sqlite") as index,
        HashCache(tmp_path / "cache" / "h.sqlite") as hc,
    ):
        row_id = record_download(index, lora, ref="58390", model_id=58390, version_id=62833,
                                 file_id=628331, sha256=sha.lower(),
                                 verification=verification)  # fmt: skip
        row = index.get(row_id)
        assert row is not None and row.classified_by == CLASSIFIER_VERSION
        assert (row.kind, row.base, row.container) == ("lora", "sd1", "safetensors")
        assert (row.civitai_model_name, row.civitai_version_name) == ("Detail Tweaker LoRA", "v1.0")
        assert row.sha256 == sha and row.matched_by == "download"
        result = scan(root, load_layout(root, "auto"), index, hc)
        assert result.inspected == 0  # classified at insert: the scan opens nothing
        (model,) = result.models
        assert model.id == row_id and model.row.civitai_version_id == 62833
        assert model.to_dict()["verification"]["disagreements"] == [crc]
        events = [e["event"] for e in index.history(row_id)]
        assert events[:2] == ["added", "downloaded"]
        again = record_download(index, lora, ref="58390", model_id=58390, version_id=62833,
                                file_id=628331, sha256=sha)  # fmt: skip
        assert again == row_id  # the same row, not a second one
        kept = index.get(row_id)
        assert kept is not None and kept.verification is not None  # already present: kept
        assert json.loads(kept.verification)["disagreements"] == [crc]


def test_a_file_with_no_civitai_identity_is_recorded_for_identify(tmp_path: Path) -> None:
    """A Hub download: content, SHA256 and verification, no identity (``identify`` looks
    it up by hash later), and the next scan opens nothing."""
    root = trees.a1111(tmp_path / "webui")
    vae = trees.st(root / "models" / "VAE" / "sdxl_vae.safetensors", "vae_sd")
    sha = trees.sha256(vae).upper()
    verification = {"status": "verified", "decided_by": "SHA256", "size_matches": True,
                    "disagreements": [], "checked": ["SHA256"]}  # fmt: skip
    with (
        Index(tmp_path / "data" / "library.sqlite") as index,
        HashCache(tmp_path / "cache" / "h.sqlite") as hc,
    ):
        ref = "hf:stabilityai/sdxl-vae@" + "0" * 40 + "/sdxl_vae.safetensors"
        row_id = record_download(index, vae, ref=ref, model_id=None, version_id=None,
                                 file_id=None, sha256=sha.lower(),
                                 verification=verification)  # fmt: skip
        row = index.get(row_id)
        assert row is not None and (row.kind, row.sha256) == ("vae", sha)
        assert row.civitai_version_id is None and row.identify_state is None
        assert row.matched_by is None and row.identified_at is None
        assert [(e["event"], e.get("ref")) for e in index.history(row_id)] == [
            ("added", None),
            ("downloaded", ref),
        ]
        result = scan(root, load_layout(root, "auto"), index, hc)
        assert result.inspected == 0
        assert [m.id for m in result.models] == [row_id]
