"""CivArchive's answers parsed tolerantly (both shapes the reference describes), and the
pure rules of the fallback: which Civitai host to ask next, when CivArchive is asked, what
counts as "gone"."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sdlib.config import CivarchiveSettings, CivitaiSettings, Settings
from sdlib.errors import Gone, NotFound, RateLimited, SourceError
from sdlib.services.fallback import civarchive_url, is_gone, other_civitai_host
from sdlib.sources.civarchive import parse_answer

SHA = "ab" * 32


def _file(**extra: Any) -> dict[str, Any]:
    return {
        "id": 11, "name": "style.safetensors", "sha256": SHA, "sizeKB": 12.5,
        "mirrors": [
            {"url": "https://gone.example/a", "filename": "a.safetensors",
             "deletedAt": "2025-01-01T00:00:00Z"},
            {"url": "https://live.example/b", "filename": "b.safetensors", "deletedAt": None},
        ],
        **extra,
    }  # fmt: skip


def test_model_with_nested_version() -> None:
    data = {"model": {
        "id": 5, "name": "Style", "type": "LORA", "nsfw": False, "creator": {"username": "u"},
        "tags": ["ink", {"name": "style"}], "deletedAt": "2025-02-01T00:00:00Z",
        "version": {"id": 6, "name": "v1", "baseModel": "SD 1.5", "trigger": ["inky"],
                    "files": [_file()]},
    }}  # fmt: skip
    answer = parse_answer(data)
    assert answer is not None
    assert (answer.model_id, answer.version_id, answer.model_name, answer.version_name) == (
        5, 6, "Style", "v1")  # fmt: skip
    assert (answer.base_model, answer.trained_words, answer.creator) == ("SD 1.5", ("inky",), "u")
    assert answer.tags == ("ink", "style")
    assert answer.deleted_at == "2025-02-01T00:00:00Z"
    [file] = answer.files
    assert file.sha256 == SHA.upper()
    assert file.size is None  # sizeKB is rounded: never taken as the byte size
    assert file.live_mirror is not None and file.live_mirror.url == "https://live.example/b"
    assert answer.file_with_sha256(SHA) is file
    assert answer.file_with_sha256("cd" * 32) is None


def test_files_only_shape_names_the_version_per_file() -> None:
    answer = parse_answer({"files": [_file(modelId=5, modelVersionId=6)]})
    assert answer is not None
    assert (answer.model_id, answer.version_id, answer.has_model) == (5, 6, False)


def test_models_route_shape_picks_the_asked_version_from_versions() -> None:
    data = {
        "id": 5,
        "name": "Style",
        "modelVersionId": 7,
        "versions": [{"id": 6, "name": "v1"}, {"id": 7, "name": "v2", "files": [_file()]}],
    }
    answer = parse_answer(data)
    assert answer is not None
    assert (answer.version_id, answer.version_name, len(answer.files)) == (7, "v2", 1)


@pytest.mark.parametrize(
    "data",
    [None, [], "x", 5, {}, {"files": "nope"}, {"model": [1, 2]}, {"files": [None, 3, "x"]}],
)
def test_nonsense_is_no_answer(data: Any) -> None:
    assert parse_answer(data) is None


def test_bad_fields_are_read_as_absent() -> None:
    data = {
        "model": {
            "id": "x",
            "name": 5,
            "nsfw": "yes",
            "version": {
                "id": True,
                "trigger": "a, b",
                "files": [
                    _file(
                        sha256="not-a-hash",
                        mirrors=[
                            {"url": "javascript:alert(1)", "deletedAt": None},
                            {"url": 5},
                            "junk",
                        ],
                    )
                ],
            },
        }
    }
    answer = parse_answer(data)
    assert answer is not None
    assert (answer.model_id, answer.version_id, answer.model_name, answer.nsfw) == (
        None, None, None, None)  # fmt: skip
    assert answer.trained_words == ("a", "b")
    [file] = answer.files
    assert file.sha256 is None and file.mirrors == () and file.live_mirror is None


@pytest.mark.parametrize(
    ("base", "other"),
    [
        ("https://civitai.com", "https://civitai.red"),
        ("https://civitai.red", "https://civitai.com"),
        ("https://www.civitai.com/", "https://civitai.red"),
        ("https://civitai.green", "https://civitai.red"),
        ("http://127.0.0.1:8000", None),
        ("https://civitai.com:8443", None),  # a port: someone's proxy, not Civitai itself
        ("https://mirror.example", None),
    ],
)
def test_other_civitai_host(base: str, other: str | None) -> None:
    assert other_civitai_host(base) == other


def _settings(civitai: str, **archive: Any) -> Settings:
    return replace(Settings(), civitai=CivitaiSettings(base_url=civitai),
                   civarchive=CivarchiveSettings(**archive))  # fmt: skip


def test_civarchive_is_asked_only_for_civitai_itself_unless_configured() -> None:
    assert civarchive_url(_settings("https://civitai.com")) == "https://civarchive.com"
    assert civarchive_url(_settings("https://civitai.red")) == "https://civarchive.com"
    assert civarchive_url(_settings("http://127.0.0.1:9")) is None
    assert civarchive_url(_settings("http://127.0.0.1:9", base_url="http://127.0.0.1:7")) == (
        "http://127.0.0.1:7")  # fmt: skip
    assert civarchive_url(_settings("https://civitai.com", enabled=False)) is None


@pytest.mark.parametrize(
    ("exc", "gone"),
    [
        (Gone("archived", status=410), True),
        (NotFound("Model not found", status=404), True),
        (NotFound("version 4 has no downloadable files (archived, or not yet available)"), True),
        (NotFound("version 4 has no file with format=GGUF (has: ...)"), False),
        (RateLimited("slow down"), False),
        (SourceError("HTTP 500", status=500), False),
    ],
)
def test_what_counts_as_gone(exc: SourceError, gone: bool) -> None:
    assert is_gone(exc) is gone
