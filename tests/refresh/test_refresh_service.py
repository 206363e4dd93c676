"""``services.refresh.refresh`` against a fake webUI API on 127.0.0.1: exactly the calls for
the kinds that changed, Basic credentials only to the webUI they belong to, and a webUI that
is down, slow or refusing noted in one line, never raised."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import sdlib
from sdlib.config import CivitaiSettings, Settings, WebuiSettings
from sdlib.services import Context, refresh
from tests.support.fake_webui import FakeWebui, closed_port_url


def settings(tmp_path: Path, *webuis: WebuiSettings, token: str | None = None) -> Settings:
    return replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url="http://127.0.0.1:9", token=token), webuis=webuis,
    )  # fmt: skip


def run(tmp_path: Path, kinds: list[str], *webuis: WebuiSettings, token: str | None = None
        ) -> tuple[tuple[refresh.WebuiRefresh, ...], list[str]]:  # fmt: skip
    notes: list[str] = []
    with Context(settings(tmp_path, *webuis, token=token)) as ctx:
        return refresh.refresh(ctx, kinds, on_note=notes.append), notes


def test_a_lora_refreshes_loras_only(tmp_path: Path) -> None:
    with FakeWebui() as ui:
        [outcome], notes = run(tmp_path, ["lora"], WebuiSettings("forge", ui.url, "forge"))
    assert ui.calls == ["POST /sdapi/v1/refresh-loras"]
    assert outcome.ok and outcome.refreshed == ("LoRAs",)
    assert notes == [f"webui forge ({ui.url}): refreshed LoRAs"]


def test_basic_credentials_go_to_their_webui_only_and_no_civitai_token(tmp_path: Path) -> None:
    with FakeWebui(login=("me", "pw")) as locked, FakeWebui() as open_ui:
        outcomes, notes = run(
            tmp_path, ["checkpoint", "lora"],
            WebuiSettings("a1111", locked.url, "a1111", "me", "pw"),
            WebuiSettings("sdnext", open_ui.url, "sdnext"),
            token="civitai-secret",
        )  # fmt: skip
    assert [o.ok for o in outcomes] == [True, True], notes
    assert locked.calls == ["POST /sdapi/v1/refresh-checkpoints", "POST /sdapi/v1/refresh-loras"]
    assert {s.authorization for s in locked.seen} == {locked.basic()}
    assert open_ui.calls == ["POST /sdapi/v1/refresh-checkpoints", "POST /sdapi/v1/refresh-loras"]
    assert {s.authorization for s in open_ui.seen} == {None}


def test_a_webui_that_is_not_running_is_one_note_and_later_calls_are_skipped(
    tmp_path: Path,
) -> None:
    url = closed_port_url()
    with FakeWebui() as other:
        (down, up), notes = run(
            tmp_path, ["checkpoint", "lora", "vae"],
            WebuiSettings("forge", url, "forge"), WebuiSettings("sdnext", other.url, "sdnext"),
        )  # fmt: skip
    assert not down.ok and [r.status for r in down.results] == ["not-running"]
    assert [c.lists for c in down.skipped] == ["VAEs", "LoRAs"]
    assert up.ok and len(other.calls) == 3  # the next webUI is still asked
    assert len(notes) == 2 and notes[0].startswith(f"webui forge ({url}): not running")
    assert "\n" not in notes[0]


def test_401_is_one_note_that_says_what_to_set(tmp_path: Path) -> None:
    with FakeWebui(login=("me", "pw")) as ui:
        [outcome], notes = run(tmp_path, ["embedding", "lora"],
                               WebuiSettings("a1111", ui.url, "a1111"))  # fmt: skip
    assert [r.status for r in outcome.results] == ["unauthorized", "ok"]  # loras needs no login
    assert [r.http_status for r in outcome.results] == [401, 200]
    [note] = notes
    assert "refreshed LoRAs" in note and "401" in note and "[webui.a1111] username" in note


def test_404_says_the_api_is_probably_off(tmp_path: Path) -> None:
    with FakeWebui(status=404) as ui:
        [outcome], [note] = run(tmp_path, ["checkpoint"], WebuiSettings("a1111", ui.url, "a1111"))
    assert outcome.results[0].status == "not-found" and "--api" in note


def test_a_slow_answer_is_a_timeout_after_the_webuis_timeout(tmp_path: Path) -> None:
    import time

    with FakeWebui(delay=3.0) as ui:
        start = time.monotonic()
        [outcome], [note] = run(tmp_path, ["checkpoint", "lora"],
                                WebuiSettings("a1111", ui.url, "a1111", timeout=0.3))  # fmt: skip
        took = time.monotonic() - start
    assert took < 2.5  # one try, no retries, and the LoRA call is not queued behind it
    assert [r.status for r in outcome.results] == ["timeout"] and len(outcome.skipped) == 1
    assert ui.calls == ["POST /sdapi/v1/refresh-checkpoints"]
    assert "no answer within 0.3 s" in note


def test_comfyui_is_told_nothing_and_says_so_in_one_line(tmp_path: Path) -> None:
    outcomes, notes = run(tmp_path, ["lora", "checkpoint"],
                          WebuiSettings("comfy", closed_port_url(), "comfyui"))  # fmt: skip
    assert [o.results for o in outcomes] == [()]
    [note] = notes
    assert note.startswith("webui comfy (") and "nothing to call" in note


def test_no_webui_configured_or_nothing_listed_changed_asks_nobody(tmp_path: Path) -> None:
    assert run(tmp_path, ["lora"]) == ((), [])
    with FakeWebui() as ui:
        assert run(tmp_path, ["unknown"], WebuiSettings("a1111", ui.url, "a1111")) == ((), [])
    assert ui.calls == []


def test_exported_from_sdlib(tmp_path: Path) -> None:
    assert sdlib.refresh_webuis is refresh.refresh
    assert sdlib.WebuiRefresh is refresh.WebuiRefresh
    with FakeWebui() as ui, Context(settings(tmp_path, WebuiSettings("f", ui.url, "forge"))) as ctx:
        [outcome] = sdlib.refresh_webuis(ctx, ["vae"])
    assert outcome.to_dict()["calls"][0]["path"] == "/sdapi/v1/refresh-vae"
    assert outcome.to_dict()["caveats"]  # Forge's own VAE menu
