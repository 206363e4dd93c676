"""The results table's cheap paths (issue 20: 100 results drawn in under 100 ms) against
what they replace: a page added in one batch must leave the table as Textual's ``add_row``
for each row leaves it (rows, order, cursor, highlight messages, scrollable size), every
cell must be drawn as DataTable's own drawing draws it, and a ``Cell`` as the Rich ``Text``
it replaced; and in Browse, the rows and the cursor follow the server's pages and searches.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from rich.console import Console
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.widgets import DataTable, Input

from sdlib.demo.server import DemoServer
from sdlib.sources.civitai import CivitaiModel, CivitaiVersion
from sdlib.sources.hf import HubModel
from sdlib.tui.widgets.cells import Cell
from sdlib.tui.widgets.model_detail import ModelDetail
from sdlib.tui.widgets.results import ResultsTable

pytestmark = pytest.mark.anyio

#: Names that test the cut, wide characters, tabs, markup-like text and the NSFW mark.
NAMES = [
    "DreamShaper",
    "幻想的な風景モデル・アニメ調のとても長い名前です本当に長い",
    "Tab\tinside the name",
    "[PRT] Portrait [b]not bold[/b]",
    "A name far too long for the name column of a narrow terminal window, cut",
    "x",
]


def model(i: int, *, nsfw: bool = False, name: str | None = None) -> CivitaiModel:
    version = CivitaiVersion(id=10_000 + i, name="v1", published_at=f"2024-0{1 + i % 9}-1{i % 10}")
    return CivitaiModel(
        id=1000 + i,
        name=name if name is not None else NAMES[i % len(NAMES)] + f" {i}",
        type=["Checkpoint", "TextualInversionWithAVeryLongType", "LORA"][i % 3],
        nsfw=nsfw,
        download_count=[None, 7, 12_345, 9_876_543][i % 4],
        thumbs_up_count=[3, None, 48_211, 1_000_000][i % 4],
        base_models=(["SD 1.5"], ["SDXL 1.0", "Pony"], [])[i % 3],
        versions=(version,),
    )


class Tables(App[None]):
    """The results table with the fast paths, and one without them (Textual's add_row and
    drawing for every row and cell: the reference)."""

    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[tuple[str | None, int, str | None]] = []

    def compose(self) -> ComposeResult:
        yield ResultsTable(id="fast")
        slow = ResultsTable(id="slow")
        slow._fast = False
        yield slow
        yield Input(id="elsewhere")

    def on_mount(self) -> None:
        for table in self.query(ResultsTable):
            table.styles.height = 12
            table.setup_columns(self.size.width)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.highlighted.append((event.data_table.id, event.cursor_row, event.row_key.value))


def tables(app: Tables) -> tuple[ResultsTable, ResultsTable]:
    return app.query_one("#fast", ResultsTable), app.query_one("#slow", ResultsTable)


def state(table: ResultsTable) -> tuple[Any, ...]:
    return (
        [k.value for k in table.rows],
        [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)],
        table.cursor_coordinate,
        table.virtual_size,
        table.scroll_offset,
    )


def highlights(app: Tables, table_id: str) -> list[tuple[int, str | None]]:
    return [(row, key) for tid, row, key in app.highlighted if tid == table_id]


async def test_a_page_added_in_one_batch_leaves_the_table_as_add_row_does() -> None:
    app = Tables()
    async with app.run_test(size=(100, 40)) as pilot:
        fast, slow = tables(app)
        first = [model(i) for i in range(30)]
        assert fast.add_models(first) == slow.add_models(first) == 30
        await pilot.pause()
        assert state(fast) == state(slow)
        assert highlights(app, "fast") == highlights(app, "slow") == [(0, "1000")]
        for table in (fast, slow):
            table.move_cursor(row=27)
        await pilot.pause()
        # The next page repeats two models of the first and one of its own.
        second = [first[3], model(30), first[29], *(model(i) for i in range(31, 40)), model(30)]
        assert fast.add_models(second) == slow.add_models(second) == 10
        await pilot.pause()
        assert state(fast) == state(slow)
        assert fast.cursor_coordinate == Coordinate(27, 0) and fast.row_count == 40
        # A new search: empty, then its first page is highlighted at the top again.
        for table in (fast, slow):
            table.clear()
        third = [model(i) for i in range(50, 53)]
        assert fast.add_models(third) == slow.add_models(third) == 3
        await pilot.pause()
        assert state(fast) == state(slow)
        assert highlights(app, "fast") == highlights(app, "slow")
        assert highlights(app, "fast")[-1] == (0, "1050")
        assert fast.add_models([]) == 0 and fast.add_models(third) == 0


async def test_hub_rows_are_added_as_add_row_adds_them() -> None:
    app = Tables()
    async with app.run_test(size=(100, 40)) as pilot:
        fast, slow = tables(app)
        for table in (fast, slow):
            table.setup_columns(100, "huggingface")
        repos = [
            HubModel(id=f"org/repo-{i}", gated="auto" if i % 2 else None, downloads=i * 999,
                     likes=i, last_modified="2024-05-01T00:00:00Z", tags=("base_model:x",))
            for i in range(12)
        ]  # fmt: skip
        assert fast.add_hub_models([*repos, repos[0]]) == slow.add_hub_models(repos) == 12
        await pilot.pause()
        assert state(fast) == state(slow)


async def test_a_page_is_neither_measured_nor_drawn_through_rich(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of the fast paths (a page of 100 results measured 600 cells and drew ~200
    through Rich's padding and line splitting: most of its first frame). Textual's own
    paths, in the reference table, do both: were the fast ones lost to a Textual upgrade,
    this says so."""
    calls: dict[str, list[str]] = {"measure": [], "draw": []}
    measure, draw = Cell.__rich_measure__, Cell.__rich_console__

    def counted_measure(self: Cell, *args: Any) -> Any:
        calls["measure"].append(self.text)
        return measure(self, *args)

    def counted_draw(self: Cell, *args: Any) -> Any:
        calls["draw"].append(self.text)
        return draw(self, *args)

    monkeypatch.setattr(Cell, "__rich_measure__", counted_measure)
    monkeypatch.setattr(Cell, "__rich_console__", counted_draw)
    app = Tables()
    async with app.run_test(size=(100, 40)) as pilot:
        fast, slow = tables(app)
        assert fast._fast
        models = [model(i) for i in range(100)]
        fast.add_models(models)
        await pilot.pause()
        await pilot.pause()
        assert "DreamShaper 0" in screen_text(app)
        assert calls == {"measure": [], "draw": []}
        slow.add_models(models)
        await pilot.pause()
        await pilot.pause()
        assert len(calls["measure"]) >= 600 and calls["draw"]


def screen_text(app: Any) -> str:
    return "\n".join(s.text for s in app.screen._compositor.render_strips())


def drawn(table: ResultsTable) -> list[list[tuple[str, Style | None]]]:
    """Every visible line of ``table`` drawn afresh, as (text, style) runs."""
    table._clear_caches()
    strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
    return [[(s.text, s.style) for s in strip.simplify()] for strip in strips]


def drawn_by_datatable(table: ResultsTable) -> list[list[tuple[str, Style | None]]]:
    table._fast = False
    try:
        return drawn(table)
    finally:
        table._fast = True


@pytest.mark.parametrize("width", [100, 64])
async def test_every_cell_is_drawn_as_datatable_draws_it(width: int) -> None:
    """Header, zebra rows, the cursor (focused and not), the mouse's hover, wide characters
    cut at the edge, tabs, right-aligned counts: line by line, style by style (the mouse
    position each cell carries included)."""
    app = Tables()
    async with app.run_test(size=(width, 40)) as pilot:
        fast, _slow = tables(app)
        fast.add_models([model(i, nsfw=i % 5 == 0) for i in range(40)])
        fast.focus()
        await pilot.pause()
        fast.move_cursor(row=4)
        await pilot.pause()
        assert drawn(fast) == drawn_by_datatable(fast)
        fast.scroll_to(y=20, animate=False)  # rows below the first screen
        await pilot.pause()
        assert drawn(fast) == drawn_by_datatable(fast)
        await pilot.hover(fast, offset=(30, 3))  # the hover cursor reads a cell's place
        await pilot.pause()
        assert fast.hover_coordinate.row == 20 + 2  # the header, then rows 20 and 21
        assert drawn(fast) == drawn_by_datatable(fast)
        app.query_one("#elsewhere").focus()
        await pilot.pause()
        assert drawn(fast) == drawn_by_datatable(fast)


@pytest.mark.parametrize(
    "text", ["", "SDXL 1.0", "48k", "幻想的な風景", "a\tb\t\tc", "[b]x[/b]", "ab幻想cd" * 4]
)
@pytest.mark.parametrize("right", [False, True])
@pytest.mark.parametrize("width", [1, 5, 6, 11, 30])
def test_a_cell_draws_what_the_text_it_replaced_drew(text: str, right: bool, width: int) -> None:
    """In a one-line cell of any width: Rich's rendering of a Text (justified right for
    counts, never markup), padded as DataTable pads it."""
    console = Console(width=120, force_terminal=True, color_system="truecolor")
    options = console.options.update_dimensions(width + 2, 1).update(no_wrap=True)

    def lines(renderable: Any) -> list[str]:
        rendered = console.render_lines(Padding(renderable, (0, 1)), options)
        return ["".join(s.text for s in line) for line in rendered]

    cell = Cell(text, right=right)
    expected = lines(Text(text, justify="right" if right else None))
    assert lines(cell) == expected
    assert [" " + cell.fit(width) + " "] == expected


# -- in Browse -----------------------------------------------------------------------------


def served_names(server: DemoServer) -> list[str]:
    """The models the server sent for every search page the app asked for, in order,
    each once (asked again here: the server's answers, not the table, are the truth)."""
    names: dict[int, str] = {}
    for request in server.requests:
        if request.path.startswith("/api/v1/models?"):
            data = httpx2.get(server.url + request.path, headers={"User-Agent": "test"}).json()
            for item in data["items"]:
                names.setdefault(item["id"], item["name"])
    return list(names.values())


def shown(app: Any) -> list[str]:
    table = app.screen.query_one(ResultsTable)
    return [str(table.get_row_at(i)[0]).removesuffix(" ⚠") for i in range(table.row_count)]


async def test_rows_cursor_and_detail_follow_pages_and_a_second_search(
    civitai: DemoServer, settings_for: Any, make_app: Any, ui: Any
) -> None:
    app = make_app(settings_for(nsfw=True), page_size=3)  # 15 models: five pages
    async with app.run_test(size=(120, 32)) as pilot:
        await ui.settle(pilot)
        table = app.screen.query_one(ResultsTable)
        first = shown(app)
        # Pages are fetched until the rows fill the table: usually 12 rows here, all 15
        # when the pages come back before the detail pane is mounted (the table is taller
        # until then; seen once in CI on a busy machine). Either way the rows are the pages
        # served, in order.
        assert first == served_names(civitai) and 3 <= len(first) <= 15
        await pilot.press("down", "down")
        await ui.settle(pilot)
        detail = app.screen.query_one(ModelDetail)
        assert table.cursor_row == 2 and shown(app)[: len(first)] == first
        assert detail.model is not None and detail.model.name == shown(app)[2]
        while len(shown(app)) < 15:  # each time near the end: the next pages below
            await pilot.press("end")
            await ui.settle(pilot)
        assert shown(app) == served_names(civitai)
        await pilot.press("end", "up")
        await ui.settle(pilot)
        assert table.cursor_row == 13
        assert detail.model is not None and detail.model.name == shown(app)[13]
        civitai.clear_requests()
        await pilot.press("slash", *"dream", "enter")  # a second search replaces them all
        await ui.settle(pilot)
        assert shown(app) == served_names(civitai) and 0 < len(shown(app)) < 15
        assert table.cursor_row == 0 and table.scroll_y == 0
        assert detail.model is not None and detail.model.name == shown(app)[0]


def test_another_textual_major_version_takes_datatables_own_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast paths read DataTable internals as Textual 8 has them: on another major
    version the same names may mean something else, so they stay off there."""
    from sdlib.tui.widgets import cell_table

    assert cell_table.CellTable()._fast  # this venv's Textual: the fast paths on
    monkeypatch.setattr(cell_table, "_TESTED", False)
    assert not cell_table.CellTable()._fast
