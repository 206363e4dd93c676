"""Rendering the downloader's progress events with rich (shared by download and install)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.config import Settings
    from sdlib.install import Installer
    from sdlib.library.placement import Destination


@contextmanager
def installer_session(
    settings: Settings, destination: Destination, overrides: dict[str, Any], previews: bool
) -> Iterator[tuple[Installer, DownloadDisplay]]:
    """The service context's Installer, wired to a progress display."""
    from sdlib.cli._common import cli_context, console

    with cli_context(settings) as ctx, DownloadDisplay(console(stderr=True)) as display:
        yield ctx.installer(
            destination=destination, overrides=overrides, previews=previews,
            # Notes are plain text (a file name may hold [brackets]): never rich markup.
            cancel=threading.Event(), on_event=display.event, on_note=display.plain,
        ), display  # fmt: skip


def progress_line(name: str, done: int, total: int | None, speed: float | None) -> str:
    """One plain progress line (through a pipe, where no bar is drawn), units in MiB."""
    from sdlib.formatting import human_size, rate

    line = f"{name}: {human_size(done)}"
    if total:
        line += f" of {human_size(total)} ({100 * done // total}%)"
    if speed:
        line += f", {rate(speed)}"
    return line


def started_line(name: str, resumed_from: int, total: int | None) -> str | None:
    """What a resumed download says when it starts ("resumed at 3.7 MiB of 48.0 MiB")."""
    from sdlib.formatting import human_size

    if not resumed_from:
        return None
    of = f" of {human_size(total)}" if total else ""
    return f"{name}: resumed at {human_size(resumed_from)}{of}"


class DownloadDisplay:
    """Renders the downloader's events on stderr: one rich bar per file on a terminal,
    plain lines through a pipe (at most every 0.5 s a file). Sizes and speeds in binary
    units (KiB, MiB, GiB) everywhere, as the rest of sdlib prints them."""

    #: Through a pipe: the engine's pacing, but no more than two lines a second a file.
    PIPE_INTERVAL = 0.5

    def __init__(self, err: Any) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )  # fmt: skip

        self.err = err
        self.live = bool(err.is_terminal)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            _speed_column(), TimeRemainingColumn(), console=err, transient=False,
            disable=not self.live,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}
        #: name -> (monotonic time, bytes) at its last plain line, and at its start.
        self._last: dict[str, tuple[float, int]] = {}
        self._first: dict[str, tuple[float, int]] = {}
        self._resumed: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> DownloadDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        self.progress.console.print(message, markup=True, highlight=False)

    def plain(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)

    def event(self, event: Any) -> None:
        from sdlib import download as d

        name = event.name
        with self._lock:  # files download on several threads
            if isinstance(event, d.Started):
                self._started(event)
            elif isinstance(event, d.Progress):
                self._progress(event)
            elif isinstance(event, d.Retrying):
                self.note(f"[yellow]retry {event.attempt}[/yellow] {name}: {event.reason}")
            elif isinstance(event, d.Verifying):
                if name in self.tasks:
                    self.progress.update(self.tasks[name], description=f"{name} (verifying)")
                elif not self.live:
                    self.plain(f"{name}: verifying")
            elif isinstance(event, d.Finished) and name in self.tasks:
                self.progress.update(self.tasks[name], description=f"{name} [green]ok[/green]")

    def _started(self, event: Any) -> None:
        import time

        name = event.name
        line = started_line(name, event.resumed_from, event.total)
        if line is not None and name not in self._resumed:
            self._resumed.add(name)
            self.plain(line)
        now = time.monotonic()
        self._first.setdefault(name, (now, event.resumed_from))
        self._last.setdefault(name, (now, event.resumed_from))
        if not self.live:
            return
        label = name if event.connections == 1 else f"{name} ({event.connections} conn.)"
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(label, total=event.total)
        self.progress.update(self.tasks[name], completed=event.resumed_from,
                             total=event.total, description=label)  # fmt: skip

    def _progress(self, event: Any) -> None:
        import time

        from sdlib.download import progress_due

        name = event.name
        if self.live:
            if name in self.tasks:
                self.progress.update(self.tasks[name], completed=event.done)
            return
        now = time.monotonic()
        then, before = self._last.get(name, (now, 0))
        if not progress_due(event.done, event.total, before, now - then,
                            min_interval=self.PIPE_INTERVAL):  # fmt: skip
            return
        self._last[name] = (now, event.done)
        start, first = self._first.get(name, (then, before))
        speed = (event.done - first) / (now - start) if now > start else None
        self.plain(progress_line(name, event.done, event.total, speed))


def _speed_column() -> Any:
    """Transfer speed in KiB/s or MiB/s (rich's own column says MB/s); rich is imported
    only when a display is built."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from sdlib.formatting import rate

    class SpeedColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(rate(speed) or "?", style="progress.data.speed")

    return SpeedColumn()


class StageProgress:
    """A rich bar on stderr for work reported as (stage, done, total) events, created on
    the first event and only when stderr is a terminal (rich is imported lazily)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def update(self, event: Any) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            from sdlib.cli._common import console

            err = console(stderr=True)
            if not err.is_terminal:
                return
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                console=err, transient=True,
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=event.total)
        self.bar.update(
            self.task, completed=event.done, total=event.total, description=f"{event.stage:8}"
        )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
