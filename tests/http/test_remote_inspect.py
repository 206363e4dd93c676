"""``services.peek.inspect_remote``: a remote file judged from its header, as if downloaded.

Against the demo server over real sockets (Civitai references, its storage host, a 7 GiB
generated file, faults) and, for every synthetic fixture, a Range-serving transport: the
report must equal ``inspect_path``'s for the same bytes on disk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sdlib.config import CivitaiSettings, HuggingfaceSettings, NetworkSettings, Settings
from sdlib.demo.catalogue import LARGE_FILE_ID, LARGE_VERSION_ID, LargeFile
from sdlib.demo.server import DemoServer
from sdlib.demo.specs import CONTAINERS, EXPECTED, flux_transformer, spec_with_metadata
from sdlib.demo.writers import quantize_specs, write_gguf, write_safetensors
from sdlib.errors import AuthRequired, FormatError, SdlibError, UsageError
from sdlib.http import NO_RANGES
from sdlib.services import Context
from sdlib.services.files import inspect_path
from sdlib.services.peek import RemoteTarget, inspect_remote, is_remote
from tests.support.pickles import call_pickle, ti_embedding, torch_zip

#: Keys only a remote report has (where it came from, what it cost).
REMOTE_KEYS = {"file_name", "url", "source", "pinned_ref", "bytes_read", "requests"}
LARGE = 7 << 30


def settings_for(
    server: DemoServer, tmp_path: Path, token: str | None = None, hf_token: str | None = None
) -> Settings:
    return replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url=server.url, token=token),
        huggingface=HuggingfaceSettings(endpoint=server.hub_url, token=hf_token),
        network=NetworkSettings(retries=1, backoff_max=0.01, read_timeout=10, connect_timeout=2),
    )


def same_bytes_report(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what names the file or says how it was read."""
    return {k: v for k, v in report.items() if k != "path" and k not in REMOTE_KEYS}


def storage_spans(server: DemoServer) -> list[tuple[int, int]]:
    """The byte ranges the storage host was asked for (it answers exactly those: 206)."""
    out = []
    for record in server.requests:
        if record.server != "storage":
            continue
        value = record.header("Range")
        assert value is not None, f"a storage request without Range: {record.path}"
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", value)
        assert match, value
        out.append((int(match.group(1)), int(match.group(2))))
    return out


# --- Civitai references against the demo server ------------------------------------------


@pytest.mark.parametrize(
    ("ref", "kind", "base"),
    [("4384@128713", "checkpoint", "sd1"), ("101055", "checkpoint", "sdxl"),
     ("58390", "lora", "sd1"), ("7808", "embedding", "sd1"), ("7371@8217", "lycoris", "sd1")],
)  # fmt: skip
def test_a_civitai_reference_is_judged_as_its_downloaded_file(
    civitai: DemoServer, tmp_path: Path, ref: str, kind: str, base: str
) -> None:
    with Context(settings_for(civitai, tmp_path)) as ctx:
        seen = inspect_remote(ctx, ref)
    served = next(f for f in civitai.files.values() if f.spec.name == seen.target.name)
    remote = seen.to_dict()
    assert (remote["kind"], remote["base"], remote["path"]) == (kind, base, ref)
    local = inspect_path(served.path).to_dict()
    assert same_bytes_report(remote) == same_bytes_report(local)
    assert remote["size"] == served.path.stat().st_size
    # Only the header was asked for, and nothing past it but read-ahead.
    header_end = 8 + int.from_bytes(served.path.read_bytes()[:8], "little")
    assert sum(b - a + 1 for a, b in storage_spans(civitai)) < header_end + (32 << 10)
    assert remote["bytes_read"] < served.path.stat().st_size


def test_the_token_goes_to_the_api_never_to_the_storage_host(
    civitai: DemoServer, tmp_path: Path
) -> None:
    with Context(settings_for(civitai, tmp_path, token="demo-token")) as ctx:
        seen = inspect_remote(ctx, "6424@11745")  # a version that needs a logged-in account
    assert seen.report.classification is not None
    api = [r for r in civitai.requests if r.server == "api" and "/download/" in r.path]
    storage = [r for r in civitai.requests if r.server == "storage"]
    assert api and all(r.authorization for r in api)
    assert storage and not any(r.authorization for r in storage)
    # The download endpoint is asked once: later reads go straight to the storage URL.
    assert len(api) == 1


def test_login_required_without_a_token_is_exit_6(civitai: DemoServer, tmp_path: Path) -> None:
    with Context(settings_for(civitai, tmp_path)) as ctx, pytest.raises(AuthRequired) as info:
        inspect_remote(ctx, "6424@11745")
    assert info.value.exit_code == 6
    assert not [r for r in civitai.requests if r.server == "storage"]


def test_a_pickle_checkpoint_is_named_not_judged_and_never_read_whole(
    civitai: DemoServer, tmp_path: Path
) -> None:
    with Context(settings_for(civitai, tmp_path)) as ctx:
        seen = inspect_remote(ctx, "1890")
    served = next(f for f in civitai.files.values() if f.spec.name == seen.target.name)
    assert served.spec.format == "PickleTensor" and served.size > (1 << 20)
    report = seen.to_dict()
    assert (report["container"], report["kind"]) == ("pickle-zip", "unknown")
    assert "download it" in report["note"]
    assert sum(b - a + 1 for a, b in storage_spans(civitai)) <= 16 << 10


def test_a_plain_url_on_the_storage_host_is_the_file_itself(
    civitai: DemoServer, tmp_path: Path
) -> None:
    served = next(f for f in civitai.files.values() if f.spec.name == "add_detail.safetensors")
    url = civitai.signed_url(served)
    with Context(settings_for(civitai, tmp_path)) as ctx:
        seen = inspect_remote(ctx, url)
    assert (seen.target.source, seen.target.name) == ("url", "add_detail.safetensors")
    assert not [r for r in civitai.requests if r.server == "api"]
    local = inspect_path(served.path).to_dict()
    assert same_bytes_report(seen.to_dict()) == same_bytes_report(local)


# --- Hugging Face references against the demo Hub -------------------------------------------


@pytest.mark.parametrize(
    "ref",
    ["hf:stabilityai/sdxl-vae/sdxl_vae.safetensors",
     "https://huggingface.co/stabilityai/sdxl-vae/blob/main/sdxl_vae.safetensors"],
)  # fmt: skip
def test_a_hub_reference_is_judged_as_its_downloaded_file(
    civitai: DemoServer, tmp_path: Path, ref: str
) -> None:
    with Context(settings_for(civitai, tmp_path)) as ctx:
        seen = inspect_remote(ctx, ref)
    served = civitai.hub.files[("stabilityai/sdxl-vae", "sdxl_vae.safetensors")]
    assert served.path is not None
    report = seen.to_dict()
    assert (report["source"], report["file_name"], report["kind"]) == (
        "huggingface", "sdxl_vae.safetensors", "vae",
    )  # fmt: skip
    assert report["pinned_ref"].startswith("hf:stabilityai/sdxl-vae@")
    assert same_bytes_report(report) == same_bytes_report(inspect_path(served.path).to_dict())
    cdn = [r for r in civitai.requests if r.server == "hub-cdn"]
    assert cdn and all(r.header("Range") for r in cdn)
    assert report["bytes_read"] < served.size


def test_a_gated_hub_file_needs_the_token_which_never_reaches_the_cdn(
    civitai: DemoServer, tmp_path: Path
) -> None:
    ref = "hf:black-forest-labs/FLUX.1-dev/ae.safetensors"
    with Context(settings_for(civitai, tmp_path)) as ctx, pytest.raises(AuthRequired) as info:
        inspect_remote(ctx, ref)
    assert info.value.exit_code == 6
    assert not [r for r in civitai.requests if r.server == "hub-cdn"]
    civitai.clear_requests()
    with Context(settings_for(civitai, tmp_path, hf_token="hf_demo_token")) as ctx:
        seen = inspect_remote(ctx, ref)
    assert seen.report.classification is not None
    hub = [r for r in civitai.requests if r.server == "hub"]
    cdn = [r for r in civitai.requests if r.server == "hub-cdn"]
    assert hub and all(r.authorization for r in hub)
    assert cdn and not any(r.authorization for r in cdn)


# --- a 7 GiB file: a few KiB read --------------------------------------------------------


@pytest.fixture(scope="module")
def large_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    files = tmp_path_factory.mktemp("large-files")
    # The demo hashes its large file at start (7 GiB: minutes); these tests read only its
    # header, so they hand it hashes for the generated bytes instead (its cache's format).
    fake = {"SHA256": "AB" * 32, "AutoV2": "ABABABABAB", "CRC32": "ABABABAB"}
    (files / "hashes.json").write_text(
        json.dumps({f"large-{LARGE}": {"size": LARGE, "hashes": fake}})
    )
    with DemoServer(files, catalogue=(), large_size=LARGE) as server:
        yield server


@pytest.fixture
def large(large_server: DemoServer) -> DemoServer:
    large_server.reset()
    return large_server


def test_a_7_gib_file_is_judged_from_under_64_kib(large: DemoServer, tmp_path: Path) -> None:
    with Context(settings_for(large, tmp_path)) as ctx:
        seen = inspect_remote(ctx, f"@{LARGE_VERSION_ID}")
    spans = storage_spans(large)
    transferred = sum(b - a + 1 for a, b in spans)
    assert 0 < transferred < 64 << 10, spans
    assert seen.bytes_read == transferred
    # What the generator put in its header: one U8 tensor filling the rest of the file.
    header = LargeFile(LARGE).header
    report = seen.to_dict()
    assert (report["size"], report["tensors"], report["parameters"]) == (
        LARGE, 1, LARGE - len(header),
    )  # fmt: skip
    # The same bytes on disk (a sparse copy) get the same report.
    local = tmp_path / "sdlib_benchmark.safetensors"
    with local.open("wb") as fh:
        fh.write(header)
        fh.truncate(LARGE)
    assert same_bytes_report(report) == same_bytes_report(inspect_path(local).to_dict())


def test_a_server_that_ignores_range_fails_cleanly(large: DemoServer, tmp_path: Path) -> None:
    large.add_fault("range-ignored")  # every storage answer: 200 with all 7 GiB
    with Context(settings_for(large, tmp_path)) as ctx, pytest.raises(SdlibError) as info:
        inspect_remote(ctx, f"@{LARGE_VERSION_ID}")
    assert NO_RANGES in str(info.value)
    assert info.value.exit_code == 1
    assert large.files[LARGE_FILE_ID].size == LARGE


# --- every synthetic fixture through a Range-serving transport ---------------------------


def serving(folder: Path) -> httpx2.MockTransport:
    """``https://files.example/NAME`` serves ``folder/NAME`` with Range (206) answers."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        path = folder / request.url.path.lstrip("/")
        size = path.stat().st_size
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", ""))
        assert match, "every request asks for a range"
        start, end = int(match.group(1)), min(int(match.group(2)), size - 1)
        if start >= size:
            return httpx2.Response(416, headers={"Content-Range": f"bytes */{size}"})
        with path.open("rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        return httpx2.Response(206, content=body,
                              headers={"Content-Range": f"bytes {start}-{end}/{size}"})  # fmt: skip

    return httpx2.MockTransport(handler)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fixtures")
    for name in EXPECTED:
        if name in CONTAINERS:
            continue
        spec, metadata = spec_with_metadata(name)
        write_safetensors(folder / f"{name}.safetensors", spec, metadata, sparse=True)
    specs = quantize_specs(flux_transformer("", "BF16"), "Q8_0")
    write_gguf(folder / "flux1-dev-Q8_0.gguf", specs,
               {"general.architecture": "flux", "general.file_type": 7})  # fmt: skip
    return folder


def test_every_fixture_gets_its_local_report(fixtures: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in fixtures.iterdir())
    with Context(Settings(cache_dir=tmp_path / "c"), transport=serving(fixtures)) as ctx:
        for name in names:
            seen = inspect_remote(ctx, RemoteTarget(f"https://files.example/{name}", name))
            remote, local = seen.to_dict(), inspect_path(fixtures / name).to_dict()
            assert same_bytes_report(remote) == same_bytes_report(local), name
            stem = name.rsplit(".", 1)[0]
            if stem in EXPECTED:
                facts = EXPECTED[stem]
                assert (remote["kind"], remote["base"]) == (facts["kind"], facts["base"]), name
            assert seen.bytes_read < 1 << 20, name
    gguf = next(n for n in names if n.endswith(".gguf"))
    assert gguf


def test_a_small_pickle_is_read_whole_and_judged_like_a_local_one(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "embedding.pt").write_bytes(torch_zip(ti_embedding()))
    # A pickle calling os.system whose first nine bytes read as a safetensors length and
    # "{" (BINFLOAT swallows them), padded to the length it claims: torch.load runs it.
    data = b"G\x10\x00\x00\x00\x00\x00\x00{0" + call_pickle("os", "system", "true")
    (folder / "hostile.ckpt").write_bytes(data + b" " * (8 + 0x1047 - len(data)) + bytes(16))
    reports = {}
    with Context(Settings(cache_dir=tmp_path / "c"), transport=serving(folder)) as ctx:
        for name in ("embedding.pt", "hostile.ckpt"):
            seen = inspect_remote(ctx, RemoteTarget(f"https://files.example/{name}", name))
            local = inspect_path(folder / name).to_dict()
            assert same_bytes_report(seen.to_dict()) == same_bytes_report(local), name
            reports[name] = seen.to_dict()
    assert (reports["embedding.pt"]["kind"], reports["embedding.pt"]["safety"]["verdict"]) == (
        "embedding", "safe",
    )  # fmt: skip
    assert reports["hostile.ckpt"]["safety"]["verdict"] == "unsafe"


# --- references -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "remote"),
    [("4384", True), ("4384@128713", True), ("@128713", True), ("https://x.example/a", True),
     ("civitai.com/models/4384", True), ("urn:air:sd1:checkpoint:civitai:4384@128713", True),
     ("hf:org/repo/a.safetensors", True), ("huggingface.co/org/repo/blob/main/a.ckpt", True),
     ("ftp://x/y", True), ("model.safetensors", False),
     ("C://models/a.ckpt", False), ("models/4384", False), ("", False), ("@", False)],
)  # fmt: skip
def test_what_names_a_remote_file(text: str, remote: bool) -> None:
    assert is_remote(text) is remote


@pytest.mark.parametrize(
    ("text", "words"),
    [("ftp://x.example/a.safetensors", "only http:// and https://"),
     ("https://civitai.com/images/5", "names no model")],
)  # fmt: skip
def test_references_it_cannot_read_are_usage_errors(text: str, words: str, tmp_path: Path) -> None:
    def nothing(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    settings = Settings(cache_dir=tmp_path / "c")
    with (
        Context(settings, transport=httpx2.MockTransport(nothing)) as ctx,
        pytest.raises(UsageError, match=words) as info,
    ):
        inspect_remote(ctx, text)
    assert info.value.exit_code == 2


def test_a_web_page_is_not_a_model(tmp_path: Path) -> None:
    def page(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, html="<!doctype html><title>model page</title>" * 2000)

    settings = Settings(cache_dir=tmp_path / "c")
    with (
        Context(settings, transport=httpx2.MockTransport(page)) as ctx,
        pytest.raises(FormatError, match="web page") as info,
    ):
        inspect_remote(ctx, "https://models.example/lora/detail-tweaker")
    assert info.value.exit_code == 1
