"""KeyGate on a slow machine: a key is held until the one before it has fully taken effect,
however long that takes, and released at once when what it waits on goes away."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Input, Static

from sdlib.tui.keys import KeyGate

pytestmark = pytest.mark.anyio


class SlowScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Input(id="field")

    def on_mount(self) -> None:
        self.query_one(Input).focus()


class GatedApp(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("s", "slow", "slow screen")]

    def __init__(self, **gate: Any) -> None:
        super().__init__()
        self.gate = KeyGate(self, self._key, **gate)
        self.stray: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("home")

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            await self.gate.press(event)
            return
        await super().on_event(event)

    async def _key(self, event: events.Key) -> None:
        if self.focused is None and event.key != "s":
            self.stray.append(event.key)
        await super().on_event(event)

    async def action_slow(self) -> None:
        # Longer than the old fixed one-second release: a switch on a loaded machine.
        await asyncio.sleep(1.6)
        await self.push_screen(SlowScreen())


async def _until(pilot: Any, predicate: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_a_key_waits_for_a_slow_screen_switch() -> None:
    app = GatedApp()
    async with app.run_test() as pilot:
        app.post_message(events.Key("s", "s"))
        app.post_message(events.Key("x", "x"))

        def typed() -> str:
            screen = app.screen
            return screen.query_one(Input).value if isinstance(screen, SlowScreen) else ""

        await _until(pilot, lambda: bool(app.stray or typed()))
        assert app.stray == []  # with a one-second release, "x" went to no widget
        assert typed() == "x"


class Swallow(Static, can_focus=True):
    """Takes a key's next hop and never runs it, as a widget closing with messages still in
    its queue does (other callbacks, such as Pilot's, run as usual)."""

    def call_later(self, callback: Any, *args: Any, **kwargs: Any) -> bool:
        if getattr(callback, "__name__", "") == "_hop":
            return True
        return super().call_later(callback, *args, **kwargs)


async def test_a_key_whose_widget_went_away_releases_the_next_one_quickly() -> None:
    """The widget holding the key's next hop is removed: the keys after it go on within a
    few checks, not after the last-resort limit."""
    app = GatedApp(release_after=60.0, check_every=0.05)
    async with app.run_test() as pilot:
        swallow = Swallow("swallow")
        await app.mount(swallow)
        swallow.focus()
        await pilot.pause()
        app.post_message(events.Key("a", "a"))
        app.post_message(events.Key("b", "b"))
        await _until(pilot, lambda: app.gate._waiting_on is swallow)
        await pilot.pause(0.3)
        assert app.gate.busy  # held: the widget is still there and may yet run it
        await swallow.remove()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await _until(pilot, lambda: not app.gate.busy)
        assert loop.time() - start < 10
