"""Civitai's API endpoints for the demo server: routing-free request -> JSON logic.

``CivitaiApi`` answers one request (given the handler that received it) with Civitai's
response shapes, quirks and errors (reference civitai-api.md sections 1-3): paging with
cursors and post-filtering, the list/detail differences, ZodError bodies, the download
endpoint's checks and file selection. The HTTP plumbing and faults live in ``server``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from sdlib.demo.catalogue import FileSpec, ModelSpec, VersionSpec
from sdlib.taxonomy import CIVITAI_SORTS, CIVITAI_TYPES

if TYPE_CHECKING:
    from sdlib.demo._handler import _Handler

_CIVITAI_TYPES = CIVITAI_TYPES
_FILE_TYPES = (
    "Model",
    "Text Encoder",
    "Vision Encoder",
    "Pruned Model",
    "Negative",
    "Training Data",
    "VAE",
    "Config",
    "Archive",
    "UNet",
    "Diffusion Model",
    "CLIPVision",
    "ControlNet",
    "Workflow",
    "Upscaler",
    "Enhancement LoRA",
    "Other",
)
_FORMATS = ("SafeTensor", "PickleTensor", "GGUF", "Diffusers", "Core ML", "ONNX", "Other")
_SORTS = CIVITAI_SORTS
_PERIODS = {"AllTime": None, "Year": 365, "Month": 30, "Week": 7, "Day": 1}
_BOOL_TRUE = {"true", "1", "yes", "on", "y", "enabled"}
_BOOL_FALSE = {"false", "0", "no", "off", "n", "disabled"}
_AIR_TYPES = {
    "Checkpoint": "checkpoint",
    "TextualInversion": "embedding",
    "LORA": "lora",
    "LoCon": "lycoris",
    "DoRA": "dora",
    "Hypernetwork": "hypernet",
    "VAE": "vae",
    "Controlnet": "controlnet",
    "Upscaler": "upscaler",
}
_BLURHASH = "U8Civ__MTeSP?utJ9IDj?^Ek=}RQyEE1-Vr="
PUBLIC_CACHE = "public, s-maxage=300, stale-while-revalidate=150"


class Reply(Exception):
    """Raised to answer early with a JSON (or text) error."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _zod(path: str, message: str) -> Reply:
    issues = [{"code": "custom", "path": [path], "message": message}]
    return Reply(400, {"error": {"name": "ZodError", "message": json.dumps(issues)}})


def _air_ecosystem(base_model: str) -> str:
    name = base_model.lower()
    if name.startswith("sd 1."):
        return "sd1"
    if name.startswith("sd 2."):
        return "sd2"
    if name.startswith("sdxl") or name in {"pony", "illustrious", "noobai"}:
        return "sdxl"
    if name.startswith("flux.1"):
        return "flux1"
    return "other"


class CivitaiApi:
    """JSON for the API endpoints, shaped like Civitai's (list vs detail differences)."""

    def __init__(self, handler: _Handler) -> None:
        self.h = handler
        self.demo = handler.demo
        self.origin = handler.origin

    # -- shaping ------------------------------------------------------------------------------

    def file_json(self, version: VersionSpec, spec: FileSpec, *, detail: bool) -> dict[str, Any]:
        served = self.demo.files[spec.id]
        meta: dict[str, Any] = {"format": spec.format, "size": spec.size, "fp": spec.fp}
        if spec.format == "PickleTensor":
            pickle_msg = (
                "**Detected Pickle imports (4)**\n```\ncollections.OrderedDict\n"
                "torch.HalfStorage\ntorch.FloatStorage\ntorch._utils._rebuild_tensor_v2\n```"
            )
        else:
            pickle_msg = None
        out: dict[str, Any] = {
            "id": spec.id,
            "sizeKB": served.size / 1024,
            "name": spec.name,
            "type": spec.type,
            "pickleScanResult": "Success",
            "pickleScanMessage": pickle_msg,
            "virusScanResult": "Success",
            "virusScanMessage": None,
            "scannedAt": version.published_at,
            "metadata": meta if not detail else {k: v for k, v in meta.items() if v is not None},
            "hashes": self.demo.published_hashes(spec.id),
            "downloadUrl": self.download_url(version, spec),
        }
        if detail:
            out["primary"] = spec.primary
        elif spec.primary:
            out["primary"] = True  # the list omits it (rather than false) on other files
        return out

    def download_url(self, version: VersionSpec, spec: FileSpec) -> str:
        url = f"{self.origin}/api/download/models/{version.id}"
        if spec.primary:
            return url
        params = {"type": spec.type, "format": spec.format, "size": spec.size, "fp": spec.fp}
        return url + "?" + urlencode({k: v for k, v in params.items() if v})

    def image_json(self, version: VersionSpec, index: int, *, detail: bool) -> dict[str, Any]:
        image = version.images[index]
        out: dict[str, Any] = {
            "url": f"{self.demo.storage_url}/images/{image.id}.png",
            "nsfwLevel": image.nsfw_level,
            "width": image.width,
            "height": image.height,
            "hash": _BLURHASH,
            "type": "image",
            "minor": False,
            "poi": False,
            "hasMeta": image.meta is not None,
            "hasPositivePrompt": bool(image.meta and image.meta.get("prompt")),
            "onSite": False,
            "remixOfId": None,
        }
        if detail:  # /model-versions: metadata, availability and meta; no id
            out["metadata"] = {
                "hash": _BLURHASH,
                "size": 123_456,
                "width": image.width,
                "height": image.height,
            }
            out["availability"] = "Public"
            out["meta"] = dict(image.meta) if image.meta else None
        else:
            out = {"id": image.id, **out}
        return out

    def early_access(self, version: VersionSpec) -> dict[str, Any] | None:
        if (
            version.early_access_ends
            and parse_date(version.early_access_ends).timestamp() > time.time()
        ):
            return {"permanent": False, "endsAt": version.early_access_ends}
        return None

    def version_list_json(
        self, model: ModelSpec, version: VersionSpec, index: int, primary_only: bool
    ) -> dict[str, Any]:
        files = [f for f in version.files if f.primary or not primary_only]
        paid = self.early_access(version)
        out: dict[str, Any] = {
            "id": version.id,
            "index": index,
            "name": version.name,
            "baseModel": version.base_model,
            "baseModelType": version.base_model_type,
            "publishedAt": version.published_at,
            "flags": 0,
            "availability": "Public",
            "nsfwLevel": version.nsfw_level,
            "description": version.description,
            "trainedWords": list(version.trained_words),
            "vaeId": None,
            "paidAccess": paid,
            "stats": {
                "downloadCount": version.download_count,
                "thumbsUpCount": version.thumbs_up,
                "thumbsDownCount": 0,
            },
            "supportsGeneration": False,
            "files": [self.file_json(version, f, detail=False) for f in files],
            "images": [
                self.image_json(version, i, detail=False) for i in range(len(version.images))
            ],
            "downloadUrl": f"{self.origin}/api/download/models/{version.id}",
        }
        if paid:
            out["earlyAccessDeadline"] = paid["endsAt"]
        return out

    def model_json(
        self,
        model: ModelSpec,
        versions: Sequence[VersionSpec],
        *,
        detail: bool,
        primary_only: bool = False,
    ) -> dict[str, Any]:
        vjson = []
        listed = self.demo.listed_versions(model)  # Civitai's ``index`` order
        for version in sorted(versions, key=listed.index):
            index = listed.index(version)
            v = self.version_list_json(model, version, index, primary_only)
            if detail:
                v["status"] = "Published"
                v["createdAt"] = version.published_at
                v["covered"] = False
                del v["supportsGeneration"]
                v = _remove_empty(v)
            vjson.append(v)
        out: dict[str, Any] = {
            "id": model.id,
            "name": model.name,
            "description": model.description,
            "allowNoCredit": True,
            "allowCommercialUse": list(model.allow_commercial_use),
            "allowDerivatives": True,
            "allowDifferentLicense": True,
            "type": model.type,
            "minor": False,
            "sfwOnly": False,
            "poi": model.poi,
            "nsfw": model.nsfw,
            "nsfwLevel": model.nsfw_level,
            "availability": "Public",
            "userId": 10_000 + sum(map(ord, model.creator)),
            "baseModels": list(dict.fromkeys(v.base_model for v in versions)),
            "cosmetic": None,
            "supportsGeneration": False,
            "stats": {
                "downloadCount": model.downloads,
                "thumbsUpCount": model.thumbs_up,
                "thumbsDownCount": model.thumbs_down,
                "commentCount": model.comments,
                "tippedAmountCount": 0,
            },
            "creator": {"username": model.creator, "image": None},
            "tags": list(model.tags),
            "modelVersions": vjson,
        }
        if model.mode:
            out["mode"] = model.mode
        return out

    def version_detail_json(self, model: ModelSpec, version: VersionSpec) -> dict[str, Any]:
        archived = model.mode == "Archived"
        air_type = _AIR_TYPES.get(model.type, "unknown")
        out: dict[str, Any] = {
            "id": version.id,
            "modelId": model.id,
            "name": version.name,
            "nsfwLevel": version.nsfw_level,
            "createdAt": version.published_at,
            "updatedAt": version.published_at,
            "status": "Published",
            "publishedAt": version.published_at,
            "trainedWords": list(version.trained_words),
            "trainingStatus": None,
            "trainingDetails": None,
            "baseModel": version.base_model,
            "baseModelType": version.base_model_type,
            "description": version.description,
            "uploadType": "Created",
            "usageControl": "Download",
            "licensingFee": None,
            "paidAccess": self.early_access(version),
            "air": f"urn:air:{_air_ecosystem(version.base_model)}:{air_type}:civitai:"
            f"{model.id}@{version.id}",
            "stats": {"downloadCount": version.download_count, "thumbsUpCount": version.thumbs_up},
            "model": {
                "name": model.name,
                "type": model.type,
                "nsfw": model.nsfw,
                "poi": model.poi,
                **({"mode": model.mode} if model.mode else {}),
            },
            "files": []
            if archived
            else [self.file_json(version, f, detail=True) for f in version.files],
            "images": [
                self.image_json(version, i, detail=True)
                for i in range(min(10, len(version.images)))
            ],
        }
        if not archived:
            out["downloadUrl"] = f"{self.origin}/api/download/models/{version.id}"
        return out

    # -- endpoints ----------------------------------------------------------------------------

    def _bool_param(self, name: str) -> bool | None:
        value = self.h._q(name)
        if value is None:
            return None
        low = value.strip().lower()
        if low in _BOOL_TRUE:
            return True
        if low in _BOOL_FALSE:
            return False
        raise _zod(name, "Invalid input: expected boolean string")

    def _int_param(self, name: str, lo: int, hi: int) -> int | None:
        value = self.h._q(name)
        if value is None or value == "":
            return None
        try:
            number = int(float(value))
        except ValueError:
            raise _zod(name, "Invalid input: expected number") from None
        if not lo <= number <= hi:
            raise _zod(name, f"Number must be between {lo} and {hi}")
        return number

    def models(self) -> dict[str, Any]:
        q = self.h.query
        for forbidden in (
            "browsingLevel",
            "allowNoCredit",
            "allowDerivatives",
            "allowDifferentLicense",
        ):
            if forbidden in q:
                raise _zod(forbidden, "Invalid input: expected boolean, received string")
        if ("favorites" in q or "hidden" in q) and not self.h._logged_in():
            raise Reply(401, {"error": "Unauthorized"})
        limit = self._int_param("limit", 0, 100)
        limit = 100 if limit is None else limit
        page = self._int_param("page", 1, 1_000_000)
        query = (self.h._q("query") or "").strip()
        if page is not None and query:
            raise Reply(
                400,
                {"error": "Cannot use page param with query search. Use cursor-based pagination."},
            )
        if page is not None and page * limit > 1000:
            raise Reply(
                429, {"error": "You've requested too many pages, please use cursors instead"}
            )
        types = q.get("types", [])
        for t in types:
            if t not in _CIVITAI_TYPES:
                raise _zod("types", f"Invalid option: expected one of {'|'.join(_CIVITAI_TYPES)}")
        sort = self.h._q("sort") or "Highest Rated"
        if sort not in _SORTS:
            raise _zod("sort", f"Invalid option: expected one of {'|'.join(_SORTS)}")
        period = self.h._q("period") or "AllTime"
        if period not in _PERIODS:
            raise _zod("period", f"Invalid option: expected one of {'|'.join(_PERIODS)}")
        nsfw = bool(self._bool_param("nsfw"))
        primary_only = bool(self._bool_param("primaryFileOnly"))
        base_models = q.get("baseModels", [])
        tag = self.h._q("tag") or self.h._q("tagname")
        username = self.h._q("username") or self.h._q("user")
        archived = bool(self.h._q("archived"))  # z.coerce.boolean: "false" is true
        ids = {int(i) for v in q.get("ids", []) for i in v.split(",") if i.strip().isdigit()}

        models = [m for m in self.demo.catalogue if archived or m.mode != "Archived"]
        if username is not None:
            slug = username.lower()
            if not any(m.creator.lower() == slug for m in self.demo.catalogue):
                raise Reply(404, {"message": "User not found"})
            models = [m for m in models if m.creator.lower() == slug]
        if not nsfw:
            models = [m for m in models if m.nsfw_level & 1 and not m.nsfw]
        if types:
            models = [m for m in models if m.type in types]
        if tag and any(tag.lower() in (t.lower() for t in m.tags) for m in self.demo.catalogue):
            models = [m for m in models if tag.lower() in (t.lower() for t in m.tags)]
        if ids and not query:
            models = [m for m in models if m.id in ids]
        days = _PERIODS[period]
        if days is not None:
            since = self.demo.now - timedelta(days=days)
            models = [m for m in models if parse_date(_last_version_at(m)) >= since]

        if query:
            ranked = [(r, m) for m in models if (r := _relevance(m, query)) > 0]
            ranked.sort(key=lambda rm: (-rm[0], -_downloads(rm[1])))
            ordered = [m for _, m in ranked]
            start = 0
            cursor = self.h._q("cursor")
            if cursor:
                if not cursor.isdigit():
                    raise Reply(400, {"message": f"Invalid cursor: {cursor}"})
                start = int(cursor)
            chunk = ordered[start : start + limit]
            next_cursor = str(start + limit) if start + limit < len(ordered) else None
        else:
            key = _SORT_KEYS[sort]
            ordered = sorted(models, key=lambda m: (key(m), m.id), reverse=sort != "Oldest")
            start = 0
            cursor = self.h._q("cursor")
            if cursor:
                parts = cursor.split("|")
                if len(parts) != 2 or not parts[1].isdigit():
                    raise Reply(
                        400,
                        {
                            "message": "Invalid cursor: expected 2 value(s) "
                            f"separated by '|', got {cursor!r}"
                        },
                    )
                wanted = int(parts[1])
                start = next((i for i, m in enumerate(ordered) if m.id == wanted), len(ordered))
            chunk = ordered[start : start + limit]
            following = ordered[start + limit] if start + limit < len(ordered) else None
            next_cursor = f"{_cursor_value(key(following))}|{following.id}" if following else None

        items = []
        for model in chunk:
            versions = list(model.versions)
            if base_models:
                versions = [v for v in versions if v.base_model in base_models]
                if not versions:
                    continue  # filtered after paging: pages come out short, even empty
            items.append(self.model_json(model, versions, detail=False, primary_only=primary_only))
        metadata: dict[str, Any] = {}
        if next_cursor is not None:
            metadata["nextCursor"] = next_cursor
            pairs = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs]
            pairs.append(("cursor", next_cursor))
            metadata["nextPage"] = f"{self.origin}/api/v1/models?{urlencode(pairs)}"
        if page is not None:
            metadata["currentPage"] = page
            metadata["pageSize"] = limit
        return {"items": items, "metadata": metadata}

    def model(self, raw_id: str) -> dict[str, Any]:
        model_id = _path_id(raw_id)
        model = self.demo.model(model_id)
        if model is None:
            raise Reply(404, {"error": f"No model with id {model_id}"})
        return self.model_json(model, model.versions, detail=True)

    def version(self, raw_id: str) -> dict[str, Any]:
        version_id = _path_id(raw_id, zero_message="Missing modelVersionId")
        found = self.demo.version(version_id)
        if found is None or not found[1].nsfw_level & 31:
            raise Reply(404, {"error": "Model not found"})
        return self.version_detail_json(*found)

    def by_hash(self, raw: str) -> dict[str, Any]:
        value = raw.upper()
        matches = []
        for model, version in ((m, v) for m in self.demo.catalogue for v in m.versions):
            for f in version.files:
                if value in self.demo.published_hashes(f.id).values():
                    matches.append((version.published_at, version.id, model, version))
        if not matches:
            raise Reply(404, {"error": "Model not found"})
        matches.sort(key=lambda t: (t[0], t[1]))  # oldest published wins
        return self.version_detail_json(matches[0][2], matches[0][3])

    def by_hash_bulk(self, body: Any) -> list[dict[str, Any]]:
        """``POST /model-versions/by-hash``: up to 100 SHA256s; the versions of those found
        (SHA256 only; oldest published wins; unmatched hashes are dropped)."""
        ok = (
            isinstance(body, list)
            and 0 < len(body) <= 100
            and all(isinstance(h, str) and len(h) == 64 for h in body)
        )
        if not ok:
            raise Reply(400, {"error": "Request must include an array of SHA256 Hashes. "
                                       "Max 100 per request."})  # fmt: skip
        wanted = {h.upper() for h in body}
        best: dict[str, tuple[str, int, Any, Any]] = {}
        for model, version in ((m, v) for m in self.demo.catalogue for v in m.versions):
            for f in version.files:
                sha = self.demo.published_hashes(f.id).get("SHA256", "").upper()
                key = (version.published_at, version.id, model, version)
                if sha in wanted and (sha not in best or key[:2] < best[sha][:2]):
                    best[sha] = key
        seen: set[int] = set()
        out = []
        for _, version_id, model, version in sorted(best.values(), key=lambda t: t[:2]):
            if version_id not in seen:
                seen.add(version_id)
                out.append(self.version_detail_json(model, version))
        return out

    def images(self) -> dict[str, Any]:
        limit = self._int_param("limit", 0, 200)
        limit = 100 if limit is None else limit
        with_meta = bool(self._bool_param("withMeta"))
        version_id = self._int_param("modelVersionId", 0, 2**31)
        model_id = self._int_param("modelId", 0, 2**31)
        nsfw = self.h._q("nsfw")
        levels = {"None": 1, "Soft": 3, "Mature": 7, "X": 31, "Blocked": 63}
        if nsfw is None:
            allowed = 1
        elif nsfw in levels:
            allowed = levels[nsfw]
        else:
            flag = self._bool_param("nsfw")
            allowed = 60 if flag else 1  # true = mature levels only (#1224)
        rows = []
        for model, version in ((m, v) for m in self.demo.catalogue for v in m.versions):
            if version_id is not None and version.id != version_id:
                continue
            if model_id is not None and model.id != model_id:
                continue
            for image in version.images:
                if image.nsfw_level & allowed:
                    rows.append((model, version, image))
        start = 0
        cursor = self.h._q("cursor")
        if cursor:
            start = int(cursor) if cursor.isdigit() else 0
        chunk = rows[start : start + limit]
        items = []
        legacy = model_id is not None and version_id is None
        flat = self._bool_param("flatMeta")
        for model, version, image in chunk:
            meta: Any = dict(image.meta) if image.meta and with_meta else None
            if meta is not None and legacy and not flat:
                meta = {"id": image.id, "meta": meta}
            items.append(
                {
                    "id": image.id,
                    "url": f"{self.demo.storage_url}/images/{image.id}.png",
                    "hash": _BLURHASH,
                    "width": image.width,
                    "height": image.height,
                    "nsfwLevel": {1: "None", 2: "Soft", 4: "Mature"}.get(image.nsfw_level, "X"),
                    "type": "image",
                    "nsfw": image.nsfw_level > 1,
                    "browsingLevel": image.nsfw_level,
                    "createdAt": version.published_at,
                    "postId": image.id // 10,
                    "stats": {
                        "cryCount": 0,
                        "laughCount": 0,
                        "likeCount": 12,
                        "dislikeCount": 0,
                        "heartCount": 5,
                        "commentCount": 1,
                    },
                    "meta": meta,
                    "username": model.creator,
                    "baseModel": version.base_model,
                    "modelVersionIds": [version.id],
                }
            )
        metadata: dict[str, Any] = {}
        if start + limit < len(rows):
            metadata["nextCursor"] = str(start + limit)
            pairs = [(k, v) for k, vs in self.h.query.items() if k != "cursor" for v in vs]
            metadata["nextPage"] = (
                f"{self.origin}/api/v1/images?{urlencode([*pairs, ('cursor', str(start + limit))])}"
            )
        return {"items": items, "metadata": metadata}

    def enums(self) -> dict[str, Any]:
        bases = sorted({v.base_model for m in self.demo.catalogue for v in m.versions})
        return {
            "ModelType": list(_CIVITAI_TYPES),
            "ModelFileType": list(_FILE_TYPES),
            "ActiveBaseModel": bases,
            "BaseModel": bases,
            "BaseModelType": ["Standard", "Inpainting", "Refiner", "Pix2Pix"],
        }

    def download(self, raw_id: str) -> None:
        h = self.h
        browser = h._browser()

        def fail(status: int, body: dict[str, Any]) -> Reply:
            if browser:  # browser UAs get plain text, not JSON
                return Reply(status, str(body.get("message") or body.get("error")))
            return Reply(status, body)

        if not raw_id.isdigit():
            raise fail(400, {"error": "modelVersionId: Invalid input: expected number"})
        found = self.demo.version(int(raw_id))
        if found is None:
            raise fail(404, {"error": "File not found"})
        model, version = found
        ftype, fmt, size, fp = h._q("type"), h._q("format"), h._q("size"), h._q("fp")
        file_id = h._q("fileId")
        if ftype is not None and ftype not in _FILE_TYPES:
            raise fail(
                400, {"error": f"type: Invalid option: expected one of {'|'.join(_FILE_TYPES)}"}
            )
        if fmt is not None and fmt not in _FORMATS:
            raise fail(
                400, {"error": f"format: Invalid option: expected one of {'|'.join(_FORMATS)}"}
            )
        if size is not None and size not in ("full", "pruned"):
            raise fail(400, {"error": 'size: Invalid option: expected one of "full"|"pruned"'})
        if file_id is not None and not file_id.isdigit():
            raise fail(400, {"error": "fileId: Invalid input: expected number"})
        if model.mode == "Archived":
            raise fail(410, {"error": "Model archived, not available for download"})
        logged_in = h._logged_in()
        if version.require_auth and not logged_in:
            if browser:
                raise Reply(
                    307,
                    "",
                    {
                        "Location": f"{self.origin}/login?returnUrl="
                        f"{quote(h.path, safe='')}&reason=download-auth"
                    },
                )
            raise fail(
                401,
                {
                    "error": "Unauthorized",
                    "message": "The creator of this asset requires you to be logged in "
                    "to download it",
                },
            )
        paid = self.early_access(version)
        if paid and h._token() not in self.demo.early_access_tokens:
            if browser:
                raise Reply(307, "", {"Location": f"{self.origin}/model-versions/{version.id}"})
            raise fail(
                403,
                {
                    "error": "Early Access",
                    "deadline": paid["endsAt"],
                    "message": "This asset is in Early Access. You can use Buzz access it now!",
                },
            )
        chosen = _select_file(version, ftype, fmt, size, fp, int(file_id) if file_id else None)
        if chosen is None:
            raise fail(404, {"error": "File not found"})
        served = self.demo.files[chosen.id]
        location = self.demo.signed_url(served)
        h._send(
            307,
            b"",
            {"Location": location, "Cache-Control": "no-store, max-age=0"},
            ctype="text/plain",
        )


def _remove_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != ""}


def _path_id(raw: str, zero_message: str | None = None) -> int:
    if not raw.isdigit() or int(raw) > 2_147_483_647:
        raise Reply(400, {"error": "id: Invalid input: expected int, received NaN"})
    value = int(raw)
    if value == 0:
        raise Reply(400, {"error": zero_message or "id: Too small: expected number to be >=1"})
    return value


def _select_file(
    version: VersionSpec,
    ftype: str | None,
    fmt: str | None,
    size: str | None,
    fp: str | None,
    file_id: int | None,
) -> FileSpec | None:
    """Civitai's download file choice (reference section 2.9), independent of the client's."""
    if file_id is not None:
        return next((f for f in version.files if f.id == file_id), None)
    pool = [f for f in version.files if ftype is None or f.type == ftype]
    if not pool:
        return None
    want = (fmt or "SafeTensor", size or "pruned", fp or "fp16")

    def score(f: FileSpec) -> float:
        s = (100 if f.format == want[0] else -100) + (10 if f.size == want[1] else -10)
        s += 1 if f.fp == want[2] else -1
        return s + (1000 if f.type in ("Model", "Pruned Model", "Diffusion Model", "UNet") else 0)

    best = max(pool, key=score)
    if (fmt and best.format != fmt) or (size and best.size != size) or (fp and best.fp != fp):
        return None
    return best


def _last_version_at(model: ModelSpec) -> str:
    return max(v.published_at for v in model.versions)


def _downloads(model: ModelSpec) -> int:
    return model.downloads


_SORT_KEYS: dict[str, Callable[[ModelSpec], Any]] = {
    "Highest Rated": lambda m: m.thumbs_up,
    "Most Downloaded": lambda m: m.downloads,
    "Most Liked": lambda m: m.thumbs_up,
    "Most Discussed": lambda m: m.comments,
    "Most Collected": lambda m: m.downloads // 10,
    "Most Images": lambda m: sum(len(v.images) for v in m.versions),
    "Newest": _last_version_at,
    "Oldest": _last_version_at,
}


def _cursor_value(value: Any) -> str:
    return str(value)


def _relevance(model: ModelSpec, query: str) -> int:
    q = query.lower()
    name = model.name.lower()
    words = [w for w in re.split(r"\W+", q) if w]
    if name == q:
        return 100
    if name.startswith(q):
        return 80
    if q in name:
        return 60
    if words and all(w in name for w in words):
        return 50
    hay = " ".join([*model.tags, model.creator, *(v.name for v in model.versions)]).lower()
    if q in hay:
        return 20
    if words and all(w in name or w in hay for w in words):
        return 10
    return 0
