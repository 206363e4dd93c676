"""Shared fixtures: a clean environment, the local Civitai-compatible server, CLI runners.

No test touches the network: Civitai is ``sdlib.demo.server.DemoServer`` on 127.0.0.1. No test
reads or writes the developer's config, cache or data dirs: every test (and every session-wide
fixture) sees them under pytest's temporary folder.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.demo.server import DemoServer
from tests.support.cli import DROPPED_ENV, isolated_env, private_dirs, run_sdlib


def _isolate(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    for name in DROPPED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in private_dirs(base).items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session- and module-wide fixtures already run with private sdlib and XDG dirs."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, tmp_path_factory.mktemp("sdlib-session"))
        yield


@pytest.fixture(autouse=True)
def _clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's token, Civitai URL, config file or proxies, and sdlib's
    config file, cache and data dirs (and the XDG dirs) are a fresh temporary folder."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("sdlib-dirs"))


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
    return isolated_env(
        tmp_path,
        SDLIB_CIVITAI_URL=civitai.url,
        SDLIB_CONFIG=str(config),
        NO_COLOR="1",
        COLUMNS="120",
        PYTHONIOENCODING="utf-8",
    )


RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> RunCli:
    """Run ``python -m sdlib ARGS`` in a subprocess with ``cli_env`` (plus overrides)."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return run_sdlib(*args, env={**cli_env, **(env or {})}, input=input, timeout=timeout)

    return run
