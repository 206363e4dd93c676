"""`sdlib inspect REF_OR_URL` as a user runs it: a subprocess against the demo server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sdlib.demo.server import DemoServer
from tests.conftest import RunCli
from tests.support.cli import run_sdlib

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib

REMOTE_KEYS = {"file_name", "url", "source", "pinned_ref", "bytes_read", "requests"}


def served_path(server: DemoServer, name: str) -> Path:
    served = next(f for f in server.files.values() if f.spec.name == name)
    assert served.path is not None
    return served.path


def test_a_reference_gets_the_report_of_the_downloaded_file(
    civitai: DemoServer, run_cli: RunCli
) -> None:
    proc = run_cli("inspect", "--json", "4384@128713")
    assert proc.returncode == 0, proc.stderr
    [remote] = json.loads(proc.stdout)
    local_path = served_path(civitai, remote["file_name"])
    local_proc = run_cli("inspect", "--json", str(local_path))
    [local] = json.loads(local_proc.stdout)
    strip = REMOTE_KEYS | {"path"}
    assert {k: v for k, v in remote.items() if k not in strip} == {
        k: v for k, v in local.items() if k not in strip
    }
    assert (remote["path"], remote["source"], remote["kind"], remote["base"]) == (
        "4384@128713", "civitai", "checkpoint", "sd1",
    )  # fmt: skip
    assert remote["bytes_read"] < local_path.stat().st_size
    assert proc.stderr == ""  # through a pipe: no spinner


def test_the_human_report_names_the_file_and_what_was_read(run_cli: RunCli) -> None:
    proc = run_cli("inspect", "58390")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("58390  ")
    assert re.search(r"file\s+add_detail\.safetensors", proc.stdout)
    assert re.search(r"kind\s+lora", proc.stdout)
    assert re.search(r"read\s+[\d.]+ KiB in \d requests?", proc.stdout)


def test_a_server_ignoring_range_is_one_line_and_exit_1(
    civitai: DemoServer, run_cli: RunCli
) -> None:
    civitai.add_fault("range-ignored")
    proc = run_cli("inspect", "4384@128713")
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("sdlib: error: ")
    assert line.endswith("the server does not support ranges; download the file to inspect it")


def test_local_and_remote_mixed_each_get_a_report_or_a_line(
    civitai: DemoServer, run_cli: RunCli, tmp_path: Path
) -> None:
    local = served_path(civitai, "easynegative.safetensors")
    url = civitai.signed_url(next(f for f in civitai.files.values() if f.path == local))
    proc = run_cli("inspect", "--json", str(local), url, "6424@11745", str(tmp_path / "nope"))
    assert proc.returncode == 6  # the login-required version; the worst code wins
    reports = json.loads(proc.stdout)
    assert [r.get("kind") for r in reports] == ["embedding", "embedding", None, None]
    assert reports[1]["path"] == url and reports[1]["source"] == "url"
    assert "logged-in" in reports[2]["error"] and "no such file" in reports[3]["error"]
    assert len(proc.stderr.splitlines()) == 2


def test_a_local_file_named_like_a_reference_wins(
    civitai: DemoServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "4384").write_bytes(served_path(civitai, "add_detail.safetensors").read_bytes())
    civitai.clear_requests()
    proc = run_sdlib("inspect", "--json", "4384", env=cli_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["kind"] == "lora" and "bytes_read" not in report
    assert civitai.requests == []


def test_a_hub_reference_through_the_configured_endpoint(
    civitai: DemoServer, run_cli: RunCli
) -> None:
    proc = run_cli(
        "inspect", "--json", "hf:stabilityai/sdxl-vae/sdxl_vae.safetensors",
        env={"HF_ENDPOINT": civitai.hub_url, "HF_TOKEN": "", "HF_HOME": "/nonexistent"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    assert (report["source"], report["kind"]) == ("huggingface", "vae")
    served = civitai.hub.files[("stabilityai/sdxl-vae", "sdxl_vae.safetensors")]
    assert report["size"] == served.size and report["bytes_read"] < served.size


def test_usage_errors_are_exit_2(run_cli: RunCli) -> None:
    proc = run_cli("inspect", "ftp://files.example/a.safetensors")
    assert proc.returncode == 2
    assert "only http:// and https://" in proc.stderr


def test_help_shows_a_remote_example(run_cli: RunCli) -> None:
    proc = run_cli("inspect", "--help")
    assert proc.returncode == 0
    assert "sdlib inspect 4384@128713" in proc.stdout
    assert "Range" in proc.stdout
