"""What Browse searches for: each source's name, its filters (the choices its Selects
offer, as the source's own words) and the query those make. Values only."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sdlib.taxonomy import CIVITAI_PERIODS, CIVITAI_SORTS

__all__ = [
    "BASE_OPTIONS",
    "CIVITAI",
    "HUB",
    "HUB_BASE_OPTIONS",
    "HUB_SORT_OPTIONS",
    "HUB_TYPE_OPTIONS",
    "PLACEHOLDERS",
    "SOURCE_NAMES",
    "TYPE_OPTIONS",
    "HubQuery",
    "Query",
    "periods",
    "sorts",
    "with_changes",
]

CIVITAI = "civitai"
HUB = "huggingface"
SOURCE_NAMES = {CIVITAI: "Civitai", HUB: "Hugging Face"}

#: sdlib's words for the Hub's filters (``sdlib search --source hf``'s choices).
HUB_TYPE_OPTIONS = (
    ("Checkpoint", "checkpoint"),
    ("LoRA", "lora"),
    ("VAE", "vae"),
    ("ControlNet", "controlnet"),
    ("Embedding", "embedding"),
)
HUB_BASE_OPTIONS = (
    ("SD 1.x", "sd1"),
    ("SD 2.x", "sd2"),
    ("SDXL", "sdxl"),
    ("SD 3", "sd3"),
    ("Flux", "flux"),
    ("Flux 2", "flux2"),
)
HUB_SORT_OPTIONS = (
    ("Most downloads", "downloads"),
    ("Most likes", "likes"),
    ("Trending", "trending"),
    ("Recently updated", "updated"),
    ("Newest", "created"),
)


@dataclass(frozen=True)
class HubQuery:
    """A Hub search in sdlib's words (``sdlib search --source hf``'s)."""

    text: str = ""
    type: str | None = None
    base: str | None = None
    sort: str = "downloads"


PLACEHOLDERS = {
    CIVITAI: "Search Civitai models (/ to focus, enter to search)",
    HUB: "Search the Hugging Face Hub (/ to focus, enter to search)",
}

TYPE_OPTIONS = (
    ("Checkpoint", "Checkpoint"),
    ("LoRA", "LORA"),
    ("LyCORIS", "LoCon"),
    ("DoRA", "DoRA"),
    ("Embedding", "TextualInversion"),
    ("Hypernetwork", "Hypernetwork"),
    ("VAE", "VAE"),
    ("ControlNet", "Controlnet"),
    ("Upscaler", "Upscaler"),
    ("Motion", "MotionModule"),
)
BASE_OPTIONS = (
    ("SD 1.x", "sd1"),
    ("SD 2.x", "sd2"),
    ("SDXL", "sdxl"),
    ("Pony", "Pony"),
    ("Illustrious", "Illustrious"),
    ("SD 3", "sd3"),
    ("Flux", "flux"),
)


@dataclass(frozen=True)
class Query:
    """A Civitai search in Civitai's words."""

    text: str = ""
    type: str | None = None
    base: str | None = None
    sort: str = "Highest Rated"
    period: str = "AllTime"
    nsfw: bool = False


_Q = TypeVar("_Q", Query, HubQuery)


def with_changes(query: _Q, **changes: Any) -> _Q:
    """``query`` with some fields changed (a filter was picked, a search typed)."""
    return replace(query, **changes)


def sorts() -> tuple[str, ...]:
    # From the vocabulary, not sdlib.sources.civitai (which would import httpx2 here).
    return CIVITAI_SORTS


def periods() -> tuple[str, ...]:
    return CIVITAI_PERIODS
