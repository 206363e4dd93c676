"""``sdlib search --source hf`` and ``sdlib show hf:...`` as a user runs them: a subprocess
against the demo server's Hub (``HF_ENDPOINT``), JSON and piped output, errors and exits."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx2
import pytest

from sdlib.demo.server import DemoServer
from tests.conftest import RunCli
from tests.support.cli import run_sdlib, sdlib_argv


@pytest.fixture
def hf(civitai: DemoServer, run_cli: RunCli) -> RunCli:
    """``run_cli`` with HF_ENDPOINT at the demo Hub."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={"HF_ENDPOINT": civitai.hub_url, **(env or {})})

    return run


def test_search_lists_lora_repos_as_json(hf: RunCli) -> None:
    result = hf("search", "--source", "hf", "--type", "lora", "--base", "sdxl", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [m["id"] for m in found] == ["latent-consistency/lcm-lora-sdxl"]
    assert found[0]["source"] == "huggingface" and found[0]["base"] == "sdxl"


def test_search_through_a_pipe_is_one_record_per_line(hf: RunCli) -> None:
    result = hf("search", "--source", "hf", "--sort", "downloads", "--limit", "4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[0] == "repo"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 4 and all(len(r) == len(lines[0].split("\t")) for r in rows)
    assert rows[0][0] == "hf:stabilityai/stable-diffusion-xl-base-1.0"  # most downloads
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--type", "hypernetwork"), "unknown type"),
        (("--base", "pony"), "unknown base"),
        (("--sort", "newest"), "unknown sort"),
        (("--period", "week"), "--period and --nsfw are Civitai's"),
    ],
)
def test_search_words_the_hub_has_not_are_usage_errors(
    hf: RunCli, args: tuple[str, ...], words: str
) -> None:
    result = hf("search", "--source", "hf", *args)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_lists_files_with_sizes_sha256_and_what_they_are(
    civitai: DemoServer, hf: RunCli
) -> None:
    result = hf("show", "hf:stable-diffusion-v1-5/stable-diffusion-v1-5", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    files = {f["path"]: f for f in shown["files"]}
    single = files["v1-5-pruned-emaonly.safetensors"]
    data = httpx2.get(
        f"{civitai.hub_url}/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/"
        "main/v1-5-pruned-emaonly.safetensors",
        follow_redirects=True,
    ).content
    assert single["sha256"] == hashlib.sha256(data).hexdigest()
    assert single["size"] == len(data)
    assert single["candidate"] and single["guess"]["layout"] == "single-file"
    assert single["guess"]["kind"] == "checkpoint" and single["guess"]["guessed"]
    assert files["unet/diffusion_pytorch_model.safetensors"]["guess"]["layout"] == "diffusers"
    assert set(shown["diffusers_folders"]) == {"scheduler", "text_encoder", "unet", "vae"}
    assert shown["model"]["license"] == "creativeml-openrail-m"
    assert shown["card_summary"].startswith("Stable Diffusion is a latent text-to-image")


def test_show_marks_the_file_a_reference_names(hf: RunCli) -> None:
    result = hf(
        "show", "https://huggingface.co/stabilityai/sdxl-vae/blob/main/sdxl_vae.safetensors"
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "sdxl_vae.safetensors" in x)
    assert "<- selected" in line and "vae" in line
    shown = hf("show", "hf:stabilityai/sdxl-vae/sdxl_vae.safetensors", "--json")
    assert json.loads(shown.stdout)["selected"] == "sdxl_vae.safetensors"


def test_show_says_a_repo_is_gated_and_renamed(hf: RunCli) -> None:
    gated = hf("show", "hf:black-forest-labs/FLUX.1-dev")
    assert gated.returncode == 0, gated.stderr
    assert "Gated (auto)" in gated.stdout and "ae.safetensors" in gated.stdout
    moved = hf("show", "https://huggingface.co/runwayml/stable-diffusion-v1-5")
    assert moved.returncode == 0, moved.stderr
    assert "runwayml/stable-diffusion-v1-5 moved to stable-diffusion-v1-5/" in moved.stdout


@pytest.mark.parametrize(
    ("token", "words"),
    [(None, "log in"), ("hf_demo_pending", "not (yet) in its authorized list")],
    ids=["no-login", "not-approved"],
)
def test_show_says_why_a_gated_files_header_was_not_read(
    hf: RunCli, civitai: DemoServer, token: str | None, words: str
) -> None:
    """The header of a gated file is refused like its download, and said the same way (where
    to request access), not as the bare 'answered HTTP 401 ... it needs authentication'."""
    shown = hf("show", "hf:black-forest-labs/FLUX.1-dev", env={"HF_TOKEN": token or ""})
    assert shown.returncode == 0, shown.stderr
    [line] = [x for x in shown.stdout.splitlines() if x.strip().startswith("content")]
    assert "gated" in line and words in line, line
    assert f"{civitai.hub_url}/black-forest-labs/FLUX.1-dev" in line
    assert "HTTP 401" not in line and "HTTP 403" not in line


@pytest.mark.parametrize(
    ("ref", "code", "words"),
    [
        ("hf:nobody/no-such-repo", 5, "not found, or private"),
        ("hf:stabilityai/sdxl-vae@no-branch", 5, "revision no-branch not found"),
        ("hf:onlyone", 2, "ORG/REPO"),
        ("https://huggingface.co/datasets/a/b", 2, "dataset"),
    ],
)
def test_show_errors_are_one_line_with_distinct_exits(
    hf: RunCli, ref: str, code: int, words: str
) -> None:
    result = hf("show", ref)
    assert result.returncode == code, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_the_hf_token_goes_to_the_hub_and_not_to_civitai(civitai: DemoServer, hf: RunCli) -> None:
    result = hf("show", "hf:stabilityai/sdxl-vae", env={"HF_TOKEN": "hf_demo_token"})
    assert result.returncode == 0, result.stderr
    hub = [r for r in civitai.requests if r.server == "hub"]
    assert hub and all(r.header("Authorization") == "Bearer hf_demo_token" for r in hub)
    assert not any(r.authorization for r in civitai.requests if r.server != "hub")


def test_the_token_file_of_hf_auth_login_is_used(
    civitai: DemoServer, hf: RunCli, tmp_path: Path
) -> None:
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text("hf_demo_pending\n")
    env = {"HF_HOME": str(home)}
    result = hf("show", "hf:black-forest-labs/FLUX.1-dev", env=env)
    assert result.returncode == 0, result.stderr
    assert {r.header("Authorization") for r in civitai.requests if r.server == "hub"} == {
        "Bearer hf_demo_pending"
    }


def test_a_rejected_token_is_exit_6_not_a_missing_repo(hf: RunCli) -> None:
    result = hf("show", "hf:stabilityai/sdxl-vae", env={"HF_TOKEN": "hf_not_a_real_token"})
    assert result.returncode == 6, result.stderr
    assert "rejected the Hugging Face token" in result.stderr


def test_config_never_prints_or_takes_the_hub_token_in_full(hf: RunCli) -> None:
    shown = hf("config", "get", "huggingface.token", env={"HF_TOKEN": "hf_secret_0123456789"})
    assert shown.returncode == 0, shown.stderr
    assert "hf_secret_0123456789" not in shown.stdout and shown.stdout.startswith("hf_s")
    full = hf("config", "show", "--json", env={"HF_TOKEN": "hf_secret_0123456789"})
    assert "hf_secret_0123456789" not in full.stdout
    assert json.loads(full.stdout)["huggingface"]["token_source"] == "environment (HF_TOKEN)"
    refused = hf("config", "set", "huggingface.token", "hf_secret_0123456789")
    assert refused.returncode == 2 and "HF_TOKEN" in refused.stderr


def test_config_show_prints_the_hub_section_masked_with_its_source(
    hf: RunCli, civitai: DemoServer
) -> None:
    """The README promises `config show` shows the Hub token masked, with its source; the
    text form listed only [civitai], [network], [download] and [library]."""
    shown = hf("config", "show", env={"HF_TOKEN": "hf_secret_0123456789"})
    assert shown.returncode == 0, shown.stderr
    section = shown.stdout.split("[huggingface]\n", 1)[1].split("\n\n", 1)[0]
    lines = dict(line.split(" = ", 1) for line in section.splitlines())
    assert lines["endpoint"] == civitai.hub_url
    assert lines["token"].startswith("hf_s") and "hf_secret_0123456789" not in shown.stdout
    assert lines["token_source"] == "environment (HF_TOKEN)"
    # huggingface_hub's older variable is read too, and named as the source (it was
    # reported as the `hf auth login` file).
    older = hf("config", "get", "huggingface.token", "--json",
               env={"HUGGING_FACE_HUB_TOKEN": "hf_older_0123456789"})  # fmt: skip
    assert json.loads(older.stdout)["source"] == "environment (HUGGING_FACE_HUB_TOKEN)"


@pytest.mark.slow
def test_demo_server_prints_the_hub_endpoint(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        sdlib_argv("demo-server", "--port", "0", "--quiet", "--files-dir", tmp_path / "files"),
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("SDLIB_CIVITAI_URL=http://127.0.0.1:")
        line = proc.stdout.readline().strip()
        assert line.startswith("HF_ENDPOINT=http://127.0.0.1:"), line
        result = run_sdlib("search", "--source", "hf", "vae", "--json",
                           env={**cli_env, "HF_ENDPOINT": line.split("=", 1)[1]})  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert {m["id"] for m in json.loads(result.stdout)} == {
            "stabilityai/sdxl-vae", "madebyollin/sdxl-vae-fp16-fix"
        }  # fmt: skip
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
