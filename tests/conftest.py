"""Shared fixtures: a clean environment, the local Civitai-compatible server, CLI runners.

No test touches the network: Civitai is ``sdlib.demo.server.DemoServer`` on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.server import DemoServer

REPO = Path(__file__).resolve().parent.parent
#: The recorded real Civitai responses (shared/reference/samples beside the repository).
SAMPLES = REPO.parent / "shared" / "reference" / "samples"

_ENV_DROP = (
    "CIVITAI_TOKEN", "SDLIB_CIVITAI_URL", "SDLIB_CONFIG", "HTTP_PROXY", "HTTPS_PROXY",
    "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's token, Civitai URL, config file or proxies."""
    for name in _ENV_DROP:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def civitai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """One demo server (API + storage host) for the whole session; see ``civitai``."""
    with DemoServer(tmp_path_factory.mktemp("civitai-files")) as server:
        yield server


@pytest.fixture
def civitai(civitai_server: DemoServer) -> Iterator[DemoServer]:
    """The session's demo server with no faults, an empty request log and no rate cap."""
    civitai_server.reset()
    yield civitai_server
    civitai_server.reset()


@pytest.fixture
def civitai_settings(civitai: DemoServer, tmp_path: Path) -> Settings:
    """Settings pointing at the demo server, with tiny retry sleeps and no token."""
    return replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url=civitai.url),
        network=NetworkSettings(retries=2, backoff_max=0.01, read_timeout=5, connect_timeout=2),
    )


@pytest.fixture
def cli_env(civitai: DemoServer, tmp_path: Path) -> dict[str, str]:
    """Environment for ``sdlib`` in a subprocess: the demo server, a private config file with
    tiny retry sleeps, private cache/data dirs, no token, no proxies."""
    config = tmp_path / "config.toml"
    config.write_text("[network]\nretries = 2\nbackoff_max = 0.01\nread_timeout = 5\n")
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.update(
        SDLIB_CIVITAI_URL=civitai.url,
        SDLIB_CONFIG=str(config),
        SDLIB_CACHE_DIR=str(tmp_path / "cache"),
        SDLIB_DATA_DIR=str(tmp_path / "data"),
        NO_COLOR="1",
        COLUMNS="120",
        PYTHONIOENCODING="utf-8",
    )
    return env


RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> RunCli:
    """Run ``python -m sdlib ARGS`` in a subprocess with ``cli_env`` (plus overrides)."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "sdlib", *args],
            env={**cli_env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )

    return run
