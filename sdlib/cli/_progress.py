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
            cancel=threading.Event(), on_event=display.event, on_note=display.note,
        ), display  # fmt: skip


class DownloadDisplay:
    """One rich progress display for all files; renders the downloader's events."""

    def __init__(self, err: Any) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )  # fmt: skip

        self.err = err
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=err, transient=False,
            disable=not err.is_terminal,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> DownloadDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def note(self, message: str) -> None:
        self.progress.console.print(message, markup=True, highlight=False)

    def event(self, event: Any) -> None:
        from sdlib import download as d

        name = event.name
        if isinstance(event, d.Started):
            label = name if event.connections == 1 else f"{name} ({event.connections} conn.)"
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(label, total=event.total)
            self.progress.update(self.tasks[name], completed=event.resumed_from,
                                 total=event.total, description=label)  # fmt: skip
        elif isinstance(event, d.Progress) and name in self.tasks:
            self.progress.update(self.tasks[name], completed=event.done)
        elif isinstance(event, d.Retrying):
            self.note(f"[yellow]retry {event.attempt}[/yellow] {name}: {event.reason}")
        elif isinstance(event, d.Verifying) and name in self.tasks:
            self.progress.update(self.tasks[name], description=f"{name} (verifying)")
        elif isinstance(event, d.Finished) and name in self.tasks:
            self.progress.update(self.tasks[name], description=f"{name} [green]ok[/green]")


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
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err,
                transient=True,
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
