"""The paging guard: a repeated cursor, a run of empty pages or a page budget end a cursor
walk with one line, in the client, the CLI's ``search`` and the library's update batches.

The servers here are scripted by hand: Civitai's known bug (an empty page answering with
the same ``nextCursor``) and a hostile server handing out fresh cursors with empty pages
forever.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sdlib.config import CivitaiSettings, NetworkSettings, Settings
from sdlib.http import build_client
from sdlib.library.index import FileRow, Index
from sdlib.library.updates import check_updates
from sdlib.sources.civitai import CivitaiClient, CivitaiLookup
from sdlib.sources.paging import MAX_EMPTY_PAGES, PageGuard
from tests.support.hostile import Answer, HostileServer

RunCli = Any
MODELS = "/api/v1/models"


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _model(mid: int) -> dict[str, Any]:
    return {"id": mid, "name": f"Model {mid}", "type": "LORA", "modelVersions": [
        {"id": mid * 10, "name": "v1", "publishedAt": "2024-01-01T00:00:00.000Z",
         "baseModel": "SD 1.5", "files": []}]}  # fmt: skip


def _page(items: list[dict[str, Any]], cursor: str | None) -> Answer:
    meta = {} if cursor is None else {"nextCursor": cursor}
    return Answer.json({"items": items, "metadata": meta})


def _cursor_of(query: Any) -> str | None:
    values = query.get("cursor")
    return values[0] if values else None


def civitai_bug(query: Any) -> Answer:
    """Page 1 has two models; then an empty page that names the same cursor again."""
    if _cursor_of(query) is None:
        return _page([_model(1), _model(2)], "2|100")
    return _page([], "2|100")


def endless_empty(counter: Iterator[int]) -> Callable[[Any], Answer]:
    return lambda query: _page([], f"c{next(counter)}")


def endless_full(query: Any) -> Answer:
    n = int((_cursor_of(query) or "c0")[1:])
    return _page([_model(n + 1)], f"c{n + 1}")


def _client(server: HostileServer, tmp_path: Path) -> CivitaiClient:
    settings = replace(
        Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data"),
        civitai=CivitaiSettings(base_url=server.url),
        network=NetworkSettings(retries=0, read_timeout=5, connect_timeout=2),
    )
    return CivitaiClient.from_settings(settings)


# --- the guard itself -----------------------------------------------------------------------


def test_guard_rules() -> None:
    g = PageGuard()
    assert g.follow("a", 3) == "a" and g.follow("b", 0, sent="a") == "b"
    assert g.follow("a", 0, sent="b") is None  # back to a cursor already followed
    assert (
        g.stopped == "stopped paging after 3 pages (3 results): the server repeated a page cursor"
    )
    assert g.follow("z", 5) is None  # once stopped, stays stopped

    g = PageGuard(max_empty=2)
    assert g.follow("a", 0) == "a"
    assert g.follow("b", 0, sent="a") is None and g.stopped is not None
    assert g.stopped.endswith("2 empty pages in a row")

    g = PageGuard(max_pages=2)
    assert g.follow("a", 1) == "a" and g.follow("b", 1, sent="a") is None
    assert g.stopped is not None and "limit of 2 pages" in g.stopped

    g = PageGuard()
    assert g.follow(None, 0) is None and g.stopped is None  # the normal end: no note
    assert PageGuard().follow("same", 0, sent="same") is None  # Civitai's repeated cursor


def test_short_and_empty_pages_are_still_followed() -> None:
    # Civitai filters after paging: a few empty pages between full ones are normal.
    g = PageGuard()
    cursors = [g.follow(f"c{i}", 0 if i % 4 else 2, sent=f"c{i - 1}" if i else None)
               for i in range(1, 40)]  # fmt: skip
    assert all(cursors) and g.stopped is None


# --- the client ----------------------------------------------------------------------------


def test_civitais_repeated_cursor_ends_the_walk_with_what_was_found(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.route(MODELS, civitai_bug)
    notes: list[str] = []
    with _client(hostile, tmp_path) as civ:
        found = [m.id for m in civ.search(on_stop=notes.append)]
    assert found == [1, 2] and hostile.count(MODELS) == 2
    assert notes == ["stopped paging after 2 pages (2 results): the server repeated a page cursor"]


def test_endless_empty_pages_stop_after_a_few(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.route(MODELS, endless_empty(itertools.count()))
    with _client(hostile, tmp_path) as civ:
        pages = list(civ.search_pages())
    assert len(pages) == MAX_EMPTY_PAGES == hostile.count(MODELS)
    assert pages[-1].next_cursor is None and pages[-1].stopped is not None
    assert "empty pages in a row" in pages[-1].stopped


def test_a_page_budget_ends_an_endless_walk(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.route(MODELS, endless_full)
    with _client(hostile, tmp_path) as civ:
        pages = list(civ.search_pages(guard=PageGuard(max_pages=7)))
    assert [m.id for p in pages for m in p.items] == list(range(1, 8))
    assert pages[-1].stopped is not None and "limit of 7 pages" in pages[-1].stopped


# --- the CLI -------------------------------------------------------------------------------


def _search(run_cli: RunCli, server: HostileServer, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("search", *args, env={"SDLIB_CIVITAI_URL": server.url})


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_cli_search_without_results_is_an_error(run_cli: RunCli, hostile: HostileServer) -> None:
    hostile.route(MODELS, endless_empty(itertools.count()))
    result = _search(run_cli, hostile, "-n", "1000")
    assert result.returncode == 7 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sdlib: error: ") and "empty pages in a row" in line
    assert hostile.count(MODELS) == MAX_EMPTY_PAGES


@pytest.mark.slow  # runs python -m sdlib in a subprocess
def test_cli_search_with_results_notes_the_stop(run_cli: RunCli, hostile: HostileServer) -> None:
    hostile.route(MODELS, civitai_bug)
    result = _search(run_cli, hostile, "--json", "-n", "50")
    assert result.returncode == 0, result.stderr
    assert [m["id"] for m in json.loads(result.stdout)] == [1, 2]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sdlib: note: stopped paging after 2 pages") and "repeated" in line


# --- library update batches ----------------------------------------------------------------


def test_update_batches_stop_and_fall_back_to_single_models(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.route(MODELS, endless_empty(itertools.count()))
    versions = [
        {"id": 71, "name": "v2", "publishedAt": "2024-05-01T00:00:00.000Z", "files": []},
        {"id": 70, "name": "v1", "publishedAt": "2024-01-01T00:00:00.000Z", "files": []},
    ]
    model = {**_model(7), "modelVersions": versions}
    hostile.route("/api/v1/models/7", Answer.json(model))
    row = FileRow(path=str(tmp_path / "m.safetensors"), role="model", sha256="AB" * 32,
                  civitai_model_id=7, civitai_version_id=70)  # fmt: skip
    settings = replace(Settings(), network=NetworkSettings(retries=0, read_timeout=5))
    with Index(tmp_path / "index.sqlite") as index, build_client(settings) as http:
        report = check_updates([row], CivitaiLookup(http, hostile.url, index, rate=0))
    assert hostile.count(MODELS) == MAX_EMPTY_PAGES  # not 434
    assert hostile.count("/api/v1/models/7") == 1
    (result,) = report.files
    assert result.status == "update-available" and [n["version_id"] for n in result.newer] == [71]
    assert report.errors == [] and len(report.notes) == 1
    assert "empty pages in a row" in report.notes[0]
