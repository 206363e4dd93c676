"""sdlib's search words as the Hub's filters: types as tags, bases as ``base_model:`` tags.

The Hub has no model-type field: a LoRA repo is tagged ``lora``, a ControlNet ``controlnet``,
a textual inversion ``textual_inversion``, and a base model is named by the
``base_model:ORG/REPO`` tags cards produce. What no tag says (a VAE; a checkpoint as opposed
to a LoRA, both ``text-to-image``) is filtered here on the results, so a page may come back
shorter than asked and the search pages on (bounded by the paging guard).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sdlib.errors import UsageError
from sdlib.sources.hf._models import HubModel

__all__ = ["BASE_REPOS", "SORTS", "TYPES", "HubQuery", "hub_query"]

#: ``--sort`` words -> the Hub's ``sort`` values (always descending).
SORTS: dict[str, str] = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trendingScore",
    "updated": "lastModified",
    "created": "createdAt",
}

#: ``--base`` words -> the repo a ``base_model:`` tag names. SD 1.5 LoRAs name the original
#: runwayml repo (the one most cards were written against, before it moved); any other base
#: can be given as its repo id (``--base stable-diffusion-v1-5/stable-diffusion-v1-5``).
BASE_REPOS: dict[str, str] = {
    "sd1": "runwayml/stable-diffusion-v1-5",
    "sd2": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd3": "stabilityai/stable-diffusion-3.5-large",
    "flux": "black-forest-labs/FLUX.1-dev",
    "flux2": "black-forest-labs/FLUX.2-dev",
}

#: ``--type`` words -> (tag the Hub filters on, or None; a test on each result, or None).
TYPES: dict[str, tuple[str | None, Callable[[HubModel], bool] | None]] = {
    "lora": ("lora", None),
    "controlnet": ("controlnet", None),
    "embedding": ("textual_inversion", None),
    # A checkpoint: a text-to-image repo that is not an adapter.
    "checkpoint": ("text-to-image", lambda m: "lora" not in m.tags and "controlnet" not in m.tags),
    # No tag marks a VAE: its repo id or its tags say "vae".
    "vae": (None, lambda m: "vae" in m.id.lower() or "vae" in m.tags),
}


@dataclass(frozen=True)
class HubQuery:
    """A search as the Hub's query parameters plus a test on each result."""

    filters: tuple[str, ...]
    sort: str | None
    keep: Callable[[HubModel], bool] | None

    def accepts(self, model: HubModel) -> bool:
        return self.keep is None or self.keep(model)


def hub_query(
    types: tuple[str, ...] | list[str] = (),
    bases: tuple[str, ...] | list[str] = (),
    sort: str | None = None,
) -> HubQuery:
    """``--type``, ``--base`` and ``--sort`` as Hub filters; ``UsageError`` for a word the
    Hub cannot express. Several types or bases: each must hold (the Hub ANDs filters)."""
    filters: list[str] = []
    tests: list[Callable[[HubModel], bool]] = []
    for word in types:
        key = word.strip().lower()
        if key not in TYPES:
            raise UsageError(
                f"unknown type {word!r} for the Hugging Face Hub (one of: {', '.join(TYPES)})"
            )
        tag, test = TYPES[key]
        if tag is not None and tag not in filters:
            filters.append(tag)
        if test is not None:
            tests.append(test)
    for word in bases:
        key = word.strip()
        repo = BASE_REPOS.get(key.lower())
        if repo is None:
            if key.count("/") != 1 or any(c.isspace() for c in key):
                raise UsageError(
                    f"unknown base {word!r} for the Hugging Face Hub (one of: "
                    f"{', '.join(BASE_REPOS)}, or a base model's repo id ORG/REPO)"
                )
            repo = key
        filters.append(f"base_model:{repo}")
    hub_sort = None
    if sort is not None:
        hub_sort = SORTS.get(sort.strip().lower())
        if hub_sort is None:
            raise UsageError(f"unknown sort {sort!r} for the Hub (one of: {', '.join(SORTS)})")

    keep = None
    if tests:

        def keep(model: HubModel) -> bool:
            return all(test(model) for test in tests)

    return HubQuery(tuple(filters), hub_sort, keep)
