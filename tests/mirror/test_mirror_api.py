"""The mirror's Python interface against a real S3 API server (moto on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx2
import pytest

from sdlib.config import Settings
from sdlib.errors import HashMismatch, SdlibError
from sdlib.hashing import hash_file
from sdlib.mirror import MirrorMeta, MirrorSource, open_mirror
from sdlib.mirror import _mirror as mirror_impl
from tests.support.s3_server import S3Bucket, write_blob


@pytest.fixture
def http() -> httpx2.Client:
    with httpx2.Client(timeout=10) as client:
        yield client


def test_unconfigured_is_none(http: httpx2.Client) -> None:
    assert open_mirror(Settings(), http) is None


def test_push_lays_out_object_and_sidecar(
    s3_bucket: S3Bucket, http: httpx2.Client, tmp_path: Path
) -> None:
    data = write_blob(tmp_path / "detail.safetensors", 300_000)
    sha = hashlib.sha256(data).hexdigest()
    mirror = open_mirror(s3_bucket.settings(), http)
    assert mirror is not None and mirror.can_publish
    assert mirror.stat(sha) is None
    hashes = hash_file(tmp_path / "detail.safetensors")
    source = MirrorSource("civitai", model_id=1, version_id=2, file_id=3)
    meta = MirrorMeta(hashes=hashes, kind="lora", base="sdxl", names=("detail.safetensors",),
                      sources=(source,))  # fmt: skip
    result = mirror.push(tmp_path / "detail.safetensors", hashes, meta)
    assert result.status == "created"
    # Layout: PREFIX/sha256/<aa>/<64 hex> and PREFIX/meta/<64 hex>.json, nothing else.
    assert s3_bucket.keys() == [f"models/meta/{sha}.json", f"models/sha256/{sha[:2]}/{sha}"]
    assert s3_bucket.read(f"models/sha256/{sha[:2]}/{sha}") == data
    sidecar = json.loads(s3_bucket.read(f"models/meta/{sha}.json"))
    assert sidecar["size"] == len(data) and sidecar["sha256"] == sha
    assert sidecar["hashes"]["blake3"] and sidecar["hashes"]["crc32"]
    assert sidecar["kind"] == "lora" and sidecar["names"] == ["detail.safetensors"]
    assert sidecar["sources"] == [{"type": "civitai", "model_id": 1, "version_id": 2, "file_id": 3}]
    assert sidecar["pushed_by"] and sidecar["pushed_at"]
    # Reading back: size, sidecar, and a URL any HTTP client can GET with a Range.
    assert mirror.stat(sha) == len(data)
    back = mirror.meta(sha)
    assert back is not None and back.kind == "lora" and back.sources[0].file_id == 3
    url = mirror.object_url(sha)
    assert http.get(url).content == data
    part = http.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    # Pushing again is success, "exists".
    assert mirror.push(tmp_path / "detail.safetensors", hashes).status == "exists"


def test_push_refuses_a_file_that_is_not_what_is_claimed(
    s3_bucket: S3Bucket, http: httpx2.Client, tmp_path: Path
) -> None:
    write_blob(tmp_path / "a.bin", 1000, seed=1)
    write_blob(tmp_path / "b.bin", 1000, seed=2)
    mirror = open_mirror(s3_bucket.settings(), http)
    assert mirror is not None
    with pytest.raises(HashMismatch):
        mirror.push(tmp_path / "b.bin", hash_file(tmp_path / "a.bin"))
    assert s3_bucket.keys() == []


def test_big_file_goes_up_in_parts_and_appears_whole(
    s3_bucket: S3Bucket, http: httpx2.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mirror_impl, "SINGLE_PUT_MAX", 1 << 20)
    monkeypatch.setattr(mirror_impl, "PART_SIZE", 5 << 20)
    data = write_blob(tmp_path / "big.bin", (11 << 20) + 123)
    sha = hashlib.sha256(data).hexdigest()
    mirror = open_mirror(s3_bucket.settings(), http)
    assert mirror is not None
    seen: list[int] = []
    result = mirror.push(tmp_path / "big.bin", hash_file(tmp_path / "big.bin"),
                         progress=lambda done, total: seen.append(done))  # fmt: skip
    assert result.status == "created"
    assert s3_bucket.read(f"models/sha256/{sha[:2]}/{sha}") == data
    assert seen[-1] == len(data)
    # The staging upload is gone: only the object and its sidecar remain.
    assert s3_bucket.keys() == [f"models/meta/{sha}.json", f"models/sha256/{sha[:2]}/{sha}"]
    assert mirror.push(tmp_path / "big.bin", hash_file(tmp_path / "big.bin")).status == "exists"


def test_mirror_down_is_a_one_line_sdlib_error(http: httpx2.Client, tmp_path: Path) -> None:
    from tests.support.s3_server import S3Bucket as Bucket

    dead = Bucket(endpoint="http://127.0.0.1:9", name="nobucket")
    mirror = open_mirror(dead.settings(), http)
    assert mirror is not None
    with pytest.raises(SdlibError) as info:
        mirror.stat("a" * 64)
    assert info.value.exit_code == 7
    assert "\n" not in str(info.value) and "unreachable" in str(info.value)


@pytest.mark.slow  # three multipart uploads of 6 MiB to moto
def test_concurrent_pushes_of_a_big_file(
    s3_bucket: S3Bucket, http: httpx2.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three pushers of one multipart-sized file at once: exactly one creates the object
    (the conditional copy), the others say it exists, and no staging upload is left."""
    import threading

    monkeypatch.setattr(mirror_impl, "SINGLE_PUT_MAX", 1 << 20)
    monkeypatch.setattr(mirror_impl, "PART_SIZE", 5 << 20)
    data = write_blob(tmp_path / "big.bin", (6 << 20) + 7, seed=9)
    sha = hashlib.sha256(data).hexdigest()
    hashes = hash_file(tmp_path / "big.bin")
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def push() -> None:
        mirror = open_mirror(s3_bucket.settings(), http)
        assert mirror is not None
        barrier.wait()
        try:
            results.append(mirror.push(tmp_path / "big.bin", hashes).status)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(results) == ["created", "exists", "exists"]
    assert s3_bucket.read(f"models/sha256/{sha[:2]}/{sha}") == data
    assert s3_bucket.keys() == [f"models/meta/{sha}.json", f"models/sha256/{sha[:2]}/{sha}"]


def test_past_the_copy_limit_parts_go_straight_to_the_key(
    s3_bucket: S3Bucket, http: httpx2.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 copies at most 5 GiB in one part: bigger files skip the staging copy."""
    monkeypatch.setattr(mirror_impl, "SINGLE_PUT_MAX", 1 << 20)
    monkeypatch.setattr(mirror_impl, "COPY_MAX", 2 << 20)
    monkeypatch.setattr(mirror_impl, "PART_SIZE", 5 << 20)
    data = write_blob(tmp_path / "huge.bin", (5 << 20) + 99, seed=11)
    sha = hashlib.sha256(data).hexdigest()
    mirror = open_mirror(s3_bucket.settings(), http)
    assert mirror is not None
    assert mirror.push(tmp_path / "huge.bin", hash_file(tmp_path / "huge.bin")).status == "created"
    assert s3_bucket.read(f"models/sha256/{sha[:2]}/{sha}") == data
    assert s3_bucket.keys() == [f"models/meta/{sha}.json", f"models/sha256/{sha[:2]}/{sha}"]


def test_without_the_s3_extra_reads_work_and_writes_say_what_to_install(
    s3_bucket: S3Bucket, http: httpx2.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without obstore, a public-read object is read over plain HTTP (unsigned HEAD and GET);
    pushing needs obstore and says so (exit 2)."""
    import sys

    from sdlib.errors import ConfigError

    data = write_blob(tmp_path / "f.bin", 5000, seed=12)
    sha = hashlib.sha256(data).hexdigest()
    import obstore
    from obstore.store import S3Store

    public = S3Store(
        s3_bucket.name, endpoint=s3_bucket.endpoint, region="us-east-1",
        access_key_id="k", secret_access_key="s",
        client_options={"allow_http": True, "default_headers": {"x-amz-acl": "public-read"}},
    )  # fmt: skip
    obstore.put(public, f"models/sha256/{sha[:2]}/{sha}", data)
    monkeypatch.setitem(sys.modules, "obstore", None)  # import obstore -> ImportError
    mirror = open_mirror(s3_bucket.settings(), http)
    assert mirror is not None and not mirror.can_publish
    assert mirror.stat(sha) == len(data)
    assert (
        mirror.object_url(sha)
        == f"{s3_bucket.endpoint}/{s3_bucket.name}/models/sha256/{sha[:2]}/{sha}"
    )
    assert http.get(mirror.object_url(sha)).content == data
    with pytest.raises(ConfigError, match=r"sdlib\[s3\]") as info:
        mirror.push(tmp_path / "f.bin", hash_file(tmp_path / "f.bin"))
    assert info.value.exit_code == 2


def test_push_library_describes_each_model(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """``push --library``: every model file of a webUI folder, each sidecar saying what the
    file is (a LoRA and a VAE, made from their fixture specs); a pickle that would run code
    is refused and never uploaded."""
    from sdlib.services import Context
    from sdlib.services import mirror as service
    from tests.support.trees import a1111, st, unsafe_pickle

    root = a1111(tmp_path / "webui")
    lora = st(root / "models" / "Lora" / "style.safetensors", "lora_sd15_kohya", small=True)
    vae = st(root / "models" / "VAE" / "vae.safetensors", "vae_sd", small=True)
    bad = unsafe_pickle(root / "models" / "Stable-diffusion" / "evil.ckpt", tmp_path / "ran")
    settings = s3_bucket.settings(Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    with Context(settings) as ctx:
        outcomes = {Path(o.path).name: o for o in service.push_library(ctx, root, ui="a1111")}
    assert outcomes["style.safetensors"].status == "created"
    assert outcomes["vae.safetensors"].status == "created"
    assert outcomes["evil.ckpt"].status == "failed" and outcomes["evil.ckpt"].code == 3
    # An SD 1.x VAE's weights do not say SD 1 or 2, so only the LoRA's base is asserted.
    for path, kind, base in ((lora, "lora", "sd1"), (vae, "vae", None)):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        sidecar = json.loads(s3_bucket.read(f"models/meta/{sha}.json"))
        assert sidecar["kind"] == kind, sidecar
        assert base is None or sidecar["base"] == base, sidecar
    evil = hashlib.sha256(bad.read_bytes()).hexdigest()
    stored = s3_bucket.keys()
    assert not any(evil in key for key in stored)
    assert not (tmp_path / "ran").exists()


def test_a_private_bucket_read_without_credentials_is_access_denied(
    s3_bucket: S3Bucket, http: httpx2.Client
) -> None:
    from sdlib.errors import AccessDenied
    from sdlib.mirror import Mirror, MirrorConfig

    data = b"private bytes"
    sha = hashlib.sha256(data).hexdigest()
    s3_bucket.plant(f"models/sha256/{sha[:2]}/{sha}", data)
    as_http = MirrorConfig(url=f"{s3_bucket.endpoint}/{s3_bucket.name}/models/")
    with pytest.raises(AccessDenied) as info:
        Mirror(as_http, http).stat(sha)
    assert info.value.exit_code == 6


def test_a_missing_bucket_is_named(s3_bucket: S3Bucket, http: httpx2.Client) -> None:
    from dataclasses import replace

    from sdlib.errors import NotFound

    missing = replace(s3_bucket, name="no-such-bucket-here")
    mirror = open_mirror(missing.settings(), http)
    assert mirror is not None
    with pytest.raises(NotFound, match="there is no bucket 'no-such-bucket-here'") as info:
        list(mirror.entries())
    assert info.value.exit_code == 5 and "\n" not in str(info.value)


def test_server_errors_are_one_line_without_the_xml_body() -> None:
    from sdlib.mirror._s3 import _first_line

    said = _first_line(RuntimeError(
        "Generic S3 error: Error performing PUT http://h/b/k?X-Amz-Signature=abc in 7ms - "
        "Server returned non-2xx status code: 503 Service Unavailable: <?xml version=\"1.0\"?>"
        "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>\n"
        "Debug source: ..."
    ))  # fmt: skip
    assert said == "the server answered HTTP 503 Service Unavailable (SlowDown)"


def test_push_takes_the_civitai_identity_from_the_info_sidecar(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """A file no index knows, with a ``.civitai.info`` beside it: the mirror's sidecar
    names the version and file whose SHA256 matches."""
    from sdlib.services import Context
    from sdlib.services import mirror as service

    data = write_blob(tmp_path / "thing.safetensors", 3000, seed=13)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "thing.civitai.info").write_text(json.dumps({
        "id": 777, "modelId": 55, "files": [
            {"id": 1, "hashes": {"SHA256": "0" * 64}},
            {"id": 2, "hashes": {"SHA256": sha.upper()}},
        ],
    }))  # fmt: skip
    settings = s3_bucket.settings(Settings(cache_dir=tmp_path / "c", data_dir=tmp_path / "d"))
    with Context(settings) as ctx:
        [outcome] = service.push_files(ctx, [tmp_path / "thing.safetensors"])
    assert outcome.status == "created"
    sidecar = json.loads(s3_bucket.read(f"models/meta/{sha}.json"))
    assert sidecar["sources"] == [{"type": "civitai", "model_id": 55, "version_id": 777,
                                   "file_id": 2}]  # fmt: skip
