"""Mirror first (issue 19 item 4): lock installs on simulated machines against a real S3 API
server (moto on 127.0.0.1) and the demo Civitai server, which counts its storage downloads.

Each machine has its own cache, data dir and webUI root, and its own ``Context``; they run
concurrently in threads. The lock is written from the demo catalogue's own facts (the
SHA256 and size of the files it serves), not from sdlib's output.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.bulk import BulkReport
from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.server import DemoServer
from sdlib.mirror import object_key
from sdlib.services import Context
from sdlib.services.manifests import install_manifest, load_manifest
from tests.support.demo_lock import write_lock
from tests.support.s3_server import S3Bucket

#: (ref, file id) of three small demo files: two checkpoints and a LoRA.
FILES = (("4384@128713", 1287131), ("43331@176425", 1764251), ("58390@62833", 628331))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("demo")) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: DemoServer) -> None:
    server.reset()


def machine(base: Path, civitai_url: str, bucket: S3Bucket | None) -> Settings:
    settings = replace(
        Settings(cache_dir=base / "cache", data_dir=base / "data"),
        civitai=CivitaiSettings(base_url=civitai_url),
        network=NetworkSettings(retries=1, backoff_max=0.01, read_timeout=10, connect_timeout=2),
    )
    return bucket.settings(settings) if bucket is not None else settings


def install(base: Path, settings: Settings, manifest: Path) -> BulkReport:
    """One machine installs ``manifest``'s lock into its own webUI folder (``--frozen``)."""
    own = base / "models.toml"
    if not own.exists():
        own.write_text(manifest.read_text())
        (base / "models.lock").write_text(manifest.with_suffix(".lock").read_text())
    with Context(settings) as ctx:
        plan = load_manifest(own, root=base / "webui", ui="a1111", frozen=True)
        return install_manifest(ctx, plan, frozen=True, jobs=3)


def upstream_downloads(server: DemoServer) -> dict[str, int]:
    """File bodies the demo storage host served, by path (a download's first request)."""
    counts: dict[str, int] = {}
    for r in server.requests:
        body = r.server == "storage" and r.method == "GET" and r.path.startswith("/files/")
        if body and not r.header("Range"):
            name = r.path.split("?")[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def sha256_of(path: str | None) -> str:
    assert path is not None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest().upper()


def lock_sha(server: DemoServer, file_id: int) -> str:
    return server.files[file_id].hashes["SHA256"].upper()


@pytest.mark.slow
def test_three_machines_fetch_each_file_from_upstream_once_in_total(
    tmp_path: Path, server: DemoServer, s3_bucket: S3Bucket
) -> None:
    manifest = write_lock(tmp_path, server, FILES)
    reports: dict[int, BulkReport] = {}

    def run(n: int) -> None:
        base = tmp_path / f"machine{n}"
        base.mkdir()
        reports[n] = install(base, machine(base, server.url, s3_bucket), manifest)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(reports) == [0, 1, 2]
    downloads = upstream_downloads(server)
    assert len(downloads) == len(FILES) and set(downloads.values()) == {1}, downloads
    came = []
    for report in reports.values():
        assert report.exit_code == 0, [r.to_dict() for r in report.results]
        for result, (_ref, file_id) in zip(report.results, FILES, strict=True):
            assert result.status == "installed"
            assert sha256_of(result.path) == lock_sha(server, file_id)  # every placed file
            came.append(result.came_from)
    assert came.count("upstream") == len(FILES) and came.count("mirror") == 2 * len(FILES)
    for _ref, file_id in FILES:  # each file is in the mirror, under its SHA256
        data = s3_bucket.read(f"{s3_bucket.prefix}/{object_key(lock_sha(server, file_id))}")
        assert hashlib.sha256(data).hexdigest().upper() == lock_sha(server, file_id)
    claims = [key for key in s3_bucket.keys() if "/claims/" in key]  # noqa: SIM118
    assert not claims  # every claim released


def test_with_upstream_down_a_lock_installs_from_the_mirror_alone(
    tmp_path: Path, server: DemoServer, s3_bucket: S3Bucket
) -> None:
    manifest = write_lock(tmp_path, server, FILES[:2])
    first = tmp_path / "first"
    first.mkdir()
    assert install(first, machine(first, server.url, s3_bucket), manifest).exit_code == 0
    before = sum(upstream_downloads(server).values())
    # Another machine whose Civitai is unreachable (a closed port): the API and storage.
    dead = "http://127.0.0.1:9"
    other = tmp_path / "other"
    other.mkdir()
    report = install(other, machine(other, dead, s3_bucket), manifest)
    assert report.exit_code == 0, [r.to_dict() for r in report.results]
    for result, (_ref, file_id) in zip(report.results, FILES[:2], strict=True):
        assert result.status == "installed" and result.came_from == "mirror"
        assert sha256_of(result.path) == lock_sha(server, file_id)
    assert sum(upstream_downloads(server).values()) == before


def test_a_model_deleted_upstream_still_installs_from_the_mirror(
    tmp_path: Path, server: DemoServer, s3_bucket: S3Bucket
) -> None:
    manifest = write_lock(tmp_path, server, FILES[2:])
    first = tmp_path / "first"
    first.mkdir()
    assert install(first, machine(first, server.url, s3_bucket), manifest).exit_code == 0
    # Civitai took the model down: a server whose catalogue no longer has it (404).
    with DemoServer(tmp_path / "gone", catalogue=()) as gone:
        other = tmp_path / "other"
        other.mkdir()
        report = install(other, machine(other, gone.url, s3_bucket), manifest)
        assert any(r.path.startswith("/api/v1/model-versions") for r in gone.requests)
    [result] = report.results
    assert result.status == "installed" and result.came_from == "mirror", result.to_dict()
    assert sha256_of(result.path) == lock_sha(server, FILES[2][1])
    # The mirror's sidecar said what it is: placed as a LoRA.
    assert Path(result.path).parent.name == "Lora"


def test_a_corrupt_mirror_object_is_never_placed(
    tmp_path: Path, server: DemoServer, s3_bucket: S3Bucket
) -> None:
    (ref, file_id) = FILES[2]
    sha = lock_sha(server, file_id)
    size = server.files[file_id].size
    key = f"{s3_bucket.prefix}/{object_key(sha)}"
    s3_bucket.plant(key, b"\0" * size)  # the right size, the wrong bytes
    meta = {"version": 1, "sha256": sha.lower(), "size": size, "hashes": {"sha256": sha},
            "kind": "lora", "base": "sd1", "names": ["add_detail.safetensors"]}  # fmt: skip
    s3_bucket.plant(f"{s3_bucket.prefix}/meta/{sha.lower()}.json", json.dumps(meta).encode())
    manifest = write_lock(tmp_path, server, ((ref, file_id),))
    base = tmp_path / "m"
    base.mkdir()
    # Upstream down: the corrupt copy is all there is, and it is refused.
    report = install(base, machine(base, "http://127.0.0.1:9", s3_bucket), manifest)
    [result] = report.results
    assert result.status == "failed" and result.exit_code == 7, result.to_dict()
    assert not list((base / "webui").rglob("*.safetensors*"))  # nothing placed, no part file
    # Upstream up: the corrupt copy is refused again, upstream serves the file.
    report = install(base, machine(base, server.url, s3_bucket), manifest)
    [result] = report.results
    assert result.status == "installed" and result.came_from == "upstream", result.to_dict()
    assert sha256_of(result.path) == sha
    assert upstream_downloads(server) and sum(upstream_downloads(server).values()) == 1


@pytest.mark.slow
def test_download_says_where_the_bytes_came_from(
    tmp_path: Path, server: DemoServer, s3_bucket: S3Bucket
) -> None:
    """`sdlib download` (a subprocess per machine): the first machine fetches from upstream and
    publishes, the second gets the mirror's copy; --json and the human line say so."""
    from tests.support.cli import isolated_env, run_sdlib

    ref, file_id = FILES[0]
    for home in ("home-a", "home-b"):  # both may publish; the second finds the object
        config = tmp_path / home / "config" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(s3_bucket.config_toml(publish=True))
    first = run_sdlib("download", ref, "--to", tmp_path / "a", "--no-preview", "--json",
                      env=isolated_env(tmp_path / "home-a", **s3_bucket.env(),
                                       SDLIB_CIVITAI_URL=server.url))  # fmt: skip
    assert first.returncode == 0, first.stderr
    [one] = json.loads(first.stdout)
    assert one["from"] == "upstream" and one["published"] == "created"
    second = run_sdlib("download", ref, "--to", tmp_path / "b", "--no-preview",
                       env=isolated_env(tmp_path / "home-b", **s3_bucket.env(),
                                        SDLIB_CIVITAI_URL=server.url))  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "(from mirror)" in second.stdout
    placed = tmp_path / "b" / server.files[file_id].spec.name
    assert hashlib.sha256(placed.read_bytes()).hexdigest().upper() == lock_sha(server, file_id)
    assert sum(upstream_downloads(server).values()) == 1
