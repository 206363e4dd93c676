"""``sdlib mirror push|ls|verify|pull`` in a subprocess, against moto's S3 server on
127.0.0.1 and a plain HTTP server serving the layout from a folder.

Expected values come from the test's own bytes (hashlib) and the bucket as read behind
sdlib's back, never from sdlib's output."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from tests.support.cli import run_sdlib, sdlib_argv
from tests.support.quiet_server import QuietServer
from tests.support.s3_server import S3Bucket, write_blob


def _lock(path: Path, files: dict[str, bytes]) -> Path:
    """A lock file written by hand: names, sizes and SHA256s from the bytes."""
    lines = ["version = 1"]
    for i, (name, data) in enumerate(files.items(), 1):
        lines += ["", "[[model]]", f'ref = "civitai:{i}"', f'key = "civitai:{i}"',
                  f"model_id = {i}", f"version_id = {100 + i}", f"file_id = {200 + i}",
                  f'file_name = "{name}"', f"size = {len(data)}",
                  f'sha256 = "{hashlib.sha256(data).hexdigest().upper()}"',
                  f'download = "https://civitai.example/api/download/models/{100 + i}"',
                  f'path = "models/Lora/{name}"']  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow  # several sdlib subprocesses
def test_push_ls_verify_pull(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    env = {**os.environ, **s3_bucket.env()}
    a = write_blob(tmp_path / "a.safetensors", 200_000, seed=1)
    b = write_blob(tmp_path / "b.safetensors", 300_000, seed=2)
    done = run_sdlib("mirror", "push", tmp_path / "a.safetensors", tmp_path / "b.safetensors",
                     "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    pushed = json.loads(done.stdout)["files"]
    assert [(f["sha256"], f["status"]) for f in pushed] == [(_sha(a), "created"),
                                                           (_sha(b), "created")]  # fmt: skip
    assert s3_bucket.read(f"models/sha256/{_sha(a)[:2]}/{_sha(a)}") == a
    assert s3_bucket.read(f"models/sha256/{_sha(b)[:2]}/{_sha(b)}") == b

    listed = run_sdlib("mirror", "ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    objects = {o["sha256"]: o for o in json.loads(listed.stdout)["objects"]}
    assert objects.keys() == {_sha(a), _sha(b)}
    assert objects[_sha(b)]["size"] == len(b) and objects[_sha(b)]["names"] == ["b.safetensors"]
    human = run_sdlib("mirror", "ls", env=env)
    assert human.returncode == 0 and "2 object(s)" in human.stdout
    assert _sha(a).upper() in human.stdout

    verified = run_sdlib("mirror", "verify", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    assert {o["sha256"]: o["status"] for o in json.loads(verified.stdout)["objects"]} == {
        _sha(a): "ok", _sha(b): "ok"}  # fmt: skip

    lock = _lock(tmp_path / "models.lock", {"a.safetensors": a, "b.safetensors": b})
    out = tmp_path / "prefetch"
    pulled = run_sdlib("mirror", "pull", "--lock", lock, "--to", out, "--json", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert [f["status"] for f in json.loads(pulled.stdout)["files"]] == ["pulled", "pulled"]
    assert (out / "a.safetensors").read_bytes() == a
    assert (out / "b.safetensors").read_bytes() == b
    again = run_sdlib("mirror", "pull", "--lock", lock, "--to", out, "--json", env=env)
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["present", "present"]


def test_push_from_a_lock_checks_each_file(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    env = {**os.environ, **s3_bucket.env()}
    folder = tmp_path / "webui" / "models" / "Lora"
    folder.mkdir(parents=True)
    a = write_blob(folder / "a.safetensors", 50_000, seed=3)
    lock = _lock(tmp_path / "models.lock", {"a.safetensors": a, "gone.safetensors": b"x"})
    # A token pasted into a download URL must not spread through the shared sidecar.
    lock.write_text(lock.read_text().replace('/101"', '/101?type=Model&token=SECRET"'))
    done = run_sdlib("mirror", "push", "--lock", lock, "--root", tmp_path / "webui", "--json",
                     env=env)  # fmt: skip
    assert done.returncode == 5  # one file of the lock is not there
    files = json.loads(done.stdout)["files"]
    assert [f["status"] for f in files] == ["created", "failed"]
    sidecar = json.loads(s3_bucket.read(f"models/meta/{_sha(a)}.json"))
    assert sidecar["sources"][0]["version_id"] == 101 and sidecar["sources"][0]["file_id"] == 201
    assert sidecar["sources"][0]["url"].endswith("/101?type=Model")
    assert "SECRET" not in s3_bucket.read(f"models/meta/{_sha(a)}.json").decode()
    # A file that no longer matches the lock's SHA256 is refused (exit 4), nothing uploaded.
    (folder / "a.safetensors").write_bytes(b"changed")
    refused = run_sdlib("mirror", "push", "--lock", lock, "--root", tmp_path / "webui", env=env)
    assert refused.returncode == 4
    assert "not pushed" in refused.stderr


@pytest.mark.slow  # several sdlib subprocesses
def test_concurrent_pushes_of_one_file(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """Four machines push the same file at once: all succeed, exactly one created it, and
    the object is intact."""
    data = write_blob(tmp_path / "shared.safetensors", 2_000_000, seed=4)
    procs = []
    for i in range(4):
        home = tmp_path / f"machine{i}"
        env = {**os.environ, **s3_bucket.env(), "SDLIB_CACHE_DIR": str(home / "cache"),
               "SDLIB_DATA_DIR": str(home / "data")}  # fmt: skip
        procs.append(subprocess.Popen(
            sdlib_argv("mirror", "push", tmp_path / "shared.safetensors", "--json"), env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [r[1] for r in results]
    statuses = sorted(json.loads(out)["files"][0]["status"] for out, _ in results)
    assert statuses.count("created") == 1 and statuses.count("exists") == 3, statuses
    assert s3_bucket.read(f"models/sha256/{_sha(data)[:2]}/{_sha(data)}") == data
    assert s3_bucket.keys() == [f"models/meta/{_sha(data)}.json",
                                f"models/sha256/{_sha(data)[:2]}/{_sha(data)}"]  # fmt: skip


@pytest.mark.slow  # several sdlib subprocesses
def test_corrupt_object_is_reported_and_never_placed(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    env = {**os.environ, **s3_bucket.env()}
    good = write_blob(tmp_path / "good.bin", 100_000, seed=5)
    meant = os.urandom(100_000)
    s3_bucket.plant(f"models/sha256/{_sha(good)[:2]}/{_sha(good)}", good)
    # The object stored under meant's SHA256 holds other bytes of the same size.
    s3_bucket.plant(f"models/sha256/{_sha(meant)[:2]}/{_sha(meant)}", os.urandom(100_000))
    verified = run_sdlib("mirror", "verify", "--json", env=env)
    assert verified.returncode == 4, verified.stderr
    status = {o["sha256"]: o["status"] for o in json.loads(verified.stdout)["objects"]}
    assert status == {_sha(good): "ok", _sha(meant): "bad"}
    human = run_sdlib("mirror", "verify", _sha(meant), env=env)
    assert human.returncode == 4 and f"bad     {_sha(meant).upper()}" in human.stderr

    lock = _lock(tmp_path / "models.lock", {"good.bin": good, "meant.bin": meant})
    out = tmp_path / "out"
    pulled = run_sdlib("mirror", "pull", "--lock", lock, "--to", out, "--json", env=env)
    assert pulled.returncode == 4, pulled.stderr
    files = json.loads(pulled.stdout)["files"]
    assert [f["status"] for f in files] == ["pulled", "failed"]
    assert "corrupt" in files[1]["error"]
    assert (out / "good.bin").read_bytes() == good
    assert sorted(p.name for p in out.iterdir()) == ["good.bin"]  # no meant.bin, no .part


def test_missing_object_and_no_mirror(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    env = {**os.environ, **s3_bucket.env()}
    lock = _lock(tmp_path / "models.lock", {"x.bin": b"never pushed"})
    pulled = run_sdlib("mirror", "pull", "--lock", lock, "--to", tmp_path / "out", env=env)
    assert pulled.returncode == 5 and "not in the mirror" in pulled.stderr
    unset = run_sdlib("mirror", "ls")
    assert unset.returncode == 2 and "no mirror is configured" in unset.stderr


@pytest.mark.parametrize("command", [["ls"], ["verify"], ["push", "FILE"]])
def test_mirror_down_is_one_line_and_exit_7(command: list[str], tmp_path: Path) -> None:
    dead = S3Bucket(endpoint="http://127.0.0.1:9", name="studio")
    (tmp_path / "f.bin").write_bytes(b"some bytes")
    args = [str(tmp_path / "f.bin") if a == "FILE" else a for a in command]
    done = run_sdlib("mirror", *args, env={**os.environ, **dead.env()})
    assert done.returncode == 7, done.stderr
    assert "Traceback" not in done.stderr
    errors = [ln for ln in done.stderr.splitlines() if "error" in ln or "unreachable" in ln]
    assert errors and all("\n" not in e for e in errors)
    assert "unreachable" in done.stderr


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A read-only HTTP mirror: a folder served by the standard library on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sdlib/", root / "sdlib"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.slow  # several sdlib subprocesses
def test_http_read_only_mirror(http_mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = http_mirror
    data = write_blob(tmp_path / "src.bin", 150_000, seed=6)
    corrupt_for = os.urandom(5000)
    for sha, body in ((_sha(data), data), (_sha(corrupt_for), b"not those bytes")):
        (folder / "sha256" / sha[:2]).mkdir(parents=True, exist_ok=True)
        (folder / "sha256" / sha[:2] / sha).write_bytes(body)
    env = {**os.environ, "SDLIB_MIRROR_URL": url}
    lock = _lock(tmp_path / "models.lock", {"model.safetensors": data})
    pulled = run_sdlib("mirror", "pull", "--lock", lock, "--to", tmp_path / "out", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == data
    verified = run_sdlib("mirror", "verify", _sha(data), _sha(corrupt_for), "--json", env=env)
    assert verified.returncode == 4
    assert [o["status"] for o in json.loads(verified.stdout)["objects"]] == ["ok", "bad"]
    pushed = run_sdlib("mirror", "push", tmp_path / "src.bin", env=env)
    assert pushed.returncode == 1 or pushed.returncode == 2
    assert "read-only" in pushed.stderr
    listed = run_sdlib("mirror", "ls", env=env)
    assert listed.returncode == 2 and "cannot be listed" in listed.stderr


def test_pull_into_the_store_by_kind(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """Without --to, pulled files land in the configured store, in their kind's folder (the
    kind from the sidecar)."""
    import httpx2

    from sdlib.hashing import hash_file
    from sdlib.mirror import MirrorMeta, open_mirror

    data = write_blob(tmp_path / "style.safetensors", 40_000, seed=8)
    with httpx2.Client() as http:
        mirror = open_mirror(s3_bucket.settings(), http)
        assert mirror is not None
        hashes = hash_file(tmp_path / "style.safetensors")
        mirror.push(tmp_path / "style.safetensors", hashes, MirrorMeta(hashes, kind="lora"))
    store = tmp_path / "store"
    env = {**os.environ, **s3_bucket.env()}
    assert run_sdlib("store", "init", store, env=env).returncode == 0
    lock = _lock(tmp_path / "models.lock", {"style.safetensors": data})
    pulled = run_sdlib("mirror", "pull", "--lock", lock, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert (store / "Lora" / "style.safetensors").read_bytes() == data
