"""Which version is the newest (by publication date, not list order) and early-access end.

Expected values come from dates written by hand here and from the real Civitai answer in
shared/reference/samples (whose version was created on 2026-08-04 and published on
2026-08-09).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from sdlib.config import Settings
from sdlib.demo.server import DemoServer
from sdlib.sources.civitai import CivitaiClient, CivitaiModel, CivitaiVersion
from sdlib.sources.versions import (
    early_access_active,
    newest,
    newest_first,
    parse_when,
    raw_dates,
)
from tests.support.paths import SAMPLES


def _v(vid: int, published: str | None = None, created: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": vid, "name": f"v{vid}"}
    if published is not None:
        out["publishedAt"] = published
    if created is not None:
        out["createdAt"] = created
    return out


def _ids(versions: list[dict[str, Any]]) -> list[int]:
    return [v["id"] for v in newest_first(versions, raw_dates)]


def test_a_pinned_older_version_is_not_the_newest() -> None:
    # The creator pinned v1 (2023) above v2 (2024): Civitai's index order says v1 first.
    listed = [_v(1, "2023-01-05T00:00:00.000Z"), _v(2, "2024-02-01T10:00:00.000Z")]
    assert _ids(listed) == [2, 1]
    assert newest(listed, raw_dates) == listed[1]


def test_created_at_stands_in_and_breaks_ties_then_list_order() -> None:
    # No publishedAt: createdAt counts instead.
    assert _ids([_v(1, "2023-01-01T00:00:00Z"), _v(2, None, "2023-06-01T00:00:00Z")]) == [2, 1]
    # Same publishedAt: the later createdAt wins.
    same = "2024-01-01T00:00:00.000Z"
    assert _ids([_v(1, same, "2023-12-01T00:00:00Z"), _v(2, same, "2023-12-20T00:00:00Z")]) == [
        2,
        1,
    ]
    # Same everything: Civitai's own order decides.
    assert _ids([_v(7, same), _v(3, same), _v(5, same)]) == [7, 3, 5]
    # No usable date at all: after every dated version, in list order.
    assert _ids([_v(1, "garbage"), _v(2), _v(3, "2020-01-01T00:00:00Z")]) == [3, 1, 2]


def test_dates_compare_as_instants_not_strings() -> None:
    # "…T23:00:00-05:00" is 04:00 UTC the next day: later than "…T01:00:00Z" of that day,
    # although the string sorts first.
    assert _ids([_v(1, "2024-03-02T01:00:00Z"), _v(2, "2024-03-01T23:00:00-05:00")]) == [2, 1]
    assert parse_when("2023-07-30T19:22:08.871Z") == datetime(
        2023, 7, 30, 19, 22, 8, 871000, tzinfo=timezone.utc
    )
    assert parse_when("2023-07-30") == datetime(2023, 7, 30, tzinfo=timezone.utc)
    for bad in (None, "", 17, "yesterday", "2023-13-45"):
        assert parse_when(bad) is None


def test_the_real_sample_with_an_older_version_pinned_first() -> None:
    data = json.loads((SAMPLES / "civitai-model.json").read_text(encoding="utf-8"))
    real = data["modelVersions"][0]  # published 2026-08-09
    pinned = copy.deepcopy(real)
    pinned.update(id=1, index=0, name="V0", createdAt="2026-07-01T00:00:00.000Z",
                  publishedAt="2026-07-02T00:00:00.000Z")  # fmt: skip
    real = {**real, "index": 1}
    data["modelVersions"] = [pinned, real]
    model = CivitaiModel.from_api(data)
    assert [v.id for v in model.versions] == [1, 3198110]  # as listed
    assert model.latest is not None and model.latest.id == 3198110
    assert [v.id for v in model.versions_newest_first] == [3198110, 1]


def test_an_empty_list_has_no_newest() -> None:
    assert newest([]) is None
    assert CivitaiModel.from_api({"id": 1, "modelVersions": []}).latest is None


def test_early_access_compares_with_the_clock() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    assert early_access_active("2026-12-08T00:00:00.000Z", now)
    assert not early_access_active("2026-12-07T11:59:59Z", now)
    assert not early_access_active("2024-11-20T00:00:00.000Z", now)
    assert not early_access_active(None, now) and not early_access_active("", now)
    # Unreadable: taken at its word (the server decides).
    assert early_access_active("soon", now)
    # Without a clock: the real one (2000 is past, 2999 ahead).
    assert not early_access_active("2000-01-01T00:00:00Z")
    assert early_access_active("2999-01-01T00:00:00Z")


def test_a_past_early_access_end_is_still_reported_as_a_fact() -> None:
    # The Nov 2024 shape: earlyAccessEndsAt kept after the date passed.
    version = CivitaiVersion.from_api(
        {"id": 5, "name": "v", "earlyAccessEndsAt": "2024-11-20T00:00:00.000Z"}
    )
    assert version.early_access_ends == "2024-11-20T00:00:00.000Z"
    assert not early_access_active(version.early_access_ends)


# --- through the client, against the demo server in creator order -----------------------------


@pytest.fixture
def creator_order(civitai: DemoServer) -> Iterator[DemoServer]:
    civitai.version_order = "creator"
    yield civitai
    civitai.version_order = "newest"


def test_lookup_takes_the_newest_even_when_listed_last(
    creator_order: DemoServer, civitai_settings: Settings
) -> None:
    with CivitaiClient.from_settings(civitai_settings) as civ:
        model = civ.model(4384)
        # DreamShaper 7 (2023-06-05) pinned above 8 (2023-07-30), with Civitai's index.
        assert [v.id for v in model.versions] == [109123, 128713]
        assert [v.raw.get("index") for v in model.versions] == [0, 1]
        _, version = civ.lookup("4384")
        assert version.id == 128713
        # A version named explicitly is still that version.
        assert civ.lookup("4384@109123")[1].id == 109123


# --- early access as the CLI shows it -------------------------------------------------------


@pytest.mark.slow  # runs python -m sdlib in a subprocess
@pytest.mark.parametrize(("ends", "shown"), [("2024-11-20T00:00:00.000Z", False),
                                             ("2999-01-01T00:00:00.000Z", True)])  # fmt: skip
def test_show_says_early_access_only_while_it_runs(run_cli: Any, ends: str, shown: bool) -> None:
    from tests.support.hostile import Answer, HostileServer

    # The Nov 2024 shape: earlyAccessEndsAt stays in the record after the date.
    version = {"id": 2, "modelId": 1, "name": "v1", "baseModel": "SD 1.5",
               "publishedAt": "2024-11-13T00:00:00.000Z", "earlyAccessEndsAt": ends,
               "files": [], "model": {"name": "M", "type": "LORA"}}  # fmt: skip
    model = {"id": 1, "name": "M", "type": "LORA", "modelVersions": [version]}
    with HostileServer() as server:
        server.route("/api/v1/models/1", Answer.json(model))
        server.route("/api/v1/model-versions/2", Answer.json(version))
        env = {"SDLIB_CIVITAI_URL": server.url}
        human = run_cli("show", "1", "--no-examples", env=env)
        data = run_cli("show", "1", "--no-examples", "--json", env=env)
    assert human.returncode == 0 and data.returncode == 0, human.stderr + data.stderr
    assert ("Early access until" in human.stdout) is shown
    assert json.loads(data.stdout)["early_access"] is shown
    assert json.loads(data.stdout)["version"]["early_access_ends"] == ends  # the fact stays


def test_the_admin_switch_sets_the_order(civitai: DemoServer) -> None:
    import httpx2

    answer = httpx2.get(f"{civitai.url}/__admin/versions", params={"order": "creator"})
    assert answer.json() == {"version_order": "creator"} and civitai.version_order == "creator"
    assert httpx2.get(f"{civitai.url}/__admin/versions?order=sideways").status_code == 400
    civitai.reset()
    assert civitai.version_order == "newest"
