"""Civitai's records as sdlib values, parsed tolerantly from the API's drifting JSON.

Every ``from_api`` accepts the shapes Civitai has served over the years (reference
civitai-api.md section 6.9): ``allowCommercialUse`` as a string, a ``"{A,B}"`` literal or
an array; null stats; ``nextCursor`` as number or string; empty ``hashes``; ``primary``
absent rather than false; image ``nsfw`` as a boolean, ``nsfwLevel`` as a string or an int;
the three generations of early-access fields; seeds beyond int64. Unknown keys are ignored;
a wrong type in one field degrades that field to ``None``, never the whole record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdlib.sources.civitai._fields import (
    RecommendedSettings,
    _bool,
    _dict,
    _float,
    _int,
    _list,
    _str,
    _strs,
    _ToDict,
    commercial_use,
)
from sdlib.sources.paging import normalise_cursor
from sdlib.sources.versions import early_access_active, newest, newest_first
from sdlib.taxonomy import CIVITAI_TYPE_TO_KIND, Kind, base_from_civitai

__all__ = [
    "CivitaiFile",
    "CivitaiImage",
    "CivitaiModel",
    "CivitaiVersion",
    "RecommendedSettings",
    "SearchPage",
]

#: Civitai hash names in the order we show them.
HASH_ORDER = ("SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3")


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CivitaiFile(_ToDict):
    """One file of a model version."""

    id: int
    name: str
    #: Bytes, from ``sizeKB`` (KiB, a float); None when unknown.
    size: int | None
    #: ModelFileType: Model, Pruned Model, VAE, Config, Training Data, Negative...
    type: str
    #: SafeTensor, PickleTensor, GGUF, Diffusers, ...
    format: str | None = None
    #: "full" or "pruned" (Civitai's ``metadata.size``).
    weights: str | None = None
    #: fp16, fp32, bf16, fp8...
    fp: str | None = None
    quant_type: str | None = None
    primary: bool = False
    #: Civitai hash name (SHA256, AutoV1, AutoV2, AutoV3, CRC32, BLAKE3) -> uppercase hex.
    hashes: Mapping[str, str] = field(default_factory=dict)
    pickle_scan: str | None = None
    pickle_scan_message: str | None = None
    virus_scan: str | None = None
    scanned_at: str | None = None
    download_url: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CivitaiFile:
        meta = _dict(data.get("metadata"))
        size_kb = _float(data.get("sizeKB"))
        hashes = {
            str(k): str(v).upper()
            for k, v in _dict(data.get("hashes")).items()
            if isinstance(v, str) and v
        }
        return cls(
            id=_int(data.get("id")) or 0,
            name=_str(data.get("overrideName")) or _str(data.get("name")) or "",
            size=round(size_kb * 1024) if size_kb is not None and 0 <= size_kb < _MAX_KB else None,
            type=_str(data.get("type")) or "Model",
            format=_str(meta.get("format")),
            weights=_str(meta.get("size")),
            fp=_str(meta.get("fp")),
            quant_type=_str(meta.get("quantType")),
            primary=_bool(data.get("primary")),
            hashes=dict(sorted(hashes.items(), key=lambda kv: _hash_rank(kv[0]))),
            pickle_scan=_str(data.get("pickleScanResult")),
            pickle_scan_message=_str(data.get("pickleScanMessage")),
            virus_scan=_str(data.get("virusScanResult")),
            scanned_at=_str(data.get("scannedAt")),
            download_url=_str(data.get("downloadUrl")),
        )

    def hash(self, kind: str) -> str | None:
        """A published hash by name, case-insensitive (``sha256``, ``AutoV2``...)."""
        for k, v in self.hashes.items():
            if k.lower() == kind.lower():
                return v
        return None

    @property
    def sha256(self) -> str | None:
        return self.hash("SHA256")


#: 1 PiB in KiB: a larger ``sizeKB`` is not a file size (the size counts as unknown).
_MAX_KB = float(1 << 40)


def _hash_rank(name: str) -> int:
    try:
        return HASH_ORDER.index(name)
    except ValueError:
        return len(HASH_ORDER)


@dataclass(frozen=True)
class CivitaiImage(_ToDict):
    """A preview or example image, with its generation metadata when the API sent it."""

    url: str
    width: int | None = None
    height: int | None = None
    #: Bitmask (PG=1, PG13=2, R=4, X=8, XXX=16, Blocked=32); None if unknown.
    nsfw_level: int | None = None
    nsfw: bool = False
    id: int | None = None
    #: Free-form generation metadata (prompt, sampler, "Clip skip"...), or None.
    meta: Mapping[str, Any] | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CivitaiImage:
        level = data.get("nsfwLevel")
        nsfw_level = _int(level) if not isinstance(level, str) else _LEVEL_NAMES.get(level)
        if isinstance(level, str) and nsfw_level is None:
            nsfw_level = _int(level)
        nsfw = data.get("nsfw")
        meta = data.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("meta"), dict) and "id" in meta:
            meta = meta["meta"]  # the /images legacy path wraps it: {"id": .., "meta": {..}}
        return cls(
            url=_str(data.get("url")) or "",
            width=_int(data.get("width")),
            height=_int(data.get("height")),
            nsfw_level=nsfw_level,
            nsfw=_image_nsfw(nsfw, nsfw_level),
            id=_int(data.get("id")),
            meta=dict(meta) if isinstance(meta, dict) else None,
        )


def _image_nsfw(flag: Any, level: int | None) -> bool:
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, str):  # the 2023 enum: None, Soft, Mature, X
        return flag not in {"None", "false", ""}
    return level is not None and level > 1  # anything above PG


_LEVEL_NAMES = {"None": 1, "Soft": 2, "Mature": 4, "X": 8, "Blocked": 32}


@dataclass(frozen=True)
class CivitaiVersion(_ToDict):
    """A model version: what ``/model-versions/{id}`` and ``modelVersions[]`` describe."""

    id: int
    name: str
    model_id: int | None = None
    #: Civitai's baseModel name ("SD 1.5", "SDXL 1.0", "Pony"...).
    base_model: str | None = None
    #: Our weights family for it (sd1, sdxl...).
    base: str = "unknown"
    base_model_type: str | None = None
    trained_words: tuple[str, ...] = ()
    description: str | None = None
    created_at: str | None = None
    published_at: str | None = None
    updated_at: str | None = None
    status: str | None = None
    availability: str | None = None
    nsfw_level: int | None = None
    #: ISO date until which downloads need early/paid access; None if none is active.
    early_access_ends: str | None = None
    download_count: int | None = None
    thumbs_up_count: int | None = None
    files: tuple[CivitaiFile, ...] = ()
    images: tuple[CivitaiImage, ...] = ()
    download_url: str | None = None
    #: The AIR the API reports (only ``/model-versions/*`` sends it).
    air: str | None = None
    #: From the version's ``model`` object (``/model-versions/*`` only).
    model_name: str | None = None
    model_type: str | None = None
    #: The JSON object as the API sent it (what ``.civitai.info`` sidecars hold).
    raw: Mapping[str, Any] = field(
        default_factory=dict, repr=False, compare=False, metadata={"json": False}
    )

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, model_id: int | None = None) -> CivitaiVersion:
        stats = _dict(data.get("stats"))
        model = _dict(data.get("model"))
        base_model = _str(data.get("baseModel"))
        return cls(
            id=_int(data.get("id")) or 0,
            name=_str(data.get("name")) or "",
            model_id=_int(data.get("modelId")) or model_id,
            base_model=base_model,
            base=base_from_civitai(base_model).value,
            base_model_type=_str(data.get("baseModelType")),
            trained_words=_strs(data.get("trainedWords")),
            description=_str(data.get("description")),
            created_at=_str(data.get("createdAt")),
            published_at=_str(data.get("publishedAt")),
            updated_at=_str(data.get("updatedAt")),
            status=_str(data.get("status")),
            availability=_str(data.get("availability")),
            nsfw_level=_int(data.get("nsfwLevel")),
            early_access_ends=_early_access(data),
            download_count=_int(stats.get("downloadCount")),
            thumbs_up_count=_int(stats.get("thumbsUpCount")),
            files=tuple(
                CivitaiFile.from_api(f) for f in _list(data.get("files")) if isinstance(f, dict)
            ),
            images=tuple(
                CivitaiImage.from_api(i) for i in _list(data.get("images")) if isinstance(i, dict)
            ),
            download_url=_str(data.get("downloadUrl")),
            air=_str(data.get("air")),
            model_name=_str(model.get("name")),
            model_type=_str(model.get("type")),
            raw=dict(data),
        )

    @property
    def primary_file(self) -> CivitaiFile | None:
        """The primary file; when none is flagged, the first model-type file."""
        for f in self.files:
            if f.primary:
                return f
        for f in self.files:
            if f.type in _MODEL_FILE_TYPES:
                return f
        return self.files[0] if self.files else None

    @property
    def recommended(self) -> RecommendedSettings:
        """Settings voted from the metadata of the images this record carries."""
        return RecommendedSettings.from_metas(i.meta for i in self.images if i.meta)


_MODEL_FILE_TYPES = ("Model", "Pruned Model", "Diffusion Model", "UNet")


def _early_access(data: Mapping[str, Any]) -> str | None:
    """The end of early access from any of the three generations of fields."""
    paid = data.get("paidAccess")
    if isinstance(paid, dict) and not _bool(paid.get("permanent")):
        ends = _str(paid.get("endsAt"))
        if ends:
            return ends
    for key in ("earlyAccessDeadline", "earlyAccessEndsAt"):
        ends = _str(data.get(key))
        if ends:
            return ends
    config = _dict(data.get("earlyAccessConfig"))
    ends = _str(config.get("endsAt")) or _str(config.get("timeframeEndsAt"))
    if ends:
        return ends
    # 2022-23: only a number of days (earlyAccessTimeFrame) relative to publication.
    return None


@dataclass(frozen=True)
class CivitaiModel(_ToDict):
    """A model with its versions (``/models`` items and ``/models/{id}``)."""

    id: int
    name: str
    #: Civitai ModelType (Checkpoint, LORA, LoCon, TextualInversion...).
    type: str
    #: Our kind for that type (checkpoint, lora, lycoris, embedding...).
    kind: str = "unknown"
    description: str | None = None
    nsfw: bool = False
    nsfw_level: int | None = None
    poi: bool = False
    availability: str | None = None
    #: "Archived" or "TakenDown" when set.
    mode: str | None = None
    creator: str | None = None
    tags: tuple[str, ...] = ()
    allow_commercial_use: tuple[str, ...] = ()
    allow_no_credit: bool | None = None
    allow_derivatives: bool | None = None
    allow_different_license: bool | None = None
    download_count: int | None = None
    thumbs_up_count: int | None = None
    thumbs_down_count: int | None = None
    comment_count: int | None = None
    base_models: tuple[str, ...] = ()
    versions: tuple[CivitaiVersion, ...] = ()

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CivitaiModel:
        stats = _dict(data.get("stats"))
        model_id = _int(data.get("id")) or 0
        mtype = _str(data.get("type")) or "Other"
        versions = tuple(
            CivitaiVersion.from_api(v, model_id=model_id)
            for v in _list(data.get("modelVersions"))
            if isinstance(v, dict)
        )
        versions = tuple(
            dataclasses.replace(v, model_name=v.model_name or _str(data.get("name")),
                                model_type=v.model_type or mtype)
            for v in versions
        )  # fmt: skip
        base_models = _strs(data.get("baseModels")) or tuple(
            dict.fromkeys(v.base_model for v in versions if v.base_model)
        )
        return cls(
            id=model_id,
            name=_str(data.get("name")) or "",
            type=mtype,
            kind=CIVITAI_TYPE_TO_KIND.get(mtype, Kind.UNKNOWN).value,
            description=_str(data.get("description")),
            nsfw=_bool(data.get("nsfw")),
            nsfw_level=_int(data.get("nsfwLevel")),
            poi=_bool(data.get("poi")),
            availability=_str(data.get("availability")),
            mode=_str(data.get("mode")),
            creator=_str(_dict(data.get("creator")).get("username")),
            tags=_tags(data.get("tags")),
            allow_commercial_use=commercial_use(data.get("allowCommercialUse")),
            allow_no_credit=_opt_bool(data.get("allowNoCredit")),
            allow_derivatives=_opt_bool(data.get("allowDerivatives")),
            allow_different_license=_opt_bool(data.get("allowDifferentLicense")),
            download_count=_int(stats.get("downloadCount")),
            thumbs_up_count=_int(stats.get("thumbsUpCount")),
            thumbs_down_count=_int(stats.get("thumbsDownCount")),
            comment_count=_int(stats.get("commentCount")),
            base_models=base_models,
            versions=versions,
        )

    @property
    def latest(self) -> CivitaiVersion | None:
        """The newest version by publication date (``sdlib.sources.versions.newest``).

        Not simply the first listed: Civitai lists versions in the creator's order, and a
        creator can pin an older version to the top.
        """
        return newest(self.versions)

    @property
    def newest_available(self) -> CivitaiVersion | None:
        """The newest version whose early access is over (what anyone can download), or
        the newest of all when every version is in early access."""
        ordered = newest_first(self.versions)
        free = [v for v in ordered if not early_access_active(v.early_access_ends)]
        return free[0] if free else (ordered[0] if ordered else None)

    def early_access_newer(self, than: CivitaiVersion) -> tuple[CivitaiVersion, ...]:
        """Versions newer than ``than`` still in early access (newest first)."""
        ordered = newest_first(self.versions)
        ids = [v.id for v in ordered]
        end = ids.index(than.id) if than.id in ids else len(ordered)
        return tuple(v for v in ordered[:end] if early_access_active(v.early_access_ends))

    @property
    def versions_newest_first(self) -> tuple[CivitaiVersion, ...]:
        return tuple(newest_first(self.versions))

    @property
    def updated(self) -> str | None:
        """When the newest version was published (ISO), for "updated" columns."""
        dates = [v.published_at or v.created_at for v in self.versions]
        real = [d for d in dates if d]
        return max(real) if real else None

    def version(self, version_id: int) -> CivitaiVersion | None:
        for v in self.versions:
            if v.id == version_id:
                return v
        return None


def _tags(value: Any) -> tuple[str, ...]:
    out = []
    for t in _list(value):
        if isinstance(t, str):
            out.append(t)
        elif isinstance(t, dict) and isinstance(t.get("name"), str):
            out.append(t["name"])  # older payloads: [{"name": ...}]
    return tuple(out)


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


@dataclass(frozen=True)
class SearchPage(_ToDict):
    """One page of ``/models``: possibly short or empty even when more pages follow."""

    items: tuple[CivitaiModel, ...]
    next_cursor: str | None
    #: Set on the last page of a walk that ``PageGuard`` cut short: why (one line).
    stopped: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SearchPage:
        meta = _dict(data.get("metadata"))
        return cls(
            items=tuple(
                CivitaiModel.from_api(m) for m in _list(data.get("items")) if isinstance(m, dict)
            ),
            next_cursor=normalise_cursor(meta.get("nextCursor")),
        )
