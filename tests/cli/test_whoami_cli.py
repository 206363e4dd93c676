"""``sdlib whoami`` against the demo server, which knows the tokens ``demo-token`` (user
"demo") and ``demo-early-access`` and answers ``/api/v1/me`` 401 to anything else."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from sdlib.demo.server import DemoServer

pytestmark = pytest.mark.slow  # subprocess: every test runs python -m sdlib


def test_a_valid_token_names_the_account(run_cli: Any, civitai: DemoServer) -> None:
    out = run_cli("whoami", env={"CIVITAI_TOKEN": "demo-token"})
    assert out.returncode == 0, out.stderr
    first, reach = out.stdout.splitlines()
    assert first.startswith(f"demo on {civitai.url}") and "CIVITAI_TOKEN" in first
    assert "demo-token" not in out.stdout  # masked
    assert reach.startswith("can reach: ") and "downloads that need a login" in reach
    (me,) = [r for r in civitai.requests if r.path == "/api/v1/me"]
    assert me.header("Authorization") == "Bearer demo-token"
    data = json.loads(run_cli("whoami", "--json", env={"CIVITAI_TOKEN": "demo-token"}).stdout)
    assert data["state"] == "signed-in" and data["account"]["username"] == "demo"
    assert data["token_source"] == "environment (CIVITAI_TOKEN)"


def test_a_rejected_token_is_exit_6(run_cli: Any, civitai: DemoServer) -> None:
    out = run_cli("whoami", env={"CIVITAI_TOKEN": "typo-in-the-key"})
    assert out.returncode == 6
    assert out.stdout.startswith(f"token rejected by {civitai.url}")
    (line,) = out.stderr.splitlines()
    assert line.startswith("sdlib: error: token rejected") and "set-token" in line
    data = json.loads(run_cli("whoami", "--json", env={"CIVITAI_TOKEN": "typo-in-the-key"}).stdout)
    assert data["state"] == "rejected" and data["account"] is None


def test_no_token_is_anonymous(run_cli: Any, civitai: DemoServer) -> None:
    out = run_cli("whoami")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"no token: anonymous on {civitai.url}"
    assert not any(r.path == "/api/v1/me" for r in civitai.requests)
    assert any(r.path.startswith("/api/v1/models") for r in civitai.requests)  # it answers
    data = json.loads(run_cli("whoami", "--json").stdout)
    assert (data["state"], data["token"]) == ("anonymous", None)


def test_an_unreachable_server_is_exit_7(run_cli: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_cli("whoami", env={"SDLIB_CIVITAI_URL": f"http://127.0.0.1:{port}"})
    assert out.returncode == 7
    assert out.stderr.splitlines()[-1].startswith("sdlib: error: cannot connect")


def test_help_has_an_example_and_json(run_cli: Any) -> None:
    out = run_cli("whoami", "--help")
    assert out.returncode == 0 and "sdlib whoami" in out.stdout.split("Examples:")[1]
    assert "--json" in out.stdout and "whoami" in run_cli("--help").stdout
