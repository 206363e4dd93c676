"""Downloads and installs from the Hugging Face Hub through sdlib's own engine, against the
demo Hub (``HF_ENDPOINT``). The expected bytes come from huggingface_hub's own client, an
independent implementation of the Hub protocol."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdlib.demo.server import DemoServer
from sdlib.library.index import Index
from sdlib.manifest import parse_lock
from tests.conftest import RunCli

pytestmark = pytest.mark.slow  # subprocesses

VAE = "hf:stabilityai/sdxl-vae/sdxl_vae.safetensors"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_huggingface_hub(civitai: DemoServer, cache: Path, repo: str, name: str) -> Path:
    """The file as huggingface_hub fetches it (into a real HF cache at ``cache``)."""
    pytest.importorskip("huggingface_hub")
    code = (
        "import sys\nfrom huggingface_hub import hf_hub_download\n"
        "print(hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": civitai.hub_url, "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_XET": "1"})  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, repo, name, str(cache)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def hf(civitai: DemoServer, run_cli: RunCli, tmp_path: Path) -> RunCli:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {"HF_ENDPOINT": civitai.hub_url, "HF_HUB_CACHE": str(tmp_path / "no-hf-cache")}
        return run_cli(*args, env={**base, **(env or {})})

    return run


def test_a_hub_vae_lands_verified_in_the_webui_vae_folder(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    root = tmp_path / "R"
    done = hf("download", VAE, "--ui", "a1111", "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    path = Path(result["path"])
    assert path == root / "models" / "VAE" / "sdxl_vae.safetensors"
    assert result["source"] == "hf" and result["verified"] and result["kind"] == "vae"
    assert result["revision"] and result["pinned_ref"].startswith("hf:stabilityai/sdxl-vae@")
    expected = _by_huggingface_hub(civitai, tmp_path / "oracle", "stabilityai/sdxl-vae",
                                   "sdxl_vae.safetensors")  # fmt: skip
    assert _sha256(path) == _sha256(expected) == result["sha256"].lower()
    # The Hub token (none here) and Civitai's never went to the CDN.
    assert not any(r.authorization for r in civitai.requests if r.server == "hub-cdn")


def test_a_hub_install_is_in_the_library_index_at_once(hf: RunCli, tmp_path: Path) -> None:
    """Classified, with its SHA256 and verification and the pinned revision in its
    history, before any scan; no Civitai identity, so ``identify`` may look it up."""
    root = tmp_path / "R"
    done = hf("download", VAE, "--ui", "a1111", "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    path = Path(result["path"])
    with Index(tmp_path / "data" / "library.sqlite") as index:
        row = index.file_at(str(path))
        assert row is not None and row.id is not None
        assert (row.kind, row.container, row.present) == ("vae", "safetensors", 1)
        assert row.sha256 == _sha256(path).upper() and row.size == path.stat().st_size
        assert row.civitai_version_id is None and row.identify_state is None
        assert row.verification is not None
        assert json.loads(row.verification)["status"] == "verified"
        history = index.history(row.id)
        assert [e["event"] for e in history] == ["added", "downloaded"]
        assert history[1]["ref"] == result["pinned_ref"] and "version_id" not in history[1]


def test_bytes_already_in_the_hugging_face_cache_are_not_downloaded_again(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    cache = tmp_path / "hf-cache"
    _by_huggingface_hub(civitai, cache, "stabilityai/sdxl-vae", "sdxl_vae.safetensors")
    civitai.clear_requests()
    root = tmp_path / "R"
    done = hf("download", VAE, "--ui", "a1111", "--root", str(root), "--json",
              env={"HF_HUB_CACHE": str(cache)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert "from the Hugging Face cache" in done.stderr and result["verified"]
    assert not [r for r in civitai.requests if r.server == "hub-cdn"]  # no byte fetched
    blob = next((cache / "models--stabilityai--sdxl-vae" / "blobs").iterdir())
    assert _sha256(Path(result["path"])) == blob.name  # LFS blobs are named by their sha256


def test_a_corrupt_cache_blob_is_never_placed(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    cache = tmp_path / "hf-cache"
    _by_huggingface_hub(civitai, cache, "stabilityai/sdxl-vae", "sdxl_vae.safetensors")
    blob = next((cache / "models--stabilityai--sdxl-vae" / "blobs").iterdir())
    published = _sha256(blob)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    root = tmp_path / "R"
    done = hf("download", VAE, "--ui", "a1111", "--root", str(root), "--json",
              env={"HF_HUB_CACHE": str(cache)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert "not the published file" in done.stderr
    assert _sha256(Path(result["path"])) == published  # downloaded afresh


def test_a_manifest_with_a_civitai_and_a_hub_entry_locks_both(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    manifest = tmp_path / "models.toml"
    manifest.write_text(
        '[target]\nui = "a1111"\nroot = "webui"\n\n'
        '[[model]]\nref = "58390"\n\n'
        f'[[model]]\nref = "{VAE}"\n',
        encoding="utf-8",
    )
    first = hf("install", "-f", str(manifest), "--json")
    assert first.returncode == 0, first.stderr
    lock = parse_lock((tmp_path / "models.lock").read_text(encoding="utf-8"))
    hub = lock[VAE]
    assert (
        hub.version_id is None and hub.pinned and hub.pinned.startswith("hf:stabilityai/sdxl-vae@")
    )
    assert "/resolve/" in hub.download and lock["58390"].version_id is not None
    placed = tmp_path / "webui" / hub.path
    assert _sha256(placed) == hub.sha256.lower()
    # --frozen on an empty root rebuilds both exactly, from the lock.
    again = hf("install", "-f", str(manifest), "--frozen", "--root", str(tmp_path / "fresh"),
               "--json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    statuses = {e["ref"]: e["status"] for e in json.loads(again.stdout)["entries"]}
    assert statuses == {"58390": "installed", VAE: "installed"}
    assert _sha256(tmp_path / "fresh" / hub.path) == hub.sha256.lower()


def test_a_hub_ref_with_civitai_filters_is_a_manifest_error(hf: RunCli, tmp_path: Path) -> None:
    manifest = tmp_path / "models.toml"
    manifest.write_text(f'[target]\nroot = "w"\nui = "a1111"\n\n[[model]]\nref = "{VAE}"\n'
                        'format = "SafeTensor"\n', encoding="utf-8")  # fmt: skip
    done = hf("install", "-f", str(manifest))
    assert done.returncode == 2 and "applies to Civitai refs" in done.stderr


def test_show_reads_each_model_header_to_say_what_it_is(hf: RunCli, civitai: DemoServer) -> None:
    """The Hub only lets names suggest a kind: 'sd_xl_base_1.0_0.9vae' looks like a VAE but
    is a full SDXL checkpoint with the 0.9 VAE baked in. show reads each header (Range
    requests, a fraction of the file) and says what the weights are."""
    done = hf("show", "hf:stabilityai/stable-diffusion-xl-base-1.0", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    peeked = {p["path"]: p for p in data["peeked"]}
    baked = peeked["sd_xl_base_1.0_0.9vae.safetensors"]
    assert (baked["kind"], baked["base"]) == ("checkpoint", "sdxl")
    lora = peeked["sd_xl_offset_example-lora_1.0.safetensors"]
    assert (lora["kind"], lora["base"]) == ("lora", "sdxl")
    sizes = {f["path"]: f["size"] for f in data["files"]}
    assert all(p["bytes_read"] < sizes[path] for path, p in peeked.items())
    civitai.clear_requests()
    quiet = hf("show", "hf:stabilityai/stable-diffusion-xl-base-1.0", "--json", "--no-peek")
    assert json.loads(quiet.stdout)["peeked"] == []
    assert not [r for r in civitai.requests if r.server == "hub-cdn"]


def test_a_file_of_the_same_name_from_another_repo_gets_the_repo_name(
    hf: RunCli, tmp_path: Path
) -> None:
    """Both LCM LoRAs are published as pytorch_lora_weights.safetensors: the second must
    not replace the first (A1111 would key them the same); it gets its repo's name."""
    root = tmp_path / "R"
    paths = []
    for repo in ("latent-consistency/lcm-lora-sdv1-5", "latent-consistency/lcm-lora-sdxl"):
        done = hf("download", f"hf:{repo}/pytorch_lora_weights.safetensors", "--ui", "a1111",
                  "--root", str(root), "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        paths.append(Path(json.loads(done.stdout)[0]["path"]))
    assert [p.name for p in paths] == [
        "pytorch_lora_weights.safetensors", "pytorch_lora_weights_lcm-lora-sdxl.safetensors"
    ]  # fmt: skip
    assert _sha256(paths[0]) != _sha256(paths[1]) and all(p.is_file() for p in paths)


def test_error_lines_keep_their_brackets(hf: RunCli, tmp_path: Path) -> None:
    """The hint '[huggingface] token' was eaten as rich markup ('or set  token')."""
    done = hf("download", "hf:black-forest-labs/FLUX.1-dev/ae.safetensors", "--ui", "a1111",
              "--root", str(tmp_path / "R"))  # fmt: skip
    assert done.returncode == 6
    assert "[huggingface] token" in done.stderr


def test_civitai_file_filters_on_a_hub_ref_are_a_usage_error(hf: RunCli, tmp_path: Path) -> None:
    done = hf("download", VAE, "--format", "SafeTensor", "--to", str(tmp_path / "out"))
    assert done.returncode == 2 and "apply to Civitai references" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_repo_with_several_models_lists_them_once_with_sizes(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    """Exit 2 and every candidate with its size, in one line that names the repo once (it
    read 'hf:X: hf:X has 3 model files')."""
    ref = "hf:stabilityai/stable-diffusion-xl-base-1.0"
    done = hf("download", ref, "--ui", "a1111", "--root", str(tmp_path / "R"))
    assert done.returncode == 2
    [line] = [x for x in done.stderr.splitlines() if "error" in x]
    assert line.count(ref + ":") == 0 and line.count(ref + " ") == 1, line
    repo = civitai.hub.repos["stabilityai/stable-diffusion-xl-base-1.0"]
    models = [f.path for f in repo.files if "/" not in f.path and f.path.endswith(".safetensors")]
    assert len(models) == 3
    for path in models:
        size = civitai.hub.files[(repo.id, path)].size
        assert f"{ref}/{path} ({size / 2**20:.1f} MiB)" in line
    assert not (tmp_path / "R").exists() or not any((tmp_path / "R").rglob("*.safetensors"))


def _served(civitai: DemoServer, repo: str, path: str) -> bytes:
    """The bytes the demo Hub serves for a file (what its published sha256 must be of)."""
    return civitai.hub.files[(repo, path)].read()


def test_a_dropped_hub_download_resumes_where_it_stopped(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    civitai.hub.add_fault("drop", after_bytes=1 << 20, times=1)
    civitai.clear_requests()
    root = tmp_path / "R"
    done = hf("download", VAE, "--ui", "a1111", "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    served = _served(civitai, "stabilityai/sdxl-vae", "sdxl_vae.safetensors")
    assert Path(result["path"]).read_bytes() == served and result["verified"]
    cdn = [r for r in civitai.requests if r.server == "hub-cdn" and r.method == "GET"]
    assert len(cdn) == 2, [r.headers.get("Range") for r in cdn]
    # The second request asks for the rest only, from where the first one stopped.
    resumed = {k.lower(): v for k, v in cdn[1].headers.items()}.get("range", "")
    start = int(resumed.removeprefix("bytes=").split("-")[0])
    assert 0 < start <= 1 << 20


def test_a_hub_file_that_is_not_its_published_sha256_is_exit_4_and_not_placed(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    civitai.hub.add_fault("corrupt")  # the CDN's bytes, not the Hub's sha256, change
    root = tmp_path / "R"
    done = hf("download", VAE, "--ui", "a1111", "--root", str(root))
    assert done.returncode == 4, done.stderr
    published = hashlib.sha256(_served(civitai, "stabilityai/sdxl-vae",
                                       "sdxl_vae.safetensors")).hexdigest()  # fmt: skip
    assert published.upper() in done.stderr and "SHA256 differs" in done.stderr
    assert [p for p in root.rglob("*") if p.is_file()] == []  # no file, no part, no sidecar


def test_parallel_ranges_go_to_the_cdn_url_without_the_token(
    hf: RunCli, civitai: DemoServer, tmp_path: Path
) -> None:
    """Several connections fetch ranges of the signed CDN URL the Hub redirected to: the
    Hub is asked once, and the Hub token never travels with a range."""
    ref = civitai.hub.add_large_file(40 << 20)
    config = tmp_path / "split.toml"
    config.write_text("[download]\nsplit_threshold_mib = 1\n", encoding="utf-8")
    civitai.clear_requests()
    done = hf("download", ref, "--connections", "3", "--to", str(tmp_path / "out"), "--json",
              env={"SDLIB_CONFIG": str(config), "HF_TOKEN": "hf_demo_token"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    repo, _, path = ref.removeprefix("hf:").rpartition("/")
    served = civitai.hub.files[(repo, path)].read()
    assert (
        hashlib.sha256(Path(result["path"]).read_bytes()).digest()
        == hashlib.sha256(served).digest()
    )
    cdn = [r for r in civitai.requests if r.server == "hub-cdn" and r.method == "GET"]
    ranges = [r for r in cdn if any(k.lower() == "range" for k in r.headers)]
    assert len(ranges) >= 2 and not any(r.authorization for r in cdn)
    resolves = [r for r in civitai.requests if r.server == "hub" and "/resolve/" in r.path]
    assert len(resolves) <= 2  # the HEAD that reads size and sha256, and one GET
