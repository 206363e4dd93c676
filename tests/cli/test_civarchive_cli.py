"""CivArchive as the fallback for models gone from Civitai, over real sockets: the demo
server's Civitai answers 404/410 for them, its CivArchive host knows them and lists mirrors.

Expected hashes are computed here with hashlib over the bytes the mirror serves; what sdlib
prints is never the expected value.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from sdlib.demo._civarchive_api import ARCHIVE_ONLY, TAMPERED
from sdlib.demo.server import DemoServer

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]
GONE = ARCHIVE_ONLY.versions[0].files[0]  # Civitai knows neither the version nor its hash
BAD = TAMPERED.versions[0].files[0]  # its mirror serves other bytes than its SHA256


@pytest.fixture
def archive(civitai: DemoServer, cli_env: dict[str, str]) -> DemoServer:
    cli_env["SDLIB_CIVARCHIVE_URL"] = civitai.civarchive_url
    return civitai


def mirror_bytes(server: DemoServer, file_id: int) -> bytes:
    """The bytes the archive's live mirror for ``file_id`` sends (fetched here)."""
    record = httpx2.get(
        f"{server.civarchive_url}/api/models/1",
        params={"modelVersionId": str(file_id // 10)},
    ).json()
    [live] = [m for f in record["version"]["files"] if f["id"] == file_id
              for m in f["mirrors"] if m["deletedAt"] is None]  # fmt: skip
    return httpx2.get(live["url"]).content


def published_sha256(server: DemoServer, file_id: int) -> str:
    record = httpx2.get(
        f"{server.civarchive_url}/api/models/1", params={"modelVersionId": str(file_id // 10)}
    ).json()
    [sha] = [f["sha256"] for f in record["version"]["files"] if f["id"] == file_id]
    return str(sha).upper()


def archive_requests(server: DemoServer) -> list[str]:
    return [r.path for r in server.requests if r.server == "civarchive"]


def model_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".json")


def test_a_gone_version_downloads_from_a_mirror_verified_by_sha256(
    archive: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    root = tmp_path / "webui"
    served = mirror_bytes(archive, GONE.id)
    expected = hashlib.sha256(served).hexdigest().upper()
    assert expected == published_sha256(archive, GONE.id)  # the record is honest
    archive.clear_requests()
    ref = f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}"
    r = run_cli("download", ref, "--root", str(root), "--ui", "a1111", "--json",
                env={"CIVITAI_TOKEN": "demo-token"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    [result] = json.loads(r.stdout)
    assert result["source"] == "civarchive"
    assert result["sha256"] == expected and result["verified"] is True
    placed = Path(result["path"])
    assert placed.parent == root / "models" / "Lora"
    assert hashlib.sha256(placed.read_bytes()).hexdigest().upper() == expected
    [line] = [x for x in r.stderr.splitlines() if "gone from Civitai" in x]
    host = archive.civarchive_url.removeprefix("http://")
    assert f"CivArchive mirror ({host})" in line and expected in line
    # The Civitai token went to Civitai's API, never to CivArchive or its mirror.
    api = [q for q in archive.requests if q.server == "api"]
    assert api and all(q.authorization for q in api)
    ours = [q for q in archive.requests if q.server == "civarchive"]
    assert any(q.path.startswith("/mirror/") for q in ours)
    assert not any(q.authorization for q in ours)


def test_sha256_that_civitai_does_not_know_is_fetched_from_a_mirror(
    archive: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    expected = hashlib.sha256(mirror_bytes(archive, GONE.id)).hexdigest()
    root = tmp_path / "webui"
    r = run_cli("download", f"sha256:{expected}", "--root", str(root), "--ui", "a1111", "--json")
    assert r.returncode == 0, r.stderr
    [result] = json.loads(r.stdout)
    assert (result["source"], result["sha256"]) == ("civarchive", expected.upper())
    assert "the SHA256 asked for" in r.stderr


def test_an_archived_model_comes_from_a_mirror_through_a_files_only_answer(
    archive: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    served = archive.files[40481]  # Protogen x3.4: Civitai answers 410 at its download
    assert served.path is not None
    expected = hashlib.sha256(served.path.read_bytes()).hexdigest().upper()
    root = tmp_path / "webui"
    r = run_cli("download", "3666", "--root", str(root), "--ui", "a1111", "--json")
    assert r.returncode == 0, r.stderr
    [result] = json.loads(r.stdout)
    assert (result["source"], result["sha256"]) == ("civarchive", expected)
    assert Path(result["path"]).parent == root / "models" / "Stable-diffusion"


def test_a_mirror_serving_wrong_bytes_is_exit_4_and_nothing_is_placed(
    archive: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    root = tmp_path / "webui"
    served = hashlib.sha256(mirror_bytes(archive, BAD.id)).hexdigest().upper()
    published = published_sha256(archive, BAD.id)
    assert served != published
    r = run_cli("download", f"{TAMPERED.id}@{TAMPERED.versions[0].id}", "--root", str(root),
                "--ui", "a1111")  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert "Traceback" not in r.stderr
    assert published in r.stderr and served in r.stderr
    assert model_files(root) == []  # no model, no .part left behind


def test_identify_names_civarchive_as_the_source(
    archive: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    root = tmp_path / "webui"
    data = mirror_bytes(archive, GONE.id)
    lora = root / "models" / "Lora" / "ink.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(data)
    (root / "models" / "Stable-diffusion").mkdir()
    r = run_cli("identify", str(lora), "--json")
    assert r.returncode == 0, r.stderr
    [result] = json.loads(r.stdout)["files"]
    assert result["state"] == "identified"
    assert result["source"] == "civarchive"
    assert result["sha256"] == hashlib.sha256(data).hexdigest().upper()
    assert (result["model_id"], result["version_id"]) == (ARCHIVE_ONLY.id, GONE.id // 10)
    assert result["model_name"] == ARCHIVE_ONLY.name
    # The index remembers the source: a second run answers from it, no request at all.
    archive.clear_requests()
    r = run_cli("identify", str(lora))
    assert r.returncode == 0, r.stderr
    assert "source: civarchive" in r.stdout
    assert archive_requests(archive) == []
    assert not (lora.with_suffix(".civitai.info")).exists()  # Civitai's sidecar is Civitai's


def test_civarchive_down_or_slow_leaves_civitais_error_quickly(
    archive: DemoServer, run_cli: RunCli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(cli_env["SDLIB_CONFIG"])
    config.write_text(config.read_text() + "[civarchive]\ntimeout = 1\n")
    ref = f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}"
    for fault in ("down", "slow", "500"):
        archive.civarchive.set_fault(fault, seconds=10)
        start = time.monotonic()
        r = run_cli("download", ref, "--root", str(tmp_path / "webui"), "--ui", "a1111")
        took = time.monotonic() - start
        assert r.returncode == 5, (fault, r.stderr)  # Civitai's "not found"
        assert "Traceback" not in r.stderr
        assert "CivArchive could not be asked" in r.stderr
        assert took < 8, (fault, took)  # one short timeout, no retries
    assert model_files(tmp_path / "webui") == []


def test_negative_answers_are_cached(archive: DemoServer, run_cli: RunCli, tmp_path: Path) -> None:
    unknown = hashlib.sha256(b"no model anywhere has these bytes").hexdigest()
    for _ in range(2):
        r = run_cli("download", f"sha256:{unknown}", "--root", str(tmp_path / "w"), "--ui",
                    "a1111")  # fmt: skip
        assert r.returncode == 5, r.stderr
    assert archive_requests(archive) == [f"/api/sha256/{unknown}"]  # the second run: none


def test_disabled_in_the_config_civarchive_is_never_asked(
    archive: DemoServer, run_cli: RunCli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(cli_env["SDLIB_CONFIG"])
    config.write_text(config.read_text() + "[civarchive]\nenabled = false\n")
    r = run_cli("download", f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}", "--root",
                str(tmp_path / "webui"), "--ui", "a1111")  # fmt: skip
    assert r.returncode == 5, r.stderr
    assert archive_requests(archive) == []


def test_without_a_configured_url_a_demo_civitai_never_reaches_civarchive(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    """The default CivArchive (civarchive.com) archives civitai.com/.red only: pointed at
    another server, sdlib asks no archive at all (no request leaves 127.0.0.1 here)."""
    r = run_cli("download", f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}", "--root",
                str(tmp_path / "webui"), "--ui", "a1111")  # fmt: skip
    assert r.returncode == 5, r.stderr
    assert "CivArchive" not in r.stderr
    assert archive_requests(civitai) == []


def test_inspect_reads_a_gone_models_header_from_its_mirror(
    archive: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    """Remote inspect works for every source: a version gone from Civitai is judged from the
    first bytes of its CivArchive mirror, labelled as such, and equals the report of the
    whole file on disk."""
    local = tmp_path / GONE.name
    local.write_bytes(mirror_bytes(archive, GONE.id))
    whole = run_cli("inspect", str(local), "--json")
    assert whole.returncode == 0, whole.stderr
    [expected] = json.loads(whole.stdout)
    archive.clear_requests()
    ref = f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}"
    r = run_cli("inspect", ref, "--json")
    assert r.returncode == 0, r.stderr
    [report] = json.loads(r.stdout)
    assert report["source"] == "civarchive" and report["file_name"] == GONE.name
    for key in ("kind", "base", "precision", "tensors", "parameters", "lora"):
        assert report[key] == expected[key], key
    assert report["bytes_read"] < local.stat().st_size
    mirror = [q for q in archive.requests if q.server == "civarchive" and "/mirror/" in q.path]
    assert mirror and not any(q.authorization for q in mirror)
    human = run_cli("inspect", ref)
    assert human.returncode == 0, human.stderr
    host = archive.civarchive_url.removeprefix("http://")
    assert f"CivArchive mirror ({host})" in human.stdout


def test_show_offers_the_mirror_of_a_version_gone_from_civitai(
    archive: DemoServer, run_cli: RunCli
) -> None:
    """Civitai answers 404 for the version; show says so and offers what download would
    fetch, labelled source: CivArchive, without fetching a byte of it."""
    expected = hashlib.sha256(mirror_bytes(archive, GONE.id)).hexdigest().upper()
    archive.clear_requests()
    ref = f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}"
    r = run_cli("show", ref)
    assert r.returncode == 0, r.stderr
    assert "gone from Civitai" in r.stdout and "source: CivArchive" in r.stdout
    assert GONE.name in r.stdout and expected in r.stdout
    assert archive.civarchive_url.removeprefix("http://") in r.stdout  # the mirror's host
    assert f"sdlib download {ref}" in r.stdout
    assert not [q for q in archive.requests if "/mirror/" in q.path]
    data = json.loads(run_cli("show", ref, "--json").stdout)
    assert data["model"] is None and "not found" in data["gone"]
    assert (data["elsewhere"]["source"], data["elsewhere"]["sha256"]) == ("civarchive", expected)


def test_show_of_an_archived_model_offers_its_mirror(archive: DemoServer, run_cli: RunCli) -> None:
    served = archive.files[40481]  # Protogen x3.4: Civitai lists the version without files
    assert served.path is not None
    expected = hashlib.sha256(served.path.read_bytes()).hexdigest().upper()
    r = run_cli("show", "3666")
    assert r.returncode == 0, r.stderr
    assert "No downloadable files" in r.stdout and "source: CivArchive" in r.stdout
    assert expected in r.stdout
    data = json.loads(run_cli("show", "3666", "--json").stdout)
    assert data["version"]["id"] == 4048 and data["elsewhere"]["sha256"] == expected


def test_show_without_civarchive_keeps_civitais_answer(
    civitai: DemoServer, run_cli: RunCli
) -> None:
    r = run_cli("show", f"{ARCHIVE_ONLY.id}@{ARCHIVE_ONLY.versions[0].id}")
    assert r.returncode == 5 and "not found" in r.stderr
    assert not [q for q in civitai.requests if q.server == "civarchive"]
