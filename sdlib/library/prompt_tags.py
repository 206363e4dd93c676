"""What to type in an A1111-style prompt to use a LoRA: ``<lora:name:weight>``.

The name is the file stem, as A1111 keys its networks (``models/Lora/styles/add_detail.
safetensors`` is ``add_detail``; the folder is not part of it, and the stem always works
even where a ``ss_output_name`` alias would too). The weight is the one the model's card
recommends: the ``preferred weight`` of its A1111 user-metadata ``<stem>.json`` (where A1111
itself, Civitai Helper and sd-civitai-browser-plus keep it; 0 means "not set"), else 1.0,
A1111's default multiplier (layouts.md 1.4).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LORA_KINDS", "PromptTag", "lora_tag", "preferred_weight"]

#: Kinds A1111's built-in Lora extension loads with ``<lora:...>`` (LyCORIS too, since 1.5).
LORA_KINDS = frozenset({"lora", "lycoris"})
#: A user-metadata file bigger than this is not a model card.
_MAX_CARD = 1 << 20
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class PromptTag:
    name: str
    weight: float
    #: Where the weight came from: the card file's name, or "default".
    source: str

    @property
    def text(self) -> str:
        return f"<lora:{self.name}:{format_weight(self.weight)}>"


def format_weight(weight: float) -> str:
    """``0.8``, ``1``, ``-0.5``: as A1111 writes the multiplier into the prompt."""
    return f"{weight:g}"


def preferred_weight(card: Any) -> float | None:
    """The ``preferred weight`` of a parsed ``<stem>.json``, or None (absent, 0, not a number)."""
    if not isinstance(card, dict):
        return None
    value = card.get("preferred weight")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        weight = float(value)
    except ValueError:
        return None
    return weight if math.isfinite(weight) and weight != 0 else None


def lora_tag(model: str | os.PathLike[str]) -> PromptTag:
    """The prompt tag of the LoRA file ``model`` (reads its ``<stem>.json`` if there is one)."""
    path = Path(model)
    stem = os.path.splitext(path.name)[0]
    card = path.with_name(stem + ".json")
    weight = preferred_weight(_read_card(card))
    if weight is None:
        return PromptTag(stem, DEFAULT_WEIGHT, "default")
    return PromptTag(stem, weight, card.name)


def _read_card(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_CARD + 1)
    except OSError:
        return None
    if len(data) > _MAX_CARD:
        return None
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None
