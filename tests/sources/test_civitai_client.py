"""Pure client logic over ``httpx2.MockTransport``: paging, parameters, errors, retries, tokens,
tolerant parsing of recorded real responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx2
import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.errors import (
    AccessDenied,
    AuthRequired,
    BadResponse,
    Gone,
    NotFound,
    RateLimited,
    SourceError,
    UsageError,
)
from sdlib.http import USER_AGENT, build_client
from sdlib.sources.civitai import CivitaiClient, raise_for_status
from sdlib.sources.civitai._choice import choose_file
from sdlib.sources.civitai._models import (
    CivitaiFile,
    CivitaiImage,
    CivitaiModel,
    CivitaiVersion,
    RecommendedSettings,
    SearchPage,
    commercial_use,
    normalise_cursor,
)
from tests.support.paths import SAMPLES

BASE = "https://civitai.test"
Handler = Callable[[httpx2.Request], httpx2.Response]


def make(
    handler: Handler, *, token: str | None = None, retries: int = 2,
    sleeps: list[float] | None = None,
) -> CivitaiClient:  # fmt: skip
    settings = replace(
        Settings(),
        civitai=CivitaiSettings(base_url=BASE, token=token),
        network=NetworkSettings(retries=retries, backoff_max=5.0),
    )
    record = sleeps.append if sleeps is not None else (lambda _s: None)
    http = build_client(settings, httpx2.MockTransport(handler), sleep=record)
    return CivitaiClient(http, base_url=BASE)


def model_json(model_id: int, name: str = "m", base: str = "SD 1.5") -> dict[str, Any]:
    return {
        "id": model_id, "name": name, "type": "Checkpoint",
        "modelVersions": [{"id": model_id * 10, "name": "v1", "baseModel": base,
                           "publishedAt": "2023-01-01T00:00:00Z", "files": []}],
    }  # fmt: skip


# --- paging and parameters -------------------------------------------------------------------


def test_search_follows_cursors_through_short_and_empty_pages() -> None:
    pages = {
        None: {"items": [model_json(1), model_json(2)], "metadata": {"nextCursor": "a|1"}},
        "a|1": {"items": [], "metadata": {"nextCursor": 17}},  # empty page, numeric cursor
        "17": {"items": [model_json(3)], "metadata": {"nextCursor": "c"}},  # short page
        "c": {"items": [model_json(4)], "metadata": {}},
    }
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=pages[request.url.params.get("cursor")])

    with make(handler) as civ:
        ids = [m.id for m in civ.search("x")]
    assert ids == [1, 2, 3, 4]
    assert [r.url.params.get("cursor") for r in seen] == [None, "a|1", "17", "c"]


def test_search_is_lazy_and_stops_at_limit() -> None:
    calls = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        start = int(request.url.params.get("cursor") or 0)
        items = [model_json(i) for i in range(start + 1, start + 4)]
        return httpx2.Response(200, json={"items": items,
                                         "metadata": {"nextCursor": str(start + 3)}})  # fmt: skip

    with make(handler) as civ:
        it = civ.search()
        assert next(it).id == 1
        assert calls == 1
        assert [m.id for m in civ.search(limit=5)] == [1, 2, 3, 4, 5]


def test_search_stops_on_a_repeated_cursor_and_skips_repeated_items() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"items": [model_json(1)],
                                         "metadata": {"nextCursor": "same"}})  # fmt: skip

    with make(handler) as civ:
        assert [m.id for m in civ.search()] == [1]


def test_search_sends_repeated_types_and_base_models() -> None:
    captured: list[httpx2.URL] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        captured.append(request.url)
        return httpx2.Response(200, json={"items": [], "metadata": {}})

    with make(handler) as civ:
        list(civ.search("anime girl", types=["LORA", "LoCon"], base_models=["SD 1.5", "Pony"],
                        sort="Most Downloaded", period="Week", nsfw=True, limit=7))  # fmt: skip
    params = captured[0].params
    assert params.get_list("types") == ["LORA", "LoCon"]
    assert params.get_list("baseModels") == ["SD 1.5", "Pony"]
    assert params["query"] == "anime girl"
    assert params["sort"] == "Most Downloaded"
    assert params["period"] == "Week"
    assert params["nsfw"] == "true"
    assert params["limit"] == "7"
    assert "page" not in params
    assert captured[0].path == "/api/v1/models"


def test_search_rejects_bad_sort_and_period() -> None:
    with make(lambda r: httpx2.Response(200, json={})) as civ:
        with pytest.raises(UsageError):
            list(civ.search(sort="Best"))
        with pytest.raises(UsageError):
            list(civ.search(period="Decade"))


# --- errors ----------------------------------------------------------------------------------


def _fixed(status: int, body: Any = None, headers: dict[str, str] | None = None,
           content: bytes | None = None) -> Handler:  # fmt: skip
    def handler(request: httpx2.Request) -> httpx2.Response:
        if content is not None:
            return httpx2.Response(status, content=content, headers=headers)
        return httpx2.Response(status, json=body, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "error", "code", "words"),
    [
        (401, {"error": "Unauthorized"}, AuthRequired, 6, "CIVITAI_TOKEN"),
        (403, {"error": "Early Access", "deadline": "2030-01-01T00:00:00.000Z"}, AccessDenied,
         6, "2030-01-01"),
        (403, {"error": "Forbidden"}, AccessDenied, 6, "access denied"),
        (404, {"error": "Model not found"}, NotFound, 5, "not found"),
        (410, {"error": "Model archived, not available for download"}, Gone, 5, "archived"),
        (400, {"error": {"name": "ZodError",
                         "message": json.dumps([{"path": ["types"], "message": "Invalid"}])}},
         SourceError, 7, "types: Invalid"),
        (500, {"message": "An unexpected error occurred"}, SourceError, 7, "HTTP 500"),
    ],
)  # fmt: skip
def test_statuses_map_to_errors(
    status: int, body: Any, error: type[Exception], code: int, words: str
) -> None:
    with make(_fixed(status, body)) as civ, pytest.raises(error) as info:
        civ.version(128713)
    assert info.value.exit_code == code  # type: ignore[attr-defined]
    assert words in str(info.value)
    assert "128713" in str(info.value)


def test_early_access_keeps_its_end_date() -> None:
    body = {"error": "Early Access", "deadline": "2030-01-01T00:00:00.000Z"}
    with make(_fixed(403, body)) as civ, pytest.raises(AccessDenied) as info:
        civ.model(1)
    assert info.value.early_access_ends == "2030-01-01T00:00:00.000Z"


@pytest.mark.parametrize("status", [200, 503])
def test_html_instead_of_json_is_a_bad_response(status: int) -> None:
    page = b"<!DOCTYPE html><html><body>Just a moment...</body></html>"
    handler = _fixed(status, content=page, headers={"Content-Type": "text/html"})
    with make(handler, retries=1) as civ, pytest.raises(BadResponse) as info:
        civ.model(1)
    assert "HTML" in str(info.value)
    assert info.value.exit_code == 7


def test_non_json_body_is_a_bad_response() -> None:
    with make(_fixed(200, content=b"\x00\x01garbage")) as civ, pytest.raises(BadResponse):
        civ.model(1)


def test_429_and_503_are_retried_with_backoff_honouring_retry_after() -> None:
    answers = [
        httpx2.Response(429, json={"error": "slow down"}, headers={"Retry-After": "3"}),
        httpx2.Response(503, json={"error": "busy"}),
        httpx2.Response(200, json=model_json(5)),
    ]
    sleeps: list[float] = []
    with make(lambda r: answers.pop(0), retries=3, sleeps=sleeps) as civ:
        assert civ.model(5).id == 5
    assert sleeps[0] == 3.0  # Retry-After honoured
    assert 2.0 <= sleeps[1] <= 2.3  # then exponential: 2 ** attempt (+ jitter)


def test_rate_limit_after_retries_is_rate_limited_exit_7() -> None:
    sleeps: list[float] = []
    handler = _fixed(429, {"error": "too many"}, {"Retry-After": "60"})
    with make(handler, retries=2, sleeps=sleeps) as civ, pytest.raises(RateLimited) as info:
        civ.model(5)
    assert info.value.exit_code == 7
    assert info.value.retry_after == 60
    assert sleeps == [5.0, 5.0]  # capped at backoff_max


def test_connection_errors_are_retried_then_translated() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    sleeps: list[float] = []
    with make(handler, retries=2, sleeps=sleeps) as civ, pytest.raises(SourceError) as info:
        civ.model(1)
    assert len(sleeps) == 2
    assert "cannot connect to civitai.test" in str(info.value)
    assert info.value.exit_code == 7


def test_timeout_is_translated() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    with make(handler) as civ, pytest.raises(SourceError, match="timed out waiting"):
        civ.model(1)


# --- token scoping ---------------------------------------------------------------------------


def test_token_goes_only_to_the_civitai_origin_and_never_to_redirects() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.host == "civitai.test" and request.url.path.startswith("/api/download"):
            return httpx2.Response(307, headers={"Location": "https://storage.test/f?sig=1"})
        if request.url.path == "/same-origin-redirect":
            return httpx2.Response(307, headers={"Location": f"{BASE}/landing"})
        return httpx2.Response(200, content=b"ok")

    with make(handler, token="sekrit-token-123") as civ:
        http = civ._client
        http.get(f"{BASE}/api/download/models/1")
        http.get(f"{BASE}/same-origin-redirect")
        http.get("https://elsewhere.test/x")
        http.get("http://civitai.test/x")  # other scheme: other origin
    auth = {str(r.url): r.headers.get("Authorization") for r in seen}
    assert auth[f"{BASE}/api/download/models/1"] == "Bearer sekrit-token-123"
    assert auth["https://storage.test/f?sig=1"] is None
    assert auth[f"{BASE}/same-origin-redirect"] == "Bearer sekrit-token-123"
    assert auth[f"{BASE}/landing"] is None
    assert auth["https://elsewhere.test/x"] is None
    assert auth["http://civitai.test/x"] is None
    assert all("sekrit" not in str(r.url) for r in seen)


def test_user_agent_names_sdlib_and_is_not_a_browser() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=model_json(1))

    with make(handler) as civ:
        civ.model(1)
    ua = seen[0].headers["User-Agent"]
    assert ua == USER_AGENT
    assert ua.startswith("sdlib/") and "+https://github.com/sdlib" in ua
    for browser in ("mozilla", "chrome", "safari", "firefox", "opera", "edge"):
        assert browser not in ua.lower()


def test_token_is_not_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with make(_fixed(200, model_json(1)), token="sekrit-token-123") as civ:
        civ.model(1)
    assert caplog.records  # httpx2 logs each request...
    assert "sekrit" not in caplog.text  # ...without the token
    assert "sekrit" not in repr(civ._client.auth)


# --- lookups ---------------------------------------------------------------------------------


def test_version_by_hash_uppercases_and_validates() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.path)
        return httpx2.Response(200, json={"id": 9, "name": "v", "files": []})

    with make(handler) as civ:
        civ.version_by_hash("abcdef0123")
        with pytest.raises(UsageError):
            civ.version_by_hash("xyz")
        with pytest.raises(UsageError):
            civ.version_by_hash("ABCDE")
    assert seen == ["/api/v1/model-versions/by-hash/ABCDEF0123"]


def test_images_ask_for_meta_and_recommended_settings_vote() -> None:
    metas = [
        {"Clip skip": "2", "sampler": "Euler a", "steps": 20, "cfgScale": 7, "Size": "512x768"},
        {"clipSkip": 2, "sampler": "DPM++ 2M Karras", "steps": 30, "cfgScale": 7,
         "Size": "512x768"},
        {"Clip skip": 1, "sampler": "DPM++ 2M Karras", "steps": 30, "cfgScale": 5.5,
         "width": 768, "height": 512, "seed": 12859270413054550000},
    ]  # fmt: skip
    seen: list[httpx2.URL] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url)
        return httpx2.Response(200, json={
            "items": [{"id": i, "url": "u", "meta": m} for i, m in enumerate(metas)]
            + [{"id": 99, "url": "u", "meta": None}],
            "metadata": {},
        })  # fmt: skip

    with make(handler) as civ:
        rec = civ.recommended_settings(42)
    assert seen[0].params["withMeta"] == "true"
    assert seen[0].params["modelVersionId"] == "42"
    assert rec == RecommendedSettings(clip_skip=2, sampler="DPM++ 2M Karras", steps=30,
                                      cfg_scale=7.0, size="512x768", samples=3)  # fmt: skip


def test_lookup_by_version_then_model() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/v1/model-versions/20":
            return httpx2.Response(200, json={"id": 20, "modelId": 2, "name": "v1", "files": []})
        if request.url.path == "/api/v1/models/2":
            return httpx2.Response(200, json=model_json(2))
        return httpx2.Response(404, json={"error": "nope"})

    with make(handler) as civ:
        model, version = civ.lookup("@20")
        assert (model.id, version.id) == (2, 20)
        model, version = civ.lookup("https://civitai.com/models/2")
        assert (model.id, version.id) == (2, 20)
        with pytest.raises(NotFound):
            civ.lookup("3@20")


# --- download resolution ---------------------------------------------------------------------


def _files() -> list[CivitaiFile]:
    def f(i: int, fmt: str, size: str, fp: str, type: str = "Model", primary: bool = False
          ) -> CivitaiFile:  # fmt: skip
        return CivitaiFile(id=i, name=f"f{i}", size=1, type=type, format=fmt, weights=size,
                           fp=fp, primary=primary)  # fmt: skip

    return [
        f(1, "SafeTensor", "pruned", "fp16", primary=True),
        f(2, "PickleTensor", "pruned", "fp16"),
        f(3, "SafeTensor", "full", "fp32"),
        f(4, "SafeTensor", "pruned", "fp32", type="VAE"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 1),
        ({"format": "PickleTensor"}, 2),
        ({"size": "full"}, 3),
        ({"size": "full", "fp": "fp32"}, 3),
        ({"type": "VAE"}, 4),
        ({"file_id": 3}, 3),
        ({"format": "GGUF"}, None),
        ({"size": "full", "fp": "fp16"}, None),
        ({"type": "Config"}, None),
    ],
)
def test_choose_file_follows_civitai_scoring(kwargs: dict[str, Any], expected: int | None) -> None:
    chosen = choose_file(_files(), **kwargs)
    assert (chosen.id if chosen else None) == expected


def test_resolve_download_pins_the_file() -> None:
    version = CivitaiVersion(id=77, name="v", model_id=7, files=tuple(_files()),
                             model_name="M", air="urn:air:sd1:checkpoint:civitai:7@77")  # fmt: skip
    with make(_fixed(500, {})) as civ:
        target = civ.resolve_download(version, format="PickleTensor")
        assert target.url == f"{BASE}/api/download/models/77?fileId=2"
        assert (target.file_id, target.version_id, target.model_id) == (2, 77, 7)
        assert target.file_name == "f2"
        with pytest.raises(NotFound, match="has no file with format=GGUF"):
            civ.resolve_download(version, format="GGUF")
        with pytest.raises(NotFound, match="no downloadable files"):
            civ.resolve_download(replace(version, files=()))


# --- tolerant parsing ------------------------------------------------------------------------


def test_commercial_use_in_all_three_eras() -> None:
    assert commercial_use("Rent") == ("Rent",)
    assert commercial_use("{Image,RentCivit}") == ("Image", "RentCivit")
    assert commercial_use(["Image", "Sell"]) == ("Image", "Sell")
    assert commercial_use([]) == ()
    assert commercial_use(None) == ()


def test_cursor_normalisation() -> None:
    assert normalise_cursor(101) == "101"
    assert normalise_cursor(101.0) == "101"
    assert normalise_cursor("1|2") == "1|2"
    assert normalise_cursor(None) is None
    assert normalise_cursor("") is None


def test_drifted_shapes_degrade_field_by_field() -> None:
    model = CivitaiModel.from_api({
        "id": "12", "name": "x", "type": "LoCon", "stats": None, "tags": [{"name": "old"}],
        "creator": None, "allowCommercialUse": "{Image}",
        "modelVersions": [{
            "id": 1, "name": "v", "baseModel": "Pony", "stats": {"downloadCount": None},
            "earlyAccessTimeFrame": 0, "earlyAccessDeadline": "2030-02-02T00:00:00Z",
            "files": [{"id": 5, "name": "a.safetensors", "sizeKB": "10", "hashes": {},
                       "metadata": {"fp": None, "size": None, "format": "SafeTensor"}}],
            "images": [{"url": "u", "nsfw": "Mature", "meta": {"seed": 1.2859270413054550e19}},
                       {"url": "v", "nsfwLevel": "Soft"}, "junk"],
        }],
    })  # fmt: skip
    assert model.id == 12 and model.kind == "lycoris"
    assert model.download_count is None and model.creator is None
    assert model.tags == ("old",)
    v = model.versions[0]
    assert v.base == "sdxl" and v.base_model == "Pony"
    assert v.early_access_ends == "2030-02-02T00:00:00Z"
    assert v.files[0].size == 10240 and v.files[0].hashes == {} and v.files[0].fp is None
    assert v.primary_file is not None and v.primary_file.id == 5
    assert v.images[0].nsfw is True and v.images[1].nsfw_level == 2
    assert len(v.images) == 2


def test_clip_vision_models_have_their_kind() -> None:
    model = CivitaiModel.from_api({"id": 3, "name": "clip", "type": "CLIPVision"})
    assert model.kind == "clip-vision"


def test_paid_access_is_the_current_early_access_signal() -> None:
    paid = {"permanent": False, "endsAt": "2031-01-01"}
    v = CivitaiVersion.from_api({"id": 1, "name": "v", "paidAccess": paid})
    assert v.early_access_ends == "2031-01-01"
    v = CivitaiVersion.from_api({"id": 1, "name": "v", "paidAccess": None})
    assert v.early_access_ends is None


def test_image_meta_legacy_wrapper_is_unwrapped() -> None:
    image = CivitaiImage.from_api({"id": 3, "url": "u",
                                   "meta": {"id": 3, "meta": {"Clip skip": "2"}}})  # fmt: skip
    assert image.meta == {"Clip skip": "2"}


def test_to_dict_is_plain_json() -> None:
    model = CivitaiModel.from_api(model_json(1))
    assert json.loads(json.dumps(model.to_dict()))["versions"][0]["id"] == 10


def test_raise_for_status_passes_success() -> None:
    raise_for_status(httpx2.Response(200, request=httpx2.Request("GET", BASE)))
    raise_for_status(httpx2.Response(307, request=httpx2.Request("GET", BASE)))


# --- recorded real responses -----------------------------------------------------------------


def _sample(name: str) -> Any:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"recorded Civitai sample {path} not present (../shared/reference/samples)")
    return json.loads(path.read_text(encoding="utf-8"))


def test_sample_model_2026() -> None:
    model = CivitaiModel.from_api(_sample("civitai-model.json"))
    assert (model.id, model.type, model.kind) == (2833924, "LORA", "lora")
    assert model.allow_commercial_use == ()
    assert model.base_models == ("Krea 2",)
    assert model.creator == "kestinek"
    assert model.download_count == 16
    v = model.versions[0]
    assert (v.id, v.base_model, v.base) == (3198110, "Krea 2", "unknown")
    f = v.files[0]
    assert f.primary and f.format == "SafeTensor" and f.name == "Mihaila Krea V1.safetensors"
    assert f.size == round(223231.3515625 * 1024)
    assert list(f.hashes) == ["SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3"]
    assert f.hash("autov3") == "C26973DE6B79"
    assert v.images[0].meta is None and v.images[0].nsfw_level == 4


def test_sample_model_version_2022() -> None:
    v = CivitaiVersion.from_api(_sample("civitai-model-version.json"))
    assert (v.id, v.model_id, v.name, v.base) == (1318, 1244, "toad", "sd1")
    assert v.trained_words == ("ttdddd",)
    assert (v.model_name, v.model_type) == ("froggy style", "Checkpoint")
    assert v.early_access_ends is None
    f = v.files[0]
    assert (f.format, f.weights, f.fp, f.pickle_scan) == ("PickleTensor", "full", "fp16", "Success")
    assert f.hash("AutoV3") is None and f.sha256 and f.sha256.startswith("0DF040C8CD")
    assert "torch.HalfStorage" in (f.pickle_scan_message or "")
    assert len(v.images) == 10 and all(not i.nsfw for i in v.images)
    assert v.recommended.samples == 0


def test_sample_images_old_shape() -> None:
    data = _sample("civitai-images.json")
    page = SearchPage.from_api(data)  # same metadata shape; numeric nextCursor
    assert page.next_cursor == "101"
    image = CivitaiImage.from_api(data["items"][0])
    assert image.nsfw is False and image.nsfw_level == 1
    rec = RecommendedSettings.from_metas([image.meta or {}])
    assert rec == RecommendedSettings(clip_skip=2, sampler="DPM++ SDE Karras", steps=35,
                                      cfg_scale=7.0, size="512x768", samples=1)  # fmt: skip
