"""Key presses, one at a time, and no type-ahead into a dialog that decides something.

Textual hands a key to the focused widget and goes on to the next key at once, while the
binding a key triggers is looked up only when the key has bubbled back up to the app. A
burst of keys (typed fast, pasted, sent by tmux) was therefore read against the state
*before* the previous key took effect: after ``1`` (go to Browse) or ``/`` (focus the search
field) the following letters still went to the old widget, and their hotkeys were looked up
on the new screen, so ``/dream⏎`` opened the download dialog and queued a file.

:class:`KeyGate` holds each key until the one before it has gone all the way: through the
widget it was given to and that widget's ancestors, the app's bindings, the focus change
they asked for and the mounting of a screen they switched to. Queues in Textual are FIFO,
so a callback posted to each of those message queues after the key runs after the key.

A dialog that commits something (a download, a move to the trash) also ignores keys typed
before it appeared: ``d`` then a quick ``⏎`` must not choose a file nobody saw.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual import events
    from textual.app import App
    from textual.dom import DOMNode
    from textual.message_pump import MessagePump
    from textual.timer import Timer

__all__ = ["KeyGate"]

#: Seconds between checks that the node holding a key's callback is still there to run it.
CHECK_EVERY = 0.25
#: Seconds after which a key that never came back stops holding others even though every node
#: it waits on looks alive: a last resort against a lost callback, never hit in normal use (a
#: slow machine only delays the hops; a short limit let later keys overtake a screen switch).
RELEASE_AFTER = 10.0


class KeyGate:
    """Feeds raw key events to ``dispatch`` one at a time, in the order they came."""

    def __init__(
        self,
        app: App[Any],
        dispatch: Callable[[events.Key], Awaitable[None]],
        *,
        release_after: float = RELEASE_AFTER,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self._app = app
        self._dispatch = dispatch
        self._release_after = release_after
        self._check_every = check_every
        self._held: deque[events.Key] = deque()
        self._tokens = itertools.count(1)
        self._current = 0  # token of the key in flight; 0 when none is
        self._waiting_on: MessagePump | None = None  # whose queue holds the key's next hop
        self._started = 0.0
        self._timer: Timer | None = None

    @property
    def busy(self) -> bool:
        return self._current != 0

    async def press(self, event: events.Key) -> None:
        """A key from the terminal: handled now, or after the keys before it."""
        if self._current:
            self._held.append(event)
            return
        await self._run(event)

    async def _run(self, event: events.Key) -> None:
        token = next(self._tokens)
        self._current = token
        target = self._app.focused or self._app.screen
        await self._dispatch(event)
        path = [node for node in target.ancestors_with_self if node is not self._app]
        self._started = time.monotonic()
        self._timer = self._app.set_interval(self._check_every, lambda: self._watch(token))
        self._hop(path, token)

    def _hop(self, path: Sequence[DOMNode], token: int) -> None:
        """Wait for each node from the key's target up to its screen, then the app."""
        for index, node in enumerate(path):
            # False: the node is closing and will not run it; its next ancestor will.
            if node.call_later(self._hop, path[index + 1 :], token):
                self._waiting_on = node
                return
        self._waiting_on = self._app
        self._app.call_later(self._settle, token)

    def _settle(self, token: int) -> None:
        # The app has run the key's bindings. Focus changes they asked for are queued after
        # this, and a screen they switched to may still be composing: both go first.
        screen = self._app.screen
        if screen.call_later(self._app.call_later, self._release, token):
            self._waiting_on = screen
        else:
            self._waiting_on = self._app
            self._app.call_later(self._release, token)

    async def _watch(self, token: int) -> None:
        """Release a key whose next hop can no longer run: the node holding it closed (a
        widget removed or a screen popped after it took the callback), or, as a last resort,
        after ``release_after`` seconds."""
        node = self._waiting_on
        gone = node is None or node._closing or node._closed
        if gone or time.monotonic() - self._started > self._release_after:
            await self._release(token)

    async def _release(self, token: int) -> None:
        if token != self._current:
            return  # released already (the timer, or the hops)
        self._waiting_on = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._current = 0
        if self._held:
            await self._run(self._held.popleft())
