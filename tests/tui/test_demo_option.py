"""`sdlib tui --demo` starts the offline demo server and a demo webUI folder, and never
writes the config file (its settings point at a server that is gone after the session)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner
from textual.widgets import Button, Checkbox, Input

from sdlib.cli.tui_cmd import _start_demo
from sdlib.config import Settings
from sdlib.library.layouts import detect
from sdlib.tui.app import SdlibApp
from sdlib.tui.screens.settings import SettingsScreen


def test_start_demo_points_settings_at_a_live_demo_server(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    demo, server, root = _start_demo(settings)
    try:
        assert demo.civitai.base_url == server.url != settings.civitai.base_url
        response = httpx2.get(f"{server.url}/api/v1/models", params={"query": "dream"})
        assert response.status_code == 200 and response.json()["items"]
        layout = detect(root)
        assert layout is not None and layout.name == "a1111"
    finally:
        server.stop()


@pytest.mark.parametrize("config_exists", [False, True])
def test_demo_settings_are_never_saved_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ui: Any, config_exists: bool
) -> None:
    """The user's path: `sdlib tui --demo`, Settings, save, paste a token: the config file
    is untouched (absent stays absent), while the session uses the new values."""
    import sdlib.cli.tui_cmd
    from sdlib.cli import main

    config = tmp_path / "config.toml"
    if config_exists:
        config.write_text('# mine\n[library]\nroot = "~/real-webui"\n')
    before = config.read_bytes() if config_exists else None
    seen: dict[str, Any] = {}

    async def drive(app: SdlibApp) -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await ui.settle(pilot)
            await pilot.press("4")
            await ui.settle(pilot)
            screen = app.screen
            assert isinstance(screen, SettingsScreen)
            assert "demo-webui" in screen.query_one("#root", Input).value
            assert "config file is not written" in ui.text(app)
            screen.query_one("#nsfw-setting", Checkbox).value = True
            screen.query_one("#folder-lora", Input).value = "models/Lora/demo"
            await pilot.press("ctrl+s")
            await ui.settle(pilot)
            screen.query_one("#token", Input).value = "another-token"
            screen.query_one("#save-token", Button).press()
            await ui.settle(pilot)
            seen["settings"] = app.services.settings
            seen["notes"] = ui.notifications(app)

    def fake_run(self: SdlibApp, *args: Any, **kwargs: Any) -> None:
        asyncio.run(drive(self))

    monkeypatch.setattr(SdlibApp, "run", fake_run)
    monkeypatch.setattr(sdlib.cli.tui_cmd, "_leave", lambda code: None)
    monkeypatch.setenv("SDLIB_CONFIG", str(config))
    monkeypatch.setenv("SDLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SDLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CIVITAI_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["tui", "--demo", "--previews", "off"])
    assert result.exit_code == 0, result.output

    if config_exists:
        assert config.read_bytes() == before
    else:
        assert not config.exists()
    assert not list(tmp_path.glob("*.toml*")) or config_exists  # no temporary or backup file
    session = seen["settings"]
    assert session.civitai.nsfw and session.library.folders == {"lora": "models/Lora/demo"}
    assert session.civitai.token == "another-token"
    assert any("demo session only" in n for n in seen["notes"]), seen["notes"]
