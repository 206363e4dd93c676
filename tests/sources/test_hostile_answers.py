"""Hostile and broken API answers end with one line and exit 7, never a traceback or a
runaway: the CLI in a subprocess against ``HostileServer`` on 127.0.0.1.

The answers are written by hand here (deep nesting, huge numbers, NaN, a bad file id,
redirect loops, CDN challenge pages, 200 MB bodies, gzip bombs); memory is measured in a
child process with ``resource.getrusage``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from sdlib.demo.server import DemoServer
from tests.support.hostile import Answer, HostileServer, endless, gzip_bomb

pytestmark = pytest.mark.slow  # subprocess: the CLI against a hostile server

RunCli = Any

#: Generous: a capped read of 32 MB plus Python, httpx2 and sdlib is far below this, while
#: a buffered 200 MB answer (or an inflated gzip bomb) is far above it.
RSS_LIMIT_MB = 130


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _file(file_id: Any = 11, size_kb: Any = 1.5) -> dict[str, Any]:
    return {"id": file_id, "name": "m.safetensors", "sizeKB": size_kb, "type": "Model",
            "primary": True, "metadata": {"format": "SafeTensor"}, "hashes": {}}  # fmt: skip


def _version(**file: Any) -> dict[str, Any]:
    return {"id": 2, "modelId": 1, "name": "v1", "baseModel": "SD 1.5",
            "publishedAt": "2024-01-01T00:00:00.000Z", "files": [_file(**file)],
            "model": {"name": "M", "type": "LORA"}}  # fmt: skip


def _model(**file: Any) -> dict[str, Any]:
    return {"id": 1, "name": "M", "type": "LORA", "modelVersions": [_version(**file)]}


def _serve_model(server: HostileServer, model: str, version: str | None = None) -> None:
    server.route("/api/v1/models/1", Answer.json_text(model))
    server.route("/api/v1/model-versions/2", Answer.json_text(version or model))


def _one_line_error(result: subprocess.CompletedProcess[str], code: int = 7) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    # A retry says so on its own line before its wait; the failure is still one line.
    lines = [ln for ln in result.stderr.strip().splitlines() if "; retry " not in ln]
    assert len(lines) == 1 and lines[0].startswith("sdlib: error: "), result.stderr[-2000:]
    return lines[0]


def _cli(run_cli: RunCli, server: HostileServer, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"SDLIB_CIVITAI_URL": server.url})


# --- hostile JSON ----------------------------------------------------------------------------


def test_json_nested_100000_deep(run_cli: RunCli, hostile: HostileServer) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    _serve_model(hostile, '{"id": 1, "name": "M", "modelVersions": ' + deep + "}")
    line = _one_line_error(_cli(run_cli, hostile, "show", "1", "--no-examples"))
    assert "nested more than 64 levels" in line


def test_json_nested_just_past_the_limit(run_cli: RunCli, hostile: HostileServer) -> None:
    # 100 levels: Python's parser copes, sdlib's limit (64) still refuses.
    deep = '{"a": ' * 100 + "1" + "}" * 100
    _serve_model(hostile, json.dumps({"id": 1, "name": "M"})[:-1] + ', "x": ' + deep + "}")
    assert "nested more than 64" in _one_line_error(_cli(run_cli, hostile, "show", "1"))


def test_a_5000_digit_integer(run_cli: RunCli, hostile: HostileServer) -> None:
    text = json.dumps(_model()).replace('"sizeKB": 1.5', '"sizeKB": ' + "9" * 5000)
    _serve_model(hostile, text)
    line = _one_line_error(_cli(run_cli, hostile, "show", "1", "--no-examples"))
    assert "an integer of 5000 digits" in line


@pytest.mark.parametrize(
    ("literal", "said"),
    [("1e308", "out of range"), ("NaN", "NaN"), ("-Infinity", "Infinity"), ("1e999", "1e999")],
)
def test_size_kb_out_of_range_or_not_a_number(
    run_cli: RunCli, hostile: HostileServer, literal: str, said: str
) -> None:
    text = json.dumps(_model()).replace('"sizeKB": 1.5', f'"sizeKB": {literal}')
    _serve_model(hostile, text)
    assert said in _one_line_error(_cli(run_cli, hostile, "show", "1", "--no-examples"))


def test_a_file_id_of_1e999(run_cli: RunCli, hostile: HostileServer, tmp_path: Any) -> None:
    _serve_model(hostile, json.dumps(_model(file_id="1e999")),
                 json.dumps(_version(file_id="1e999")))  # fmt: skip
    out = tmp_path / "out"
    line = _one_line_error(_cli(run_cli, hostile, "download", "1", "--to", str(out)))
    assert "without a usable id" in line
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    # Shown, it is just an unknown id: no crash.
    shown = _cli(run_cli, hostile, "show", "1", "--no-examples", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"]["files"][0]["id"] == 0


def test_a_redirect_loop(run_cli: RunCli, hostile: HostileServer) -> None:
    hostile.route("/api/v1/models/1", Answer.redirect("/api/v1/models/1"))
    line = _one_line_error(_cli(run_cli, hostile, "show", "1"))
    assert "too many redirects" in line
    assert hostile.count("/api/v1/models/1") <= 12


# --- CDN challenge pages ----------------------------------------------------------------------

_CLOUDFLARE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    '<meta http-equiv="refresh" content="390"></head><body><div class="main-wrapper">'
    "<noscript>Enable JavaScript and cookies to continue</noscript>"
    '<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>'
    "</div></body></html>"
)


@pytest.mark.parametrize("status", [403, 503, 429, 200])
def test_a_cloudflare_challenge_is_named(
    run_cli: RunCli, hostile: HostileServer, status: int
) -> None:
    hostile.route(
        "/api/v1/models/1", Answer.html(_CLOUDFLARE, status, **{"cf-mitigated": "challenge"})
    )
    line = _one_line_error(_cli(run_cli, hostile, "show", "1"))
    assert "browser challenge from Cloudflare" in line and "access denied" not in line


def test_a_challenge_without_the_header_is_recognised_by_its_page(
    run_cli: RunCli, hostile: HostileServer
) -> None:
    hostile.route("/api/v1/models/1", Answer.html(_CLOUDFLARE, 403))
    assert "browser challenge" in _one_line_error(_cli(run_cli, hostile, "show", "1"))
    # A plain 403 JSON answer is still "access denied" (exit 6).
    hostile.route("/api/v1/models/1", Answer.json({"error": "Forbidden"}, 403))
    assert "access denied" in _one_line_error(_cli(run_cli, hostile, "show", "1"), 6)


def test_a_challenge_on_the_download_endpoint(
    run_cli: RunCli, civitai: DemoServer, tmp_path: Any
) -> None:
    civitai.add_fault("html", status=403, match="/api/download/")
    out = tmp_path / "out"
    result = run_cli("download", "4384@128713", "--to", str(out), "--no-preview")
    assert result.returncode == 7 and "Traceback" not in result.stderr
    # One error line (after the line naming the file it picked).
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("sdlib: error: ")]
    assert len(errors) == 1 and "browser challenge" in errors[0], result.stderr
    assert "access" not in errors[0]


# --- big bodies, measured in a child process ---------------------------------------------------

_MEASURE = """
import resource, subprocess, sys
proc = subprocess.run([sys.executable, "-m", "sdlib", *sys.argv[1:]], capture_output=True,
                      text=True, timeout=120)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(proc.returncode, rss // 1024 if sys.platform != "darwin" else rss >> 20)
sys.stderr.write(proc.stderr)
"""


def _measured(env: dict[str, str], server: HostileServer, *args: str) -> tuple[int, int, str]:
    """(exit code, peak RSS in MB, stderr) of ``sdlib ARGS`` run against ``server``."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], env={**env, "SDLIB_CIVITAI_URL": server.url},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    code, rss = proc.stdout.split()
    return int(code), int(rss), proc.stderr


def _big(chunked: bool) -> Answer:
    size = 200 << 20
    head = b'{"id": 1, "name": "M", "description": "'
    body = endless(head + b"A" * ((64 << 10) - len(head)), size)
    headers = {"Content-Type": "application/json"}
    return Answer(200, body, headers, length=None if chunked else size)


@pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX only")
@pytest.mark.parametrize("chunked", [False, True])
def test_a_200_mb_answer_is_not_buffered(
    cli_env: dict[str, str], hostile: HostileServer, chunked: bool
) -> None:
    hostile.route("/api/v1/models/1", _big(chunked))
    code, rss, err = _measured(cli_env, hostile, "show", "1", "--no-examples")
    assert code == 7 and "larger than 32 MiB" in err and "Traceback" not in err, err
    assert rss < RSS_LIMIT_MB, rss
    assert hostile.sent["/api/v1/models/1"] < 100 << 20  # stopped reading long before 200 MB


@pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX only")
def test_a_gzip_bomb_is_inflated_only_to_the_cap(
    cli_env: dict[str, str], hostile: HostileServer
) -> None:
    bomb = gzip_bomb(700 << 20)  # 700 MB of zeros in about 3 MB
    assert len(bomb) < 8 << 20
    hostile.route(
        "/api/v1/models/1",
        Answer(200, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}),
    )
    code, rss, err = _measured(cli_env, hostile, "show", "1", "--no-examples")
    assert code == 7 and "larger than 32 MiB" in err and "Traceback" not in err, err
    assert rss < RSS_LIMIT_MB, rss


def test_a_small_gzip_answer_still_reads(run_cli: RunCli, hostile: HostileServer) -> None:
    import gzip

    packed = gzip.compress(json.dumps(_model()).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    hostile.route("/api/v1/models/1", Answer(200, packed, headers))
    hostile.route("/api/v1/model-versions/2", Answer(200, gzip.compress(
        json.dumps(_version()).encode()), headers))  # fmt: skip
    shown = _cli(run_cli, hostile, "show", "1", "--no-examples", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["version"]["files"][0]["size"] == 1536  # 1.5 KiB
