"""Fixtures for the TUI: an app wired to the local Civitai-compatible server and a webUI
folder under a private HOME (so paths show as ``~/webui`` and snapshots are the same on
every machine), plus helpers that wait for workers instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerState

from sdlib.config import CivitaiSettings, LibrarySettings, NetworkSettings, Settings
from sdlib.demo.server import DemoServer
from sdlib.tui.app import SdlibApp
from sdlib.tui.services import TuiOptions


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _steady(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursor (snapshots would depend on the moment they are taken)."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def webui(home: Path) -> Path:
    """An AUTOMATIC1111 folder (its marker files, no models yet) at ``~/webui``."""
    root = home / "webui"
    (root / "modules").mkdir(parents=True)
    (root / "webui.py").write_text("")
    (root / "modules" / "sd_models.py").write_text("")
    return root


def tui_settings(server: DemoServer, home: Path, **civitai: Any) -> Settings:
    return replace(
        Settings(
            cache_dir=home / ".cache" / "sdlib",
            data_dir=home / ".local" / "share" / "sdlib",
            config_path=home / ".config" / "sdlib" / "config.toml",
        ),
        civitai=CivitaiSettings(base_url=server.url, **civitai),
        network=NetworkSettings(retries=1, backoff_max=0.01, read_timeout=5, connect_timeout=2),
        library=LibrarySettings(root="~/webui", ui="a1111"),
    )


_BUSY = (WorkerState.PENDING, WorkerState.RUNNING)

MakeApp = Callable[..., SdlibApp]


@pytest.fixture
def settings(civitai: DemoServer, home: Path, webui: Path) -> Settings:
    return tui_settings(civitai, home)


@pytest.fixture
def settings_for(civitai: DemoServer, home: Path, webui: Path) -> Callable[..., Settings]:
    """``settings_for(nsfw=True, token=...)``: the test settings with Civitai changes."""
    return lambda **civitai_changes: tui_settings(civitai, home, **civitai_changes)


@pytest.fixture
def make_app(settings: Settings) -> MakeApp:
    """``make_app(settings=None, **TuiOptions fields)``: previews off, no detail delay."""

    def make(settings_: Settings | None = None, **options: Any) -> SdlibApp:
        opts = replace(TuiOptions(previews="off", detail_delay=0.0), **options)
        return SdlibApp(settings_ or settings, options=opts)

    return make


class UI:
    """Waiting and reading helpers for Pilot tests."""

    @staticmethod
    async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
        """Until no worker runs and the message queues are drained (a few rounds)."""
        for _ in range(rounds):
            while any(w.state in _BUSY for w in pilot.app.workers):
                await pilot.pause(0.02)
            await pilot.pause()
        await pilot.pause()

    @staticmethod
    async def until(
        pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 15.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or predicate}\n" + UI.text(pilot.app)
                )
            await pilot.pause(0.05)

    @staticmethod
    def text(app: Any) -> str:
        """The current screen as plain text (what a user would read)."""
        return "\n".join(s.text.rstrip() for s in app.screen._compositor.render_strips())

    @staticmethod
    def notifications(app: Any) -> list[str]:
        return [f"{n.title}: {n.message}" for n in app._notifications]


@pytest.fixture
def ui() -> type[UI]:
    return UI
