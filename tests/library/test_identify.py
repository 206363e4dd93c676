"""``identify`` and ``updates`` against the local Civitai-compatible server."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.hashcache import HashCache
from sdlib.http import build_client
from sdlib.library.identify import Identifier, IdentifyOptions, IdentifyResult
from sdlib.library.index import Index
from sdlib.library.scan import ScanResult, load_layout, scan
from sdlib.library.updates import check_updates
from sdlib.sources.civitai import CivitaiLookup
from tests.support import trees


@dataclass
class Env:
    server: DemoServer
    index: Index
    hc: HashCache
    remote: CivitaiLookup
    root: Path

    def copy(self, name: str, rel: str) -> Path:
        served = next(f for f in self.server.files.values() if f.spec.name == name)
        assert served.path is not None
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(served.path, dest)
        return dest

    def scan(self, ui: str = "auto") -> ScanResult:
        return scan(self.root, load_layout(self.root, ui), self.index, self.hc)

    def identify(self, ui: str = "a1111", **options: Any) -> list[IdentifyResult]:
        rows = [f.row for f in self.scan(ui).models]
        opts = IdentifyOptions.for_layout(ui, **options)
        return Identifier(self.index, self.hc, self.remote, opts).run(rows)

    def by_hash_requests(self) -> list[str]:
        return [r.path for r in self.server.requests if "/by-hash/" in r.path]


@pytest.fixture
def env(civitai: DemoServer, civitai_settings: Settings, tmp_path: Path) -> Iterator[Env]:
    root = trees.a1111(tmp_path / "webui")
    with (
        Index(tmp_path / "data" / "library.sqlite") as index,
        HashCache(tmp_path / "cache" / "hashes.sqlite") as hc,
        build_client(civitai_settings) as http,
    ):
        yield Env(civitai, index, hc, CivitaiLookup(http, civitai.url, index, rate=0), root)


def by_name(results: list[IdentifyResult], name: str) -> IdentifyResult:
    return next(r for r in results if Path(r.path).name == name)


def test_identify_writes_sidecars_and_records_ids(env: Env) -> None:
    lora = env.copy("add_detail.safetensors", "models/Lora/add_detail.safetensors")
    trees.touch(lora.with_suffix(".json"), json.dumps({"description": "mine", "notes": ""}))
    ckpt = env.copy(
        "dreamshaper_7.safetensors", "models/Stable-diffusion/dreamshaper_7.safetensors"
    )
    emb = env.copy("easynegative.safetensors", "embeddings/easynegative.safetensors")
    unknown = trees.st(env.root / "models" / "Lora" / "homemade.safetensors", "lokr_sdxl")
    results = env.identify()
    assert {Path(r.path).name: r.state for r in results} == {
        "add_detail.safetensors": "identified", "dreamshaper_7.safetensors": "identified",
        "easynegative.safetensors": "identified", "homemade.safetensors": "unidentified",
    }  # fmt: skip
    r = by_name(results, "dreamshaper_7.safetensors")
    assert (r.model_id, r.version_id, r.file_id) == (4384, 109123, 1091231)
    assert r.matched_by == "SHA256" and r.base_model == "SD 1.5"
    # .civitai.info is exactly the JSON Civitai sent for the hash.
    sha = env.server.files[1091231].hashes["SHA256"]
    sent = env.remote.http.get(f"{env.server.url}/api/v1/model-versions/by-hash/{sha}").json()
    assert json.loads(ckpt.with_suffix(".civitai.info").read_text()) == sent
    preview = ckpt.with_name("dreamshaper_7.preview.png")
    assert preview.read_bytes().startswith(b"\x89PNG")
    # The user's own <stem>.json keys win; it was backed up before the change.
    meta = json.loads(lora.with_suffix(".json").read_text())
    assert meta["description"] == "mine" and meta["sd version"] == "SD1"
    assert "modelVersionId=62833" in meta["notes"]
    assert json.loads(lora.with_name("add_detail.json.bak").read_text())["description"] == "mine"
    assert emb.with_suffix(".civitai.info").is_file()
    described = json.loads(ckpt.with_suffix(".json").read_text())["description"]
    assert described == "A general purpose SD model that aims at doing everything well."
    # Unknown files get nothing written next to them and are not errors.
    assert sorted(p.name for p in unknown.parent.glob("homemade*")) == ["homemade.safetensors"]
    row = env.index.file_at(str(ckpt))
    assert row is not None and row.civitai_version_id == 109123
    assert row.identify_state == "identified"
    assert [e["event"] for e in env.index.history(row.id or 0)] == ["added", "identified"]


def test_second_run_asks_nothing_and_restores_missing_sidecars(env: Env) -> None:
    ckpt = env.copy("dreamshaper_8.safetensors", "models/Stable-diffusion/ds8.safetensors")
    trees.st(env.root / "models" / "Lora" / "homemade.safetensors", "lokr_sdxl")
    env.identify()
    asked = len(env.by_hash_requests())
    ckpt.with_suffix(".civitai.info").unlink()
    again = env.identify()
    assert len(env.by_hash_requests()) == asked  # everything came from the index
    assert all(r.cached for r in again)
    assert ckpt.with_suffix(".civitai.info").is_file()  # rewritten from the cached answer


def test_autov3_finds_a_file_whose_header_was_edited(env: Env) -> None:
    lora = env.copy("add_detail.safetensors", "models/Lora/renamed.safetensors")
    data = lora.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = {**header.get("__metadata__", {}), "ss_output_name": "renamed"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    lora.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    (r,) = env.identify()
    assert r.state == "identified" and r.matched_by == "AutoV3" and r.version_id == 62833


def test_errors_touch_no_sidecar_and_a_rerun_resumes(env: Env) -> None:
    good = env.copy("easynegative.safetensors", "embeddings/easynegative.safetensors")
    bad = env.copy("deliberate_v2.safetensors", "models/Stable-diffusion/deliberate.safetensors")
    trees.touch(bad.with_suffix(".civitai.info"), json.dumps({"id": 15236, "mine": True}))
    sha = env.server.files[152361].hashes["SHA256"]
    # No bulk lookup here (an older server), and the one file's lookup fails.
    env.server.add_fault("404", match="/api/v1/model-versions/by-hash", times=1)
    env.server.add_fault("500", match=f"/api/v1/model-versions/by-hash/{sha}")
    results = env.identify(refresh=True)
    assert by_name(results, "easynegative.safetensors").state == "identified"
    failed = by_name(results, "deliberate.safetensors")
    assert failed.state == "error" and failed.exit_code == 7 and failed.sidecars == ()
    assert json.loads(bad.with_suffix(".civitai.info").read_text()) == {"id": 15236, "mine": True}
    env.server.clear_faults()
    before = len(env.by_hash_requests())
    again = env.identify()
    assert by_name(again, "deliberate.safetensors").state == "identified"
    assert len(env.by_hash_requests()) == before + 1  # only the file that failed
    # A good existing .civitai.info is kept unless --refresh.
    assert json.loads(bad.with_suffix(".civitai.info").read_text())["mine"] is True
    assert good.with_suffix(".civitai.info").is_file()


def test_a_404_never_replaces_good_metadata(env: Env) -> None:
    model = trees.st(env.root / "models" / "Lora" / "deleted_from_civitai.safetensors", "lokr_sdxl")
    info = {"id": 424242, "name": "the version that was deleted"}
    trees.touch(model.with_suffix(".civitai.info"), json.dumps(info))
    (r,) = env.identify(refresh=True)
    assert r.state == "unidentified" and r.sidecars == ()
    assert json.loads(model.with_suffix(".civitai.info").read_text()) == info
    assert not model.with_name("deleted_from_civitai.civitai.info.bak").exists()


def test_rate_limit_stops_asking_and_keeps_what_was_done(env: Env) -> None:
    for name in ("dreamshaper_8.safetensors", "deliberate_v2.safetensors",
                 "anythingV5_PrtRE.safetensors"):  # fmt: skip
        env.copy(name, f"models/Stable-diffusion/{name}")
    env.server.add_fault("429", match="/api/v1/model-versions/by-hash", retry_after=0)
    results = env.identify(jobs=1)
    assert {r.state for r in results} <= {"error", "skipped"}
    assert max(r.exit_code for r in results) == 7
    assert any("stopped after" in (r.error or "") for r in results)
    assert all(r.sidecars == () for r in results)
    env.server.clear_faults()
    assert {r.state for r in env.identify()} == {"identified"}


def test_sdnext_gets_no_a1111_user_metadata(env: Env) -> None:
    lora = env.copy("add_detail.safetensors", "models/Lora/add_detail.safetensors")
    (r,) = env.identify(ui="sdnext", previews=False)
    assert r.state == "identified"
    assert sorted(p.name for p in lora.parent.iterdir()) == [
        "add_detail.civitai.info", "add_detail.safetensors"
    ]  # fmt: skip


def test_stability_matrix_gets_connected_model_info(env: Env) -> None:
    lora = env.copy("add_detail.safetensors", "Models/Lora/add_detail.safetensors")
    (r,) = env.identify(ui="stabilitymatrix", previews=False)
    assert r.state == "identified"
    cm = lora.with_name("add_detail.cm-info.json")
    assert str(cm) in r.sidecars
    info = json.loads(cm.read_text(encoding="utf-8"))
    assert (info["ModelId"], info["VersionId"], info["RemoteFileId"]) == (
        r.model_id, r.version_id, r.file_id
    )  # fmt: skip
    assert info["ModelType"] == "LORA" and info["Hashes"]["SHA256"] == r.sha256
    assert info["RemoteFileName"] == "add_detail.safetensors" and info["Source"] == 0
    assert info["AuthorUsername"] and info["Tags"] and info["TrainedWords"] is not None
    # A second run from the cache, after the user deleted it, restores it as it was.
    cm.unlink()
    (again,) = env.identify(ui="stabilitymatrix", previews=False)
    assert again.cached and json.loads(cm.read_text(encoding="utf-8")) == info


def test_identical_copies_get_identical_sidecars(env: Env) -> None:
    """ImportedAt was the time of writing, so two copies of the same bytes got different
    .cm-info.json files and organize --dedupe could not tell they were the same."""
    first = env.copy("add_detail.safetensors", "Models/Lora/add_detail.safetensors")
    second = env.copy("add_detail.safetensors", "Models/Lora/copy/add_detail_copy.safetensors")
    results = env.identify(ui="stabilitymatrix", previews=False)
    assert [r.state for r in results] == ["identified", "identified"]
    for suffix in (".cm-info.json", ".civitai.info"):
        a, b = (p.with_name(p.stem + suffix).read_bytes() for p in (first, second))
        assert a == b


# --- updates -----------------------------------------------------------------------------------


def test_updates_in_batches_with_cache_and_partial_failures(env: Env) -> None:
    sd = "models/Stable-diffusion"
    env.copy("dreamshaper_7.safetensors", f"{sd}/ds7.safetensors")
    env.copy("dreamshaper_8.safetensors", f"{sd}/ds8.safetensors")
    env.copy("protogenX34_v34.safetensors", f"{sd}/protogen.safetensors")  # archived
    env.copy("majicmixRealistic_v7.safetensors", f"{sd}/majic.safetensors")  # NSFW
    env.copy("retroAnime_v10.safetensors", "models/LyCORIS/retro.safetensors")
    env.copy("add_detail.safetensors", "models/Lora/add_detail.safetensors")
    env.identify(previews=False)
    rows = [f.row for f in env.scan().models]
    # identify already fetched each model once (for its description): a warm cache.
    warm = check_updates(rows, env.remote)
    assert warm.requests == 0 and warm.cache_hits == 5 and len(warm.files) == 6
    env.server.clear_requests()
    env.remote.model_batch = 4
    fresh = check_updates(rows, env.remote, refresh=True)
    status = {Path(r.path).name: r.status for r in fresh.files}
    assert status == {
        "ds7.safetensors": "update-available", "ds8.safetensors": "up-to-date",
        "protogen.safetensors": "up-to-date", "majic.safetensors": "up-to-date",
        "retro.safetensors": "update-available", "add_detail.safetensors": "up-to-date",
    }  # fmt: skip
    ds7 = next(r for r in fresh.files if r.path.endswith("ds7.safetensors"))
    assert [n["version_id"] for n in ds7.newer] == [128713] and ds7.newer[0]["same_base"]
    paths = [r.path for r in env.server.requests]
    batches = [p for p in paths if p.startswith("/api/v1/models?")]
    assert len(batches) == 2 and all("ids=" in p for p in batches)
    assert paths.count("/api/v1/models/3666") == 1  # not in the list: asked alone
    assert fresh.errors == [] and fresh.requests == 3
    # A failing request costs only its own model; its last answer is used, marked stale.
    env.server.add_fault("500", match="/api/v1/models/3666")
    env.remote.model_batch = 50
    partial = check_updates(rows, env.remote, refresh=True)
    proto = next(r for r in partial.files if r.path.endswith("protogen.safetensors"))
    assert proto.stale and proto.status == "up-to-date"
    assert partial.errors and "3666" in partial.errors[0]
    assert sum(r.status == "update-available" for r in partial.files) == 2


def test_updates_without_any_cached_answer_report_the_error(env: Env, tmp_path: Path) -> None:
    env.copy("dreamshaper_7.safetensors", "models/Stable-diffusion/ds7.safetensors")
    env.identify(previews=False)
    rows = [f.row for f in env.scan().models]
    with Index(tmp_path / "other.sqlite") as empty:
        remote = CivitaiLookup(env.remote.http, env.server.url, empty, rate=0)
        env.server.add_fault("503", match="/api/v1/models", retry_after=0)
        report = check_updates(rows, remote)
    (r,) = report.files
    assert r.status == "error" and r.error and report.errors


def test_the_same_bytes_under_a_newer_version_are_no_update(env: Env) -> None:
    ckpt = env.copy("dreamshaper_7.safetensors", "models/Stable-diffusion/ds7.safetensors")
    env.identify(previews=False)
    sha = trees.sha256(ckpt).upper()
    env.index.remote_put(env.remote.key("model:4384"), 200, {
        "id": 4384, "name": "DreamShaper", "versions": [
            {"id": 128713, "name": "8 (re-upload)", "baseModel": "SD 1.5",
             "files": [{"id": 1, "sha256": sha}]},
            {"id": 109123, "name": "7", "baseModel": "SD 1.5", "files": [{"id": 2, "sha256": sha}]},
        ],
    })  # fmt: skip
    (r,) = check_updates([f.row for f in env.scan().models], env.remote).files
    assert r.status == "up-to-date" and r.newer == ()


def test_bulk_lookup_asks_for_a_hundred_hashes_at_once(env: Env) -> None:
    """Civitai's ``POST /model-versions/by-hash``, against the demo server's own."""
    names = ("dreamshaper_8.safetensors", "deliberate_v2.safetensors",
             "anythingV5_PrtRE.safetensors", "add_detail.safetensors")  # fmt: skip
    for name in names:
        env.copy(name, f"models/Stable-diffusion/{name}")
    trees.st(env.root / "models" / "Lora" / "homemade.safetensors", "lokr_sdxl")
    results = env.identify(previews=False)
    assert sorted(r.state for r in results) == ["identified"] * 4 + ["unidentified"]
    asked = [(r.method, r.path) for r in env.server.requests if "/by-hash" in r.path]
    posts = [a for a in asked if a[0] == "POST"]
    single = [p for m, p in asked if m == "GET"]
    assert posts == [("POST", "/api/v1/model-versions/by-hash")]
    # Only the unknown file is asked for alone, by its AutoV3 and AutoV2.
    assert len(single) == 2


def test_without_the_bulk_endpoint_each_file_is_asked_alone(env: Env) -> None:
    for name in ("dreamshaper_8.safetensors", "add_detail.safetensors"):
        env.copy(name, f"models/Stable-diffusion/{name}")
    # An older server (or a mirror) answering the bulk POST with 404: one try, then GETs.
    env.server.add_fault("404", match="/api/v1/model-versions/by-hash", times=1)
    results = env.identify(previews=False)
    assert [r.state for r in results] == ["identified"] * 2
    asked = [(r.method, r.path) for r in env.server.requests if "/by-hash" in r.path]
    assert [m for m, _ in asked] == ["POST", "GET", "GET"]


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_nothing_is_written_behind_a_link_that_leads_outside_the_root(
    env: Env, tmp_path: Path
) -> None:
    """A shared folder linked into the root (Stability Matrix does this) is identified, but
    its sidecars are never written: the root is a wall."""
    from sdlib.library.wall import Wall

    shared = tmp_path / "shared-store"
    shared.mkdir()
    env.copy("add_detail.safetensors", "models/Lora/mine.safetensors")
    served = next(f for f in env.server.files.values() if f.spec.name == "add_detail.safetensors")
    assert served.path is not None
    shutil.copyfile(served.path, shared / "theirs.safetensors")
    os.symlink(shared, env.root / "models" / "Lora" / "shared", target_is_directory=True)
    rows = [f.row for f in env.scan("a1111").models]
    wall = Wall.for_layout(env.root, load_layout(env.root, "a1111"))
    opts = IdentifyOptions.for_layout("a1111", previews=False, wall=wall)
    results = Identifier(env.index, env.hc, env.remote, opts).run(rows)
    assert {Path(r.path).name: r.state for r in results} == {
        "mine.safetensors": "identified",
        "theirs.safetensors": "identified",
    }
    assert by_name(results, "mine.safetensors").sidecars  # inside the root: written
    assert by_name(results, "theirs.safetensors").sidecars == ()
    assert sorted(p.name for p in shared.iterdir()) == ["theirs.safetensors"]


def test_answers_are_kept_per_server(env: Env) -> None:
    """The cache of answers was not keyed by server: after a run against the demo server, a
    run against another server reused its answers (and the preview URLs of a server that
    was gone, each retried for seconds). Another server's cache is its own."""
    from sdlib.errors import SourceError

    ckpt = env.copy("dreamshaper_7.safetensors", "models/Stable-diffusion/ds7.safetensors")
    env.identify(previews=False)
    hashes = {"SHA256": trees.sha256(ckpt).upper()}
    assert env.remote.cached_match(hashes, "SHA256") is not None
    other = CivitaiLookup(env.remote.http, "http://127.0.0.1:9", env.index, rate=0)
    assert other.cached_match(hashes, "SHA256") is None
    with pytest.raises(SourceError):
        other.match(hashes)  # asked, not answered from the demo server's cache
    assert other.requests == 1 and other.cache_hits == 0
