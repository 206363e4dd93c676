from __future__ import annotations

import json
from pathlib import Path

from sdlib.library.sidecars import (
    a1111_user_metadata,
    activation_text,
    image_extension,
    is_video,
    sidecars_of,
    write_model_sidecars,
)
from sdlib.taxonomy import Base

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 32
WEBP = b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 16
MP4 = b"\0\0\0\x18ftypmp42" + b"\0" * 16


def test_image_extension_from_content() -> None:
    assert image_extension(PNG) == ".png"
    assert image_extension(JPEG) == ".jpeg"
    assert image_extension(WEBP) == ".webp"
    assert image_extension(MP4) is None and is_video(MP4)


def test_lora_user_metadata() -> None:
    data = a1111_user_metadata(
        kind="lora", base=Base.SDXL, description="<p>Nice <b>style</b></p>",
        trained_words=["pixel art", "retro"],
    )  # fmt: skip
    assert data["sd version"] == "SDXL"
    assert data["activation text"] == "pixel art, retro"
    assert data["description"] == "Nice style"
    assert data["preferred weight"] == 0
    assert activation_text(["a, b", "c"]) == "a, b || c"


def test_sidecars_written_with_true_preview_extension(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    written = write_model_sidecars(
        model, version_json={"id": 1}, user_metadata={"description": "d"}, preview=JPEG
    )
    names = sorted(p.name for p in written)
    assert names == ["m.civitai.info", "m.json", "m.preview.jpeg"]
    assert sorted(p.name for p in sidecars_of(model)) == names


def test_video_preview_is_skipped(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    written = write_model_sidecars(model, version_json=None, user_metadata=None, preview=MP4)
    assert written == [] and not list(tmp_path.glob("m.preview*"))


def test_user_keys_are_kept_and_backed_up(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"description": "mine", "notes": "", "vae": "x.pt"}))
    write_model_sidecars(
        model, version_json=None, user_metadata={"description": "theirs", "notes": "n"}
    )
    data = json.loads(meta.read_text())
    assert data == {"description": "mine", "notes": "n", "vae": "x.pt"}
    assert json.loads((tmp_path / "m.json.bak").read_text())["notes"] == ""
