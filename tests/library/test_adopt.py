"""A model with a ``.civitai.info`` or ``.cm-info.json`` beside it is identified by ``scan``
from that sidecar, when the sidecar is consistent with the file; sidecar shapes built by hand
after reference/civitai-api.md (model-version JSON) and layouts.md 6.3 (Stability Matrix)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sdlib.hashcache import HashCache
from sdlib.library.adopt import same_description
from sdlib.library.index import Index
from sdlib.library.scan import ScanResult, load_layout, scan
from tests.support import trees


def run(root: Path, stores: tuple[Index, HashCache], **kw: Any) -> ScanResult:
    return scan(root, load_layout(root, "auto"), *stores, **kw)


def model(result: ScanResult, rel: str) -> Any:
    return next(f for f in result.files if f.rel == rel)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


BLAKE3 = "7E2030574C35F33545951E6588A19E41D88CEBB30598C17805A87EFFD0DB0A99"


def version_json(sha: str, *, name: str = "add_detail.safetensors", size_kb: float = 37861.6):
    """What Civitai Helper saves: /api/v1/model-versions/by-hash/<sha256>, pretty-printed."""
    return {
        "id": 62833, "modelId": 58390, "name": "v1.0", "baseModel": "SD 1.5",
        "createdAt": "2023-05-08T05:03:42.396Z", "updatedAt": "2023-05-08T05:10:11.000Z",
        "trainedWords": [], "stats": {"downloadCount": 412000, "thumbsUpCount": 31000},
        "model": {"name": "Detail Tweaker LoRA (细节调整LoRA)", "type": "LORA", "nsfw": False,
                  "poi": False},
        "files": [{
            "id": 58390, "name": name, "sizeKB": size_kb, "type": "Model",
            "metadata": {"fp": "fp16", "size": "full", "format": "SafeTensor"},
            "hashes": {"AutoV2": sha[:10], "SHA256": sha, "CRC32": "0A1B2C3D", "BLAKE3": BLAKE3},
            "primary": True,
            "downloadUrl": "https://civitai.com/api/download/models/62833",
        }],
        "images": [], "downloadUrl": "https://civitai.com/api/download/models/62833",
    }  # fmt: skip


def lora_with_info(root: Path, info: Any) -> Path:
    path = trees.st(root / "models" / "Lora" / "detail.safetensors", "lora_sd15_kohya")
    (root / "models" / "Lora" / "detail.civitai.info").write_text(
        json.dumps(info(sha256(path)) if callable(info) else info, indent=4), encoding="utf-8"
    )
    return path


def test_civitai_helper_info_identifies_the_file_unconfirmed_until_identify(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora_with_info(root, version_json)
    result = run(root, stores)
    lora = model(result, "models/Lora/detail.safetensors")
    civ = lora.to_dict()["civitai"]
    assert (civ["model_id"], civ["version_id"], civ["file_id"]) == (58390, 62833, 58390)
    assert civ["model_name"] == "Detail Tweaker LoRA (细节调整LoRA)"
    assert (civ["version_name"], civ["base_model"], civ["matched_by"]) == ("v1.0", "SD 1.5",
                                                                           "sidecar")  # fmt: skip
    # Its SHA256 was not known (nothing hashed it): taken, not confirmed; identify asks.
    assert lora.row.identify_state is None
    again = run(root, stores)  # the identity is kept by the index, not re-read
    assert model(again, "models/Lora/detail.safetensors").row.civitai_version_id == 62833
    events = [e["event"] for e in stores[0].history(lora.id)]
    assert events.count("identified") == 1


def test_info_is_confirmed_by_the_files_sha256(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    path = lora_with_info(root, version_json)
    lora = model(run(root, stores, hash_all=True), "models/Lora/detail.safetensors")
    assert lora.row.identify_state == "identified" and lora.row.matched_by == "sidecar"
    assert lora.sha256 == sha256(path)


def test_info_describing_other_bytes_is_not_taken(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora_with_info(root, lambda _sha: version_json("AB" * 32))
    lora = model(run(root, stores, hash_all=True), "models/Lora/detail.safetensors")
    assert lora.row.civitai_version_id is None and lora.to_dict()["civitai"] is None
    assert any("describes other bytes" in n for n in lora.notes)


def test_not_found_marker_and_broken_json_are_not_identities(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    root = trees.a1111(tmp_path / "webui")
    lora_with_info(root, {})  # Civitai Helper's "looked up, not on Civitai"
    other = trees.st(root / "models" / "Lora" / "b.safetensors", "lora_sd15_kohya")
    trees.touch(other.with_name("b.civitai.info"), '{"id": 1, "files": [')
    result = run(root, stores)
    assert all(f.row.civitai_version_id is None for f in result.models)


def test_stability_matrix_cm_info(tmp_path: Path, stores: tuple[Index, HashCache]) -> None:
    root = trees.stabilitymatrix(tmp_path / "Data")
    path = trees.st(root / "Models" / "Lora" / "detail.safetensors", "lora_sd15_kohya")
    cm = {
        "ModelId": 58390, "ModelName": "Detail Tweaker LoRA", "ModelDescription": "",
        "Nsfw": False, "Tags": ["detail"], "ModelType": "LORA", "VersionId": 62833,
        "VersionName": "v1.0", "VersionDescription": "", "AuthorUsername": "nocrypt",
        "BaseModel": "SD 1.5", "RemoteFileName": "add_detail.safetensors",
        "RemoteFileId": 58390, "FileMetadata": {"fp": "fp16", "size": "full",
                                                "format": "SafeTensor"},
        "ImportedAt": "2024-02-01T10:00:00+00:00",
        "Hashes": {"SHA256": sha256(path), "CRC32": "0A1B2C3D", "BLAKE3": None},
        "TrainedWords": [], "Stats": {}, "UserTitle": None, "ThumbnailImageUrl": None,
        "InferenceDefaults": None, "Source": 0, "SourceUrl": "https://civitai.com/models/58390",
    }  # fmt: skip
    path.with_name("detail.cm-info.json").write_text(json.dumps(cm), encoding="utf-8")
    lora = model(run(root, stores, hash_all=True), "Models/Lora/detail.safetensors")
    civ = lora.to_dict()["civitai"]
    assert (civ["model_id"], civ["version_id"], civ["file_id"]) == (58390, 62833, 58390)
    assert civ["model_name"] == "Detail Tweaker LoRA" and lora.row.identify_state == "identified"


def test_the_library_screen_shows_the_sidecars_identity(
    tmp_path: Path, stores: tuple[Index, HashCache]
) -> None:
    from sdlib.tui.screens.library import civitai_text

    root = trees.a1111(tmp_path / "webui")
    lora_with_info(root, version_json)
    lora = model(run(root, stores), "models/Lora/detail.safetensors")
    assert civitai_text(lora) == "Detail Tweaker LoRA (细节调整LoRA) v1.0"


def test_sidecars_of_one_version_with_other_stats_describe_the_same() -> None:
    sha = "0D" * 32
    a, b = version_json(sha), version_json(sha)
    b["stats"] = {"downloadCount": 999999, "thumbsUpCount": 1}
    b["images"] = [{"url": "https://image.civitai.com/x/original=true/1.jpeg", "nsfwLevel": 1}]
    b["updatedAt"] = "2026-01-01T00:00:00.000Z"
    assert same_description(".civitai.info", a, b)
    assert same_description(".civitai.info", a, {})  # "not found" says less than a version
    extra = {**b, "extensions": {"sd_civitai_helper": {"version": "1.8"}}}
    assert not same_description(".civitai.info", a, extra)  # something a lacks
    assert not same_description(".civitai.info", a, {**b, "id": 62834})
    assert not same_description(".civitai.info", {}, b)
    cm = {"ModelId": 1, "VersionId": 2, "ImportedAt": "2024", "UserTitle": None}
    assert same_description(".cm-info.json", cm, {**cm, "ImportedAt": "2025"})
    assert not same_description(".cm-info.json", cm, {**cm, "UserTitle": "mine"})
