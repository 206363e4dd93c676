"""`sdlib downloads` as a user runs it: interrupted downloads are listed after the process
that started them is gone, finished with --resume (verified), or forgotten with --forget."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdlib.demo.catalogue import LARGE_MODEL_ID
from sdlib.demo.server import DemoServer
from tests.support.cli import isolated_env, run_sdlib, sdlib_argv

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

LARGE = 16 << 20
SMALL_REF = "4384@109123"  # DreamShaper 7: one 4 MiB file
SMALL_NAME = "dreamshaper_7.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("files"), large_size=LARGE) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: DemoServer) -> None:
    server.reset()


@pytest.fixture
def env(server: DemoServer, tmp_path: Path) -> dict[str, str]:
    """No retries: a cut connection ends the download at once (the part file stays)."""
    config = tmp_path / "config.toml"
    config.write_text("[network]\nretries = 0\nbackoff_max = 0.01\nread_timeout = 5\n")
    return isolated_env(tmp_path, SDLIB_CIVITAI_URL=server.url, SDLIB_CONFIG=str(config),
                        NO_COLOR="1", COLUMNS="80", PYTHONIOENCODING="utf-8")  # fmt: skip


def served_sha256(server: DemoServer, name: str | None = None) -> str:
    """SHA256 of the bytes the demo server serves for a file, computed here with hashlib."""
    [served] = [f for f in server.files.values()
                if (f.spec.name == name if name else f.large)]  # fmt: skip
    digest = hashlib.sha256()
    with served.open() as fh:
        left = served.size
        while left:
            chunk = fh.read(min(left, 1 << 20))
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest().upper()


def listed(env: dict[str, str]) -> list[dict[str, object]]:
    proc = run_sdlib("downloads", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    entries: list[dict[str, object]] = json.loads(proc.stdout)
    return entries


def cut_download(server: DemoServer, env: dict[str, str], dest: Path) -> Path:
    """``sdlib download`` whose connection is cut after 1 MiB; returns the part file."""
    server.add_fault("drop", after_bytes=1 << 20)
    proc = run_sdlib("download", SMALL_REF, "--to", str(dest), env=env)
    assert proc.returncode == 7, proc.stderr
    assert "sdlib downloads --resume" in proc.stderr
    server.reset()
    part = dest / (SMALL_NAME + ".part")
    assert part.stat().st_size == 1 << 20
    return part


def test_a_cut_download_is_listed_then_resumed_and_verified(
    server: DemoServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    part = cut_download(server, env, dest)

    [entry] = listed(env)
    assert entry["ref"] == SMALL_REF and entry["file_name"] == SMALL_NAME
    assert entry["target"] == str(dest / SMALL_NAME) and entry["part"] == str(part)
    assert entry["kept"] == part.stat().st_size and entry["part_exists"] is True
    assert entry["stopped_by"] == "network" and entry["reason"]

    plain = run_sdlib("downloads", env=env)  # through a pipe: one record a line
    assert plain.returncode == 0, plain.stderr
    [line] = plain.stdout.splitlines()
    assert line.startswith(f"{entry['id']}  {SMALL_REF}  1.0 MiB of 4.0 MiB  {dest / SMALL_NAME}")
    assert "--resume" in plain.stderr

    server.clear_requests()
    proc = run_sdlib("downloads", "--resume", str(entry["id"]), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert result["path"] == str(dest / SMALL_NAME) and result["verified"]
    assert hashlib.sha256((dest / SMALL_NAME).read_bytes()).hexdigest().upper() == (
        served_sha256(server, SMALL_NAME)
    )
    assert "resumed at 1.0 MiB of 4.0 MiB" in proc.stderr
    first = next(r for r in server.requests if r.server == "storage")
    assert first.header("Range") == f"bytes={1 << 20}-"  # only the missing bytes
    assert not part.exists() and listed(env) == []


def test_ctrl_c_is_listed_as_interrupted_and_resume_all_finishes_it(
    server: DemoServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    # 16 s for the whole file: still running when signalled, even on a loaded machine
    server.rate_limit = 1 << 20
    proc = subprocess.Popen(
        sdlib_argv("download", str(LARGE_MODEL_ID), "--to", dest, "--connections", "1"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(dest.glob("*.part")) if dest.exists() else []
        if parts and parts[0].stat().st_size > 1 << 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "sdlib downloads --resume" in stderr
    [part] = list(dest.glob("*.part"))
    [entry] = listed(env)
    assert entry["stopped_by"] == "interrupted"
    assert entry["kept"] == part.stat().st_size and 0 < part.stat().st_size < LARGE

    server.rate_limit = None
    done = run_sdlib("downloads", "--resume", env=env)  # no ID: all of them
    assert done.returncode == 0, done.stderr
    assert "resumed at" in done.stderr and "MiB" in done.stderr
    target = Path(str(entry["target"]))
    assert target.stat().st_size == LARGE
    digest = hashlib.sha256()
    with target.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest().upper() == served_sha256(server)
    assert listed(env) == []


def test_a_killed_download_is_listed_as_ended(
    server: DemoServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    server.rate_limit = 1 << 20  # 16 s: still running while `downloads` lists it (a subprocess)
    proc = subprocess.Popen(
        sdlib_argv("download", str(LARGE_MODEL_ID), "--to", dest, "--connections", "1"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(dest.glob("*.part")) if dest.exists() else []
        if parts and parts[0].stat().st_size > 1 << 20:
            break
        time.sleep(0.05)
    running = listed(env)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [e["stopped_by"] for e in running] == ["running"]
    [entry] = listed(env)
    assert entry["stopped_by"] == "ended"
    assert entry["kept"] == next(dest.glob("*.part")).stat().st_size


def test_forget_deletes_the_part_file_and_the_entry(
    server: DemoServer, env: dict[str, str], tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    part = cut_download(server, env, dest)
    mine = dest / "my-notes.txt"
    mine.write_text("untouched")
    [entry] = listed(env)

    assert run_sdlib("downloads", "--forget", "ffffffff", env=env).returncode == 5
    both = run_sdlib("downloads", "--forget", str(entry["id"]), "--resume", env=env)
    assert both.returncode == 2 and part.exists()

    proc = run_sdlib("downloads", "--forget", str(entry["id"]), env=env)
    assert proc.returncode == 0, proc.stderr
    assert str(part) in proc.stdout
    assert not part.exists() and mine.read_text() == "untouched"
    assert listed(env) == []
    assert run_sdlib("downloads", "--resume", str(entry["id"]), env=env).returncode == 5


def test_nothing_unfinished_says_so(env: dict[str, str]) -> None:
    proc = run_sdlib("downloads", env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "no unfinished downloads"
    assert listed(env) == []


def test_help_has_examples(env: dict[str, str]) -> None:
    proc = run_sdlib("downloads", "--help", env=env)
    assert proc.returncode == 0
    assert "sdlib downloads --resume" in proc.stdout and "sdlib downloads --forget" in proc.stdout


def test_a_relative_folder_is_resumed_from_anywhere(
    server: DemoServer, env: dict[str, str], tmp_path: Path
) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    server.add_fault("drop", after_bytes=1 << 20)
    proc = run_sdlib("download", SMALL_REF, "--to", "models", env=env, cwd=work)
    assert proc.returncode == 7, proc.stderr
    server.reset()
    [entry] = listed(env)
    assert entry["target"] == str(work / "models" / SMALL_NAME)
    done = run_sdlib("downloads", "--resume", str(entry["id"]), env=env, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    placed = (work / "models" / SMALL_NAME).read_bytes()
    assert hashlib.sha256(placed).hexdigest().upper() == served_sha256(server, SMALL_NAME)
    assert list(elsewhere.iterdir()) == []
