"""Settings: saved to the config file (0600), applied at once, token masked."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Checkbox, Input, Select

from sdlib.config import load_settings
from sdlib.tui.downloads import JobState
from sdlib.tui.screens.settings import SettingsScreen

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.anyio


async def test_save_writes_the_config_and_applies_it(
    make_app: Any, settings: Any, home: Path, ui: Any
) -> None:
    config = settings.config_path
    config.parent.mkdir(parents=True)
    config.write_text("# mine\n[network]\nretries = 3\n")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        await ui.settle(pilot)
        assert screen.query_one("#root", Input).value == "~/webui"
        assert screen.query_one("#ui", Select).value == "a1111"
        assert "checkpoints go to models/Stable-diffusion" in ui.text(app)
        assert screen.query_one("#folder-lora", Input).placeholder == "models/Lora"

        screen.query_one("#nsfw-setting", Checkbox).value = True
        screen.query_one("#folder-lora", Input).value = "models/MyLoras"
        await pilot.press("ctrl+s")
        await ui.settle(pilot)

        saved = tomllib.loads(config.read_text())
        assert config.read_text().startswith("# mine\n")
        assert saved["network"] == {"retries": 3}
        assert saved["library"] == {
            "root": "~/webui",
            "ui": "a1111",
            "folders": {"lora": "models/MyLoras"},
        }
        assert saved["civitai"] == {"nsfw": True}
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        loaded = load_settings(config, env={})
        assert loaded.library.folders == {"lora": "models/MyLoras"} and loaded.civitai.nsfw

        assert app.services.settings.civitai.nsfw
        assert app.services.destination().folder_for(_lora()) == home / "webui/models/MyLoras"
        await pilot.press("1")
        assert app.screen.query_one("#nsfw", Checkbox).value  # Browse follows the setting


async def test_a_missing_folder_is_refused(make_app: Any, settings: Any, ui: Any) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ui.settle(pilot)
        await pilot.press("4")
        await ui.settle(pilot)
        app.screen.query_one("#root", Input).value = "~/nowhere"
        await ui.settle(pilot)
        assert "~/nowhere is not a folder" in ui.text(app)
        await pilot.press("ctrl+s")
        await ui.settle(pilot)
        assert any("Not saved" in n for n in ui.notifications(app))
        assert not settings.config_path.exists()


async def test_token_is_stored_private_masked_and_used(
    make_app: Any, settings_for: Any, ui: Any
) -> None:
    """Login needed -> paste a token in Settings -> retry -> the download works."""
    settings = settings_for(nsfw=True)
    app = make_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ui.settle(pilot)
        model, version = await _fetch(app, 6424)
        app.queue_download(model, version, version.files[0].id)
        await ui.until(pilot, lambda: next(iter(app.downloads)).state is JobState.FAILED)
        job = next(iter(app.downloads))
        assert job.reason == "login needed"

        await pilot.press("4")
        await ui.settle(pilot)
        screen = app.screen
        assert "not set" in ui.text(app)
        screen.query_one("#token", Input).value = "demo-token"
        screen.query_one("#save-token", Button).press()
        await ui.settle(pilot)
        config = settings.config_path
        assert tomllib.loads(config.read_text())["civitai"]["token"] == "demo-token"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        text = ui.text(app)
        assert "demo-token" not in text and "demo…en (set)" in text
        assert screen.query_one("#token", Input).value == ""
        assert app.services.settings.civitai.token == "demo-token"

        await pilot.press("2", "r")  # retry the failed download with the new token
        await ui.until(pilot, lambda: job.state is JobState.DONE, what="the download")

        await pilot.press("4")
        app.screen.query_one("#remove-token", Button).press()
        await ui.settle(pilot)
        assert "token" not in tomllib.loads(config.read_text()).get("civitai", {})
        assert app.services.settings.civitai.token is None


async def _fetch(app: Any, model_id: int) -> Any:
    import asyncio

    def lookup() -> Any:
        return app.services.civitai.lookup(str(model_id))

    return await asyncio.to_thread(lookup)


def _lora() -> Any:
    from sdlib.taxonomy import Kind

    return Kind.LORA


async def test_check_token_says_whose_it_is(
    make_app: Any, settings_for: Any, civitai: Any, ui: Any
) -> None:
    """``sdlib whoami`` in Settings (issue 16: whoami through the TUI too): no token, a token
    the source refuses, and a good one, named as the source's own /api/v1/me names it."""
    import httpx2
    from textual.widgets import Static

    me = httpx2.get(f"{civitai.url}/api/v1/me", headers={"Authorization": "Bearer demo-token"})
    username = me.json()["username"]
    app = make_app(settings_for())
    async with app.run_test(size=(160, 50)) as pilot:
        await ui.settle(pilot)
        await pilot.press("4")
        await ui.settle(pilot)
        screen = app.screen

        def who() -> str:
            return str(screen.query_one("#token-who", Static).render())

        async def check() -> str:
            screen.query_one("#check-token", Button).press()
            await ui.until(pilot, lambda: "asking" not in who() and who() != "", what="whoami")
            return who()

        assert (await check()).startswith(f"no token: anonymous on {civitai.url}")
        for token, expected in (("not-a-key", f"token rejected by {civitai.url}"),
                                ("demo-token", f"{username} on {civitai.url}")):  # fmt: skip
            screen.query_one("#token", Input).value = token
            screen.query_one("#save-token", Button).press()
            await ui.settle(pilot)
            assert who() == ""  # what was said of the old token is gone
            said = await check()
            assert said.startswith(expected), said
        assert "downloads that need a login" in said
