"""Tolerant readers for Civitai's drifting JSON, and the settings vote over image metadata.

A wrong type in one field degrades that field to ``None`` (``_int("1e999")`` is None, not an
OverflowError); ``RecommendedSettings`` is a majority vote over example images' metadata.
Used by ``_models``, which builds the records.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["RecommendedSettings", "commercial_use", "to_jsonable"]


# --- tolerant field readers ----------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        number = _float(value)  # "1e999" and 5,000-digit strings are not ids
        return int(number) if number is not None else None
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _bool(value: Any, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "on"}
    if isinstance(value, (int, float)):
        return bool(value)
    return default


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(s.strip() for s in _list(value) if isinstance(s, str) and s.strip())


def commercial_use(value: Any) -> tuple[str, ...]:
    """``allowCommercialUse`` in any of its three eras -> a tuple of permission names."""
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str) and v)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{") and text.endswith("}"):  # a Postgres array literal
            text = text[1:-1]
        return tuple(p.strip().strip('"') for p in text.split(",") if p.strip().strip('"'))
    return ()


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, tuples and mappings -> plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable(self)
        return data


# --- recommended settings ------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendedSettings(_ToDict):
    """Generation settings most example images agree on (a majority vote per field)."""

    clip_skip: int | None = None
    sampler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    size: str | None = None
    #: How many images with metadata the vote used.
    samples: int = 0

    def parts(self) -> list[str]:
        """The settings as short phrases ("CLIP skip 2", "30 steps", "CFG 7"...) to join."""
        parts = [f"CLIP skip {self.clip_skip}" if self.clip_skip else "CLIP skip ?"]
        if self.sampler:
            parts.append(self.sampler)
        if self.steps:
            parts.append(f"{self.steps} steps")
        if self.cfg_scale is not None:
            parts.append(f"CFG {self.cfg_scale:g}")
        if self.size:
            parts.append(self.size)
        return parts

    @classmethod
    def from_metas(cls, metas: Iterable[Mapping[str, Any]]) -> RecommendedSettings:
        clip: Counter[int] = Counter()
        sampler: Counter[str] = Counter()
        steps: Counter[int] = Counter()
        cfg: Counter[float] = Counter()
        size: Counter[str] = Counter()
        n = 0
        for meta in metas:
            if not isinstance(meta, Mapping) or not meta:
                continue
            n += 1
            cs = _int(_first(meta, "Clip skip", "clipSkip", "clip_skip", "CLIP skip"))
            if cs is not None and 1 <= cs <= 12:
                clip[cs] += 1
            s = _str(_first(meta, "sampler", "Sampler", "sampler_name"))
            if s:
                sampler[s.strip()] += 1
            st = _int(_first(meta, "steps", "Steps"))
            if st is not None and st > 0:
                steps[st] += 1
            c = _float(_first(meta, "cfgScale", "CFG scale", "cfg_scale", "cfg"))
            if c is not None and c > 0:
                cfg[c] += 1
            sz = _size(meta)
            if sz:
                size[sz] += 1
        return cls(
            clip_skip=_majority(clip),
            sampler=_majority(sampler),
            steps=_majority(steps),
            cfg_scale=_majority(cfg),
            size=_majority(size),
            samples=n,
        )


def _first(meta: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if meta.get(k) is not None:
            return meta[k]
    return None


def _size(meta: Mapping[str, Any]) -> str | None:
    raw = _str(_first(meta, "Size", "size"))
    if raw:
        parts = raw.lower().replace(" ", "").split("x")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return f"{int(parts[0])}x{int(parts[1])}"
    w, h = _int(meta.get("width")), _int(meta.get("height"))
    return f"{w}x{h}" if w and h else None


def _majority(counter: Counter[Any]) -> Any:
    # most_common keeps first-seen order among ties, so the newest image breaks a tie.
    return counter.most_common(1)[0][0] if counter else None
