"""`sdlib download` as a user runs it: a subprocess against the local Civitai-compatible server."""

from __future__ import annotations

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
from sdlib.hashing import hash_file
from tests.support.cli import run_sdlib, sdlib_argv

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

LARGE = 48 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("files"), large_size=LARGE) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: DemoServer) -> None:
    server.reset()


@pytest.fixture
def env(server: DemoServer, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SDLIB_CIVITAI_URL": server.url,
        "SDLIB_CACHE_DIR": str(tmp_path / "cache"),
        "SDLIB_DATA_DIR": str(tmp_path / "data"),
        "SDLIB_CONFIG": str(tmp_path / "config.toml"),
        "CIVITAI_TOKEN": "demo-token",
    }


@pytest.fixture
def webui(tmp_path: Path) -> Path:
    root = tmp_path / "stable-diffusion-webui"
    (root / "modules").mkdir(parents=True)
    (root / "webui.py").write_text("")
    (root / "modules" / "sd_models.py").write_text("")
    (root / "models" / "Stable-diffusion").mkdir(parents=True)
    return root


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_download_into_a1111_with_sidecars(env: dict[str, str], webui: Path) -> None:
    before = files(webui)
    proc = run_sdlib("download", "4384", "--ui", "a1111", "--root", str(webui), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    model = Path(result["path"])
    assert model.parent == webui / "models" / "Stable-diffusion"
    assert result["kind"] == "checkpoint" and result["base"] == "sd1" and result["verified"]
    assert hash_file(model).sha256 == result["sha256"]
    stem = model.stem
    added = set(files(webui)) - set(before)
    prefix = "models/Stable-diffusion/"
    assert {prefix + f"{stem}.safetensors", prefix + f"{stem}.civitai.info",
            prefix + f"{stem}.json"} <= added  # fmt: skip
    previews = [a for a in added if ".preview." in a]
    assert len(previews) == 1 and previews[0].endswith((".png", ".jpeg", ".webp"))
    info = json.loads((model.parent / f"{stem}.civitai.info").read_text())
    assert info["id"] == result["version_id"]
    assert info["modelId"] == result["model_id"] and "trainedWords" in info  # Civitai's own JSON
    assert "picked" in proc.stderr

    again = run_sdlib("download", "4384", "--ui", "a1111", "--root", str(webui), "--json", env=env)
    assert again.returncode == 0
    assert json.loads(again.stdout)[0]["status"] == "already-present"
    assert files(webui) == sorted(set(before) | added)


def test_stability_matrix_gets_its_connected_model_info(
    env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "StabilityMatrix" / "Data"
    (root / "Models" / "StableDiffusion").mkdir(parents=True)
    args = ("download", "4384", "--ui", "stabilitymatrix", "--root", str(root), "--json")
    proc = run_sdlib(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    model = Path(result["path"])
    assert model.parent == root / "Models" / "StableDiffusion"
    cm_path = model.with_name(model.stem + ".cm-info.json")
    assert str(cm_path) in result["sidecars"]
    info = json.loads(cm_path.read_text(encoding="utf-8"))
    assert info["ModelId"] == result["model_id"] and info["VersionId"] == result["version_id"]
    assert info["RemoteFileId"] == result["file_id"] and info["ModelType"] == "Checkpoint"
    assert info["Hashes"]["SHA256"] == result["sha256"]
    assert info["BaseModel"] == "SD 1.5" and info["Source"] == 0
    assert info["FileMetadata"] == {"fp": "fp16", "size": "pruned", "format": "SafeTensor"}
    assert info["SourceUrl"].endswith(f"/models/{result['model_id']}?modelVersionId=128713")
    assert info["ImportedAt"].endswith("+00:00")


def test_kinds_go_to_their_folders(env: dict[str, str], server: DemoServer, webui: Path) -> None:
    refs = {m.type: m.id for m in server.catalogue}
    wanted = {"LORA": "models/Lora", "TextualInversion": "embeddings", "VAE": "models/VAE"}
    args = [str(refs[t]) for t in wanted]
    proc = run_sdlib("download", *args, "--ui", "a1111", "--root", str(webui), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    placed = {r["ref"]: Path(r["path"]).parent.relative_to(webui).as_posix()
              for r in json.loads(proc.stdout)}  # fmt: skip
    assert placed == {str(refs[t]): folder for t, folder in wanted.items()}


def test_same_name_different_file_gets_the_version_id(env: dict[str, str], webui: Path) -> None:
    folder = webui / "models" / "Stable-diffusion"
    proc = run_sdlib("download", "4384", "--ui", "a1111", "--root", str(webui), "--json", env=env)
    name = Path(json.loads(proc.stdout)[0]["path"]).name
    path = folder / name
    mine = b"my own different file"
    path.unlink()
    path.write_bytes(mine)
    proc = run_sdlib("download", "4384", "--ui", "a1111", "--root", str(webui), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert Path(result["path"]).name == name.replace(
        ".safetensors", f"_{result['version_id']}.safetensors"
    )
    assert path.read_bytes() == mine


def test_errors_have_distinct_exit_codes(
    env: dict[str, str], server: DemoServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    assert run_sdlib("download", "123456789", "--to", str(dest), env=env).returncode == 5
    server.add_fault("401", match="/api/download/")
    proc = run_sdlib("download", "4384", "--to", str(dest), env=env)
    assert proc.returncode == 6 and "token" in proc.stderr.lower()
    server.reset()
    assert run_sdlib("download", "not a ref!", "--to", str(dest), env=env).returncode == 2
    assert run_sdlib("download", "4384", env=env).returncode == 2  # nowhere to put it
    assert not dest.exists() or files(dest) == []


def test_hash_mismatch_exits_4_and_lands_nothing(
    env: dict[str, str], server: DemoServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    server.add_fault("wrong-length", delta=-4096)
    proc = run_sdlib("download", "4384", "--to", str(dest), env=env)
    assert proc.returncode in (4, 7), proc.stderr
    assert not dest.exists() or [f for f in files(dest) if not f.endswith(".part")] == []


def test_kill_9_then_rerun_resumes(env: dict[str, str], server: DemoServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    server.rate_limit = 8 << 20  # about 6 s for the whole file
    proc = subprocess.Popen(
        sdlib_argv("download", str(LARGE_MODEL_ID), "--to", dest, "--connections", "1"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    part = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(dest.glob("*.part")) if dest.exists() else []
        if parts and parts[0].stat().st_size > 4 << 20:
            part = parts[0]
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert part is not None, "the download never started"
    kept = part.stat().st_size
    assert 0 < kept < LARGE
    server.rate_limit = None
    server.clear_requests()
    rerun = run_sdlib("download", str(LARGE_MODEL_ID), "--to", str(dest), "--json", env=env)
    assert rerun.returncode == 0, rerun.stderr
    [result] = json.loads(rerun.stdout)
    assert hash_file(result["path"]).sha256 == result["sha256"]
    first = next(r for r in server.requests if r.server == "storage")
    start = int(first.header("Range").split("=")[1].rstrip("-"))  # type: ignore[union-attr]
    assert start >= kept - (1 << 20)  # only what the killed run had not written
    assert not list(dest.glob("*.part"))


def test_help_has_an_example(env: dict[str, str]) -> None:
    proc = run_sdlib("download", "--help", env=env)
    assert proc.returncode == 0 and "sdlib download 4384" in proc.stdout


def test_ctrl_c_stops_promptly_and_keeps_a_resumable_part(
    env: dict[str, str], server: DemoServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    server.rate_limit = 4 << 20  # the whole file would take 12 s
    proc = subprocess.Popen(
        sdlib_argv("download", str(LARGE_MODEL_ID), "--to", dest),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(dest.glob("*.part")) if dest.exists() else []
        if parts and parts[0].stat().st_size > 1 << 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 8
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr.lower()
    [part] = list(dest.glob("*.part"))
    assert 0 < part.stat().st_size < LARGE
    assert [p.name for p in dest.iterdir()] == [part.name]


def test_ctrl_c_does_not_wait_for_a_silent_server(
    env: dict[str, str], server: DemoServer, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    server.add_fault("stall", after_bytes=3 << 20, seconds=60)  # every response goes silent
    proc = subprocess.Popen(
        sdlib_argv("download", str(LARGE_MODEL_ID), "--to", dest, "--connections", "1"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # The engine fills a 1 MiB buffer before it writes, so the last bytes before the stall
    # may sit in memory until the interrupt: wait for two of the three MiB on disk.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(dest.glob("*.part")) if dest.exists() else []
        if parts and parts[0].stat().st_size >= 2 << 20:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the download never started")
    time.sleep(1.0)  # silent now
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - started < 5, "waited for the stall timeout"
    assert proc.returncode == 130, stderr
    [part] = list(dest.glob("*.part"))
    assert part.stat().st_size == 3 << 20


def test_a_root_that_does_not_exist_yet_is_created(env: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "new" / "stable-diffusion-webui"
    proc = run_sdlib("download", "4384", "--ui", "a1111", "--root", str(root), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [result] = json.loads(proc.stdout)
    assert Path(result["path"]).parent == root / "models" / "Stable-diffusion"
    assert Path(result["path"]).is_file()
    # Without --ui nothing says which webUI a missing folder is for: refused, nothing made.
    unknown = tmp_path / "unknown-webui"
    proc = run_sdlib("download", "4384", "--root", str(unknown), env=env)
    assert proc.returncode == 2 and "--ui" in proc.stderr
    assert not unknown.exists()
    typo = tmp_path / "typo-webui"
    proc = run_sdlib("download", "4384", "--ui", "a111", "--root", str(typo), env=env)
    assert proc.returncode == 2
    assert not typo.exists()
