"""The demo server itself: Civitai's quirks, the storage host's Range handling, the faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sdlib.demo.catalogue import CATALOGUE, LargeFile, build_files
from sdlib.demo.server import FAULT_KINDS, DemoServer, parse_fault

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"


@pytest.fixture
def http(civitai: DemoServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=civitai.url, timeout=10) as client:
        yield client


def _signed(http: httpx2.Client, version_id: int = 128713) -> str:
    response = http.get(f"/api/download/models/{version_id}")
    assert response.status_code == 307
    return response.headers["location"]


# --- /api/v1/models quirks ------------------------------------------------------------------


def test_page_is_ignored_and_capped(http: httpx2.Client) -> None:
    one = http.get("/api/v1/models", params={"limit": 2, "page": 1}).json()
    two = http.get("/api/v1/models", params={"limit": 2, "page": 2}).json()
    assert [m["id"] for m in one["items"]] == [m["id"] for m in two["items"]]
    assert two["metadata"]["currentPage"] == 2 and two["metadata"]["pageSize"] == 2
    assert http.get("/api/v1/models", params={"limit": 100, "page": 11}).status_code == 429
    r = http.get("/api/v1/models", params={"query": "x", "page": 1})
    assert r.status_code == 400 and "cursor" in r.json()["error"]


def test_validation_errors_are_zod_shaped(http: httpx2.Client) -> None:
    bad: list[dict[str, Any]] = [
        {"types": "LORA,Checkpoint"}, {"limit": 101}, {"sort": "Best"}, {"browsingLevel": 31},
        {"allowNoCredit": "true"}, {"nsfw": "maybe"},
    ]  # fmt: skip
    for params in bad:
        r = http.get("/api/v1/models", params=params)
        assert r.status_code == 400, params
        error = r.json()["error"]
        assert error["name"] == "ZodError" and json.loads(error["message"])
    r = http.get("/api/v1/models", params={"cursor": "only-one-part"})
    assert r.status_code == 400 and r.json()["message"].startswith("Invalid cursor")
    r = http.get("/api/v1/models", params={"username": "nobody-here"})
    assert r.status_code == 404 and r.json() == {"message": "User not found"}
    assert http.get("/api/v1/models", params={"favorites": "false"}).status_code == 401


def test_list_and_detail_shapes_differ_like_civitai(http: httpx2.Client) -> None:
    item = http.get("/api/v1/models", params={"ids": "4384"}).json()["items"][0]
    v = item["modelVersions"][0]
    assert "status" not in v and "supportsGeneration" in v
    assert [f.get("primary") for f in v["files"]] == [True, None, None]  # absent, not false
    assert "meta" not in v["images"][0] and "id" in v["images"][0]
    detail = http.get("/api/v1/models/4384").json()["modelVersions"][0]
    assert detail["status"] == "Published" and "supportsGeneration" not in detail
    assert "description" not in detail  # null keys removed in the detail response
    version = http.get("/api/v1/model-versions/128713").json()
    assert [f["primary"] for f in version["files"]] == [True, False, False]
    assert version["images"][0]["meta"]["Clip skip"] == "2" and "id" not in version["images"][0]
    assert version["air"] == "urn:air:sd1:checkpoint:civitai:4384@128713"
    assert version["downloadUrl"].startswith(http.base_url.scheme + "://")


def test_next_page_carries_the_original_params(http: httpx2.Client) -> None:
    r = http.get("/api/v1/models", params=[("limit", "1"), ("types", "Checkpoint"),
                                           ("types", "LORA")]).json()  # fmt: skip
    next_page = httpx2.URL(r["metadata"]["nextPage"])
    assert next_page.params.get_list("types") == ["Checkpoint", "LORA"]
    assert next_page.params["cursor"] == r["metadata"]["nextCursor"]


def test_images_need_with_meta(http: httpx2.Client) -> None:
    plain = http.get("/api/v1/images", params={"modelVersionId": 128713}).json()["items"]
    assert plain and all(i["meta"] is None for i in plain)
    meta = http.get("/api/v1/images", params={"modelVersionId": 128713, "withMeta": "true"})
    assert all(i["meta"]["sampler"] for i in meta.json()["items"])
    legacy = http.get("/api/v1/images", params={"modelId": 4384, "withMeta": "true"}).json()
    assert set(legacy["items"][0]["meta"]) == {"id", "meta"}
    nsfw_only = http.get("/api/v1/images", params={"nsfw": "true"}).json()["items"]
    assert nsfw_only == []  # nsfw=true means mature levels only; the demo images are PG


def test_archived_version_has_no_files(http: httpx2.Client) -> None:
    version = http.get("/api/v1/model-versions/4048").json()
    assert version["files"] == [] and "downloadUrl" not in version
    assert version["model"]["mode"] == "Archived"


def test_methods_and_enums(http: httpx2.Client) -> None:
    assert http.post("/api/v1/models").status_code == 405
    enums = http.get("/api/v1/enums").json()
    assert "LoCon" in enums["ModelType"] and "SD 1.5" in enums["BaseModel"]
    assert http.get("/api/v1/me").status_code == 401
    me = http.get("/api/v1/me", headers={"Authorization": "Bearer demo-token"})
    assert me.json()["username"] == "demo"


# --- download endpoint ----------------------------------------------------------------------


def test_download_redirects_to_a_signed_url_on_another_origin(
    http: httpx2.Client, civitai: DemoServer
) -> None:
    r = http.get("/api/download/models/128713")
    assert r.status_code == 307 and r.headers["cache-control"].startswith("no-store")
    location = httpx2.URL(r.headers["location"])
    assert (location.host, location.port) != (http.base_url.host, http.base_url.port)
    assert str(location).startswith(civitai.storage_url)
    assert "signature" in location.params and "expires" in location.params
    assert location.params["response-content-disposition"].endswith('"dreamshaper_8.safetensors"')


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({}, "dreamshaper_8.safetensors"),
        ({"format": "PickleTensor"}, "dreamshaper_8.ckpt"),
        ({"size": "full", "fp": "fp32"}, "dreamshaper_8_full.safetensors"),
        ({"fileId": "1287132"}, "dreamshaper_8.ckpt"),
    ],
)
def test_download_file_selection(http: httpx2.Client, params: dict[str, str], name: str) -> None:
    r = http.get("/api/download/models/128713", params=params)
    assert r.headers["location"].split("?")[0].endswith("/" + name)


def test_download_errors_json_and_browser(http: httpx2.Client) -> None:
    assert http.get("/api/download/models/128713", params={"format": "GGUF"}).status_code == 404
    assert http.get("/api/download/models/128713", params={"format": "Zip"}).status_code == 400
    assert http.get("/api/download/models/4048").status_code == 410
    r = http.get("/api/download/models/11745")
    assert r.status_code == 401 and "logged in" in r.json()["message"]
    r = http.get("/api/download/models/11745", headers={"User-Agent": BROWSER})
    assert r.status_code == 307 and "reason=download-auth" in r.headers["location"]
    r = http.get("/api/download/models/4048", headers={"User-Agent": BROWSER})
    assert r.status_code == 410 and r.headers["content-type"].startswith("text/plain")
    r = http.get("/api/download/models/245598")
    assert r.status_code == 403 and r.json()["deadline"] == "2030-01-01T00:00:00.000Z"
    r = http.get("/api/download/models/245598", params={"token": "demo-early-access"})
    assert r.status_code == 307  # ?token= works when there is no Authorization header


# --- storage host ----------------------------------------------------------------------------


def test_storage_ranges(http: httpx2.Client, civitai: DemoServer) -> None:
    url = _signed(http)
    served = civitai.files[128713_1]
    assert served.path is not None
    data = served.path.read_bytes()
    full = httpx2.get(url)
    assert full.status_code == 200 and full.content == data
    etag = full.headers["etag"]
    part = httpx2.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = httpx2.get(url, headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]
    rest = httpx2.get(url, headers={"Range": f"bytes={len(data) - 5}-", "If-Range": etag})
    assert rest.status_code == 206 and rest.content == data[-5:]
    changed = httpx2.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert changed.status_code == 200 and len(changed.content) == len(data)
    bad = httpx2.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"
    head = httpx2.head(url)
    assert int(head.headers["content-length"]) == len(data) and head.content == b""


def test_signatures_expire_and_cannot_be_forged(http: httpx2.Client, civitai: DemoServer) -> None:
    url = httpx2.URL(_signed(http))
    forged = url.copy_set_param("signature", "0" * 32)
    assert httpx2.get(forged).status_code == 403
    other_file = str(url).replace("/1287131/", "/1287132/")
    assert httpx2.get(other_file).status_code == 403
    civitai.url_ttl = -1
    r = httpx2.get(_signed(http))
    assert r.status_code == 403 and b"expired" in r.content
    civitai.url_ttl = 3600


def test_fault_range_ignored(http: httpx2.Client, civitai: DemoServer) -> None:
    civitai.add_fault("range-ignored", times=1)
    url = _signed(http)
    r = httpx2.get(url, headers={"Range": "bytes=10-"})
    assert r.status_code == 200 and "content-range" not in r.headers
    assert httpx2.get(url, headers={"Range": "bytes=10-"}).status_code == 206  # times=1


def test_fault_drop_and_stall(http: httpx2.Client, civitai: DemoServer) -> None:
    civitai.add_fault("drop", after_bytes=1000, times=1)
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.get(_signed(http))
    civitai.add_fault("stall", after_bytes=500, seconds=5, times=1)
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.get(_signed(http), timeout=httpx2.Timeout(5, read=0.3))
    assert time.monotonic() - started < 4


def test_fault_wrong_length(http: httpx2.Client, civitai: DemoServer) -> None:
    size = civitai.files[128713_1].size
    civitai.add_fault("wrong-length", delta=-100, times=1)
    assert len(httpx2.get(_signed(http)).content) == size - 100
    civitai.add_fault("wrong-length", delta=50, times=1)
    assert len(httpx2.get(_signed(http)).content) == size + 50


@pytest.mark.parametrize("kind", ["401", "403", "403-early", "404", "410", "500"])
def test_status_faults(http: httpx2.Client, civitai: DemoServer, kind: str) -> None:
    civitai.add_fault(kind, times=1)
    r = http.get("/api/v1/models/4384")
    assert r.status_code == int(kind[:3])
    assert http.get("/api/v1/models/4384").status_code == 200


def test_retry_after_switches(http: httpx2.Client, civitai: DemoServer) -> None:
    civitai.add_fault("429", times=1)
    assert "retry-after" not in http.get("/api/v1/models/1").headers
    civitai.add_fault("429", retry_after=3, times=1)
    assert http.get("/api/v1/models/1").headers["retry-after"] == "3"
    civitai.add_fault("503", times=1)
    assert http.get("/api/v1/models/1").headers["retry-after"] == "2"
    civitai.add_fault("503", retry_after="none", times=1)
    assert "retry-after" not in http.get("/api/v1/models/1").headers


def test_html_fault(http: httpx2.Client, civitai: DemoServer) -> None:
    civitai.add_fault("html", status=503, match="/api/v1/models", times=1)
    r = http.get("/api/v1/models")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")


def test_admin_endpoint_switches_faults(http: httpx2.Client, civitai: DemoServer) -> None:
    r = http.get("/__admin/fault", params={"kind": "404", "match": "/api/v1/models/", "times": 1})
    assert r.status_code == 200 and r.json()["kind"] == "404"
    assert [f.kind for f in civitai.faults] == ["404"]
    assert http.get("/api/v1/models/4384").status_code == 404
    assert http.get("/__admin/fault", params={"kind": "nope"}).status_code == 400
    http.get("/__admin/fault", params={"kind": "429"})
    http.get("/__admin/rate", params={"bytes_per_second": 12345})
    assert civitai.rate_limit == 12345
    log = http.get("/__admin/log").json()
    assert log and {"server", "path", "authorization"} <= set(log[0])
    http.get("/__admin/reset")
    assert civitai.faults == [] and civitai.rate_limit is None
    assert http.get("/__admin/what").status_code == 404


def test_rate_cap_per_connection(http: httpx2.Client, civitai: DemoServer) -> None:
    civitai.rate_limit = 1 << 20
    url = _signed(http, 9536)  # 24 KiB
    started = time.monotonic()
    httpx2.get(url)
    fast = time.monotonic() - started
    civitai.rate_limit = 100_000
    started = time.monotonic()
    r = httpx2.get(url, headers={"Range": "bytes=0-49999"})
    slow = time.monotonic() - started
    assert len(r.content) == 50_000 or len(r.content) == civitai.files[9536_1].size
    assert slow >= 0.2 and slow > fast


def test_request_log_records_authorization(http: httpx2.Client, civitai: DemoServer) -> None:
    civitai.clear_requests()
    http.get("/api/v1/models/1", headers={"Authorization": "Bearer x"})
    http.get("/api/v1/models/1")
    assert [r.authorization for r in civitai.requests] == [True, False]
    assert civitai.requests[0].header("authorization") == "Bearer x"


def test_preview_images_are_png(http: httpx2.Client) -> None:
    url = http.get("/api/v1/model-versions/128713").json()["images"][0]["url"]
    r = httpx2.get(url)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG\r\n\x1a\n")


# --- catalogue and files ---------------------------------------------------------------------


def test_catalogue_ids_are_unique_and_guide_models_present() -> None:
    files = [f.id for m in CATALOGUE for v in m.versions for f in v.files]
    versions = [v.id for m in CATALOGUE for v in m.versions]
    assert len(files) == len(set(files)) and len(versions) == len(set(versions))
    names = " ".join(m.name for m in CATALOGUE)
    for wanted in ("v1.4", "v1.5", "Realistic Vision", "DreamShaper", "majicMIX", "SD XL",
                   "Anything V5", "Deliberate", "ChilloutMix", "F222"):  # fmt: skip
        assert wanted in names
    assert {"LORA", "LoCon", "TextualInversion", "Hypernetwork", "VAE"} <= {
        m.type for m in CATALOGUE
    }


def test_files_are_deterministic(tmp_path: Path, civitai: DemoServer) -> None:
    small = [m for m in CATALOGUE if m.id in (7808, 58390)]
    first = build_files(tmp_path / "a", small)
    second = build_files(tmp_path / "b", small)
    assert {k: v.hashes for k, v in first.items()} == {k: v.hashes for k, v in second.items()}
    assert first[9536_1].hashes == civitai.files[9536_1].hashes


def test_pickles_are_benign_torch_zips(civitai: DemoServer) -> None:
    torch = pytest.importorskip("torch")
    for served in civitai.files.values():
        if served.spec.format == "PickleTensor":
            obj = torch.load(served.path, weights_only=True)  # refuses anything but tensors
            assert isinstance(obj, dict)


def test_large_file_is_generated_not_stored(tmp_path: Path) -> None:
    size = 3 << 20
    with DemoServer(tmp_path, catalogue=(), large_size=size) as server:
        served = server.files[999_003]
        assert served.path is None and served.size == size
        assert not any(p.stat().st_size >= size for p in tmp_path.iterdir())
        version = httpx2.get(f"{server.url}/api/v1/model-versions/999002").json()
        assert version["files"][0]["sizeKB"] * 1024 == size
        body = httpx2.get(f"{server.url}/api/download/models/999002", follow_redirects=True)
        assert len(body.content) == size
        import hashlib

        assert hashlib.sha256(body.content).hexdigest().upper() == served.hashes["SHA256"]
        assert served.hashes["AutoV1"] and served.hashes["AutoV3"]
    reader = LargeFile(size).open()
    reader.seek(size - 4)
    assert reader.read(10) == b"\0\0\0\0"


def test_parse_fault_spec() -> None:
    assert parse_fault("429:times=2,retry_after=1") == {"kind": "429", "times": "2",
                                                        "retry_after": "1"}  # fmt: skip
    assert parse_fault("drop") == {"kind": "drop"}
    with pytest.raises(ValueError):
        parse_fault("drop:oops")
    assert "drop" in FAULT_KINDS
