"""The files other tools read next to a model: ``.civitai.info``, A1111's ``<stem>.json``,
``.preview.<ext>`` and Stability Matrix's ``.cm-info.json``.

Builders are pure (dicts in, dicts out); writers are atomic and never replace good data
with worse: a user's own ``<stem>.json`` keys are kept, and a sidecar is backed up to
``<name>.bak`` before sdlib changes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sdlib.taxonomy import Base

#: Extensions of the files that belong to a model ``<stem>.<model ext>`` (layouts.md 7.4),
#: including the ``.bak`` copies sdlib makes before changing one, and the A1111 VAE that
#: sits beside a checkpoint.
SIDECAR_SUFFIXES = (
    ".civitai.info", ".json", ".cm-info.json", ".api_info.json", ".yaml", ".txt",
    ".description.txt", ".html",
    ".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp", ".preview.gif",
    ".preview.mp4", ".preview.webm",
    ".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm", ".thumb.jpg",
    ".civitai.info.bak", ".json.bak", ".cm-info.json.bak",
    ".vae.pt", ".vae.ckpt", ".vae.safetensors",
)  # fmt: skip

#: Sidecars that mean nothing without their model (a lone ``.txt`` or ``.yaml`` may be a
#: placeholder or a config; a lone ``.civitai.info`` is an orphan).
STRONG_SIDECAR_SUFFIXES = tuple(
    s for s in SIDECAR_SUFFIXES if s not in (".yaml", ".txt", ".html") and not s.startswith(".vae.")
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
VIDEO_EXTENSIONS = (".mp4", ".webm")
#: ``.jpg`` and ``.jpeg`` are the same format.
_SAME_EXT = {".jpg": ".jpeg"}


def sidecar_split(name: str) -> list[tuple[str, str]]:
    """Every (model stem, sidecar suffix) reading of a file name, longest suffix first.

    ``a.preview.png`` -> [("a", ".preview.png"), ("a.preview", ".png")]. Case-insensitive.
    """
    low = name.lower()
    out = [(name[: -len(s)], s) for s in SIDECAR_SUFFIXES if low.endswith(s) and len(name) > len(s)]
    out.sort(key=lambda pair: -len(pair[1]))
    return out


def is_preview_name(name: str) -> bool:
    """An image or video sidecar (``<stem>.png``, ``<stem>.preview.jpeg``, ``.thumb.jpg``)."""
    return name.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)


def preview_kind(head: bytes) -> str:
    """What a preview's bytes are: an image extension, ``video`` or ``unknown``."""
    ext = image_extension(head)
    if ext is not None:
        return ext
    return "video" if is_video(head) else "unknown"


def preview_mismatch(name: str, kind: str) -> str | None:
    """Why a preview named ``name`` holding ``kind`` (from ``preview_kind``) is misnamed."""
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    ext = _SAME_EXT.get(ext, ext)
    if kind == "video":
        return None if ext in VIDEO_EXTENSIONS else f"a video saved as {ext}; no webUI shows it"
    if kind == "unknown":
        return f"not an image (named {ext})"
    if ext != kind:
        return f"{kind[1:].upper()} bytes named {ext}; some viewers refuse it"
    return None


def image_extension(head: bytes) -> str | None:
    """The true extension of an image from its first bytes; None for video or unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    return None


def is_video(head: bytes) -> bool:
    return head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3")  # MP4/MOV, WebM/MKV


def sidecars_of(model: Path) -> list[Path]:
    """Existing sidecar files of ``model`` (same folder, same stem)."""
    stem = model.stem
    found = []
    for suffix in SIDECAR_SUFFIXES:
        candidate = model.with_name(stem + suffix)
        if candidate != model and candidate.is_file():
            found.append(candidate)
    return found


def sd_version_label(base: Base | str | None) -> str:
    """A1111's ``sd version`` value: SD1, SD2, SDXL or Unknown."""
    value = str(base) if base is not None else ""
    return {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "sdxl-refiner": "SDXL"}.get(
        value, "Unknown"
    )


def activation_text(trained_words: Sequence[str]) -> str:
    words = [w.strip() for w in trained_words if w and w.strip()]
    # zixaphir's Civitai Helper convention: " || " when a word itself holds commas.
    return (" || " if any("," in w for w in words) else ", ").join(words)


def strip_html(text: str | None) -> str:
    if not text:
        return ""
    text = re.sub(r"<br\s*/?>|</p>", "\n", text, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]+>", "", text)
    import html

    return re.sub(r"\n{3,}", "\n\n", html.unescape(text)).strip()


def a1111_user_metadata(
    *,
    kind: str,
    base: Base | str | None,
    description: str | None,
    trained_words: Sequence[str] = (),
    notes: str | None = None,
    preferred_weight: float | None = None,
) -> dict[str, Any]:
    """The ``<stem>.json`` A1111 reads for its model cards (keys as its editor writes them)."""
    data: dict[str, Any] = {"description": strip_html(description), "notes": notes or ""}
    if kind in ("lora", "lycoris"):
        data["sd version"] = sd_version_label(base)
        data["activation text"] = activation_text(trained_words)
        data["preferred weight"] = preferred_weight if preferred_weight is not None else 0
        data["negative text"] = ""
    elif trained_words:
        data["activation text"] = activation_text(trained_words)
    return data


def stability_matrix_info(
    *,
    version_json: Mapping[str, Any],
    model_name: str,
    model_description: str | None,
    model_type: str | None,
    nsfw: bool,
    tags: Sequence[str],
    author: str | None,
    file_name: str,
    file_id: int | None,
    file_metadata: Mapping[str, Any],
    hashes: Mapping[str, str | None],
    imported_at: str,
    source_url: str,
) -> dict[str, Any]:
    """Stability Matrix's ``<stem>.cm-info.json`` ("connected model info", layouts.md 6.3).

    PascalCase at the top level as SM's System.Text.Json writes it; the inner objects keep
    Civitai's own names (``fp``/``size``/``format``, ``SHA256``/``CRC32``/``BLAKE3``, camelCase
    stats). ``Source`` is SM's enum as a number (0: Civitai).
    """
    return {
        "ModelId": version_json.get("modelId"),
        "ModelName": model_name,
        "ModelDescription": model_description or "",
        "Nsfw": nsfw,
        "Tags": list(tags),
        "ModelType": model_type,
        "VersionId": version_json.get("id"),
        "VersionName": version_json.get("name"),
        "VersionDescription": version_json.get("description") or "",
        "AuthorUsername": author,
        "BaseModel": version_json.get("baseModel"),
        "RemoteFileName": file_name,
        "RemoteFileId": file_id,
        "FileMetadata": {k: file_metadata.get(k) for k in ("fp", "size", "format")},
        "ImportedAt": imported_at,
        "Hashes": {k: hashes.get(k) for k in ("SHA256", "CRC32", "BLAKE3")},
        "TrainedWords": list(version_json.get("trainedWords") or []),
        "Stats": dict(version_json.get("stats") or {}),
        "UserTitle": None,
        "ThumbnailImageUrl": None,
        "InferenceDefaults": None,
        "Source": 0,
        "SourceUrl": source_url,
    }


def merge_user_metadata(existing: Mapping[str, Any], fresh: Mapping[str, Any]) -> dict[str, Any]:
    """Keep every key the user (or another tool) set; fill in only what is missing or empty."""
    merged = dict(existing)
    for key, value in fresh.items():
        if merged.get(key) in (None, "", 0, "Unknown") and value not in (None, ""):
            merged[key] = value
        merged.setdefault(key, value)
    return merged


def write_json(path: Path, data: Any, *, backup: bool = True) -> bool:
    """Write JSON atomically; back up a different existing file first. False if unchanged."""
    text = json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    if path.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.read_text(encoding="utf-8") == text:
                return False
        if backup:
            shutil.copy2(path, path.with_name(path.name + ".bak"))
    write_bytes_atomic(path, text.encode("utf-8"))
    return True


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.sdlib-tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_json(path: Path) -> Any:
    """A sidecar's JSON, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def write_model_sidecars(
    model: Path,
    *,
    version_json: Mapping[str, Any] | None,
    user_metadata: Mapping[str, Any] | None,
    preview: bytes | None = None,
) -> list[Path]:
    """Write ``.civitai.info``, ``<stem>.json`` and the preview next to ``model``.

    Returns the files written. Never replaces a non-empty ``.civitai.info`` with an empty
    one, and merges into an existing ``<stem>.json`` instead of replacing it.
    """
    written: list[Path] = []
    stem = model.stem
    if version_json:
        info = model.with_name(stem + ".civitai.info")
        if write_json(info, dict(version_json)):
            written.append(info)
    if user_metadata is not None:
        meta_path = model.with_name(stem + ".json")
        existing = read_json(meta_path)
        data = (
            merge_user_metadata(existing, user_metadata)
            if isinstance(existing, dict)
            else dict(user_metadata)
        )
        if write_json(meta_path, data):
            written.append(meta_path)
    if preview:
        ext = image_extension(preview[:16])
        if ext is not None:
            target = model.with_name(f"{stem}.preview{ext}")
            if not target.exists():
                write_bytes_atomic(target, preview)
                written.append(target)
    return written
