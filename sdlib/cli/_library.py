"""What the library commands share: the webUI folder and layout from arguments or config,
the service context, per-file progress and the scan they all start from."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import cli_context, console, echo_err

__all__ = [
    "FAILED",
    "ROOT",
    "STYLE",
    "UI_HELP",
    "Progress",
    "context",
    "layout_of",
    "root_of",
    "run_scan",
    "settings",
    "ui_option",
]  # fmt: skip

UI_HELP = "Which webUI: a1111, forge, reforge, sdnext, comfyui, stabilitymatrix, or auto."
ROOT = click.argument(
    "root", required=False, type=click.Path(path_type=Path, file_okay=False, exists=True)
)
ui_option = click.option("--ui", help=UI_HELP)

#: Status -> rich style for the table.
STYLE = {
    "ok": "green", "misplaced": "yellow", "duplicate": "cyan", "name-clash": "magenta",
    "unsafe-pickle": "bold red", "suspicious-pickle": "red", "unknown": "dim",
    "corrupt": "red", "unreadable": "red", "unsupported-extension": "yellow",
    "orphan-sidecar": "yellow", "wrong-preview-extension": "yellow",
    "illegal-or-too-long-name": "yellow", "broken-link": "red", "link-outside-root": "yellow",
}  # fmt: skip

#: Statuses of files a scan could not read: they make its exit code 1.
FAILED = frozenset({"corrupt", "unreadable"})


def settings() -> Any:
    from sdlib.config import load_settings

    return load_settings()


def root_of(settings: Any, root: Path | None) -> Path:
    from sdlib.errors import UsageError

    if root is None:
        if not settings.library.root:
            raise UsageError("give the webUI folder (ROOT), or set [library] root in the config")
        root = Path(settings.library.root).expanduser()
        if not root.is_dir():
            raise UsageError(f"[library] root {root} is not a folder")
    return root


def layout_of(settings: Any, root: Path, ui: str | None) -> Any:
    from sdlib.library.scan import load_layout

    return load_layout(root, ui or settings.library.ui, dict(settings.library.folders))


@contextmanager
def context(settings: Any) -> Iterator[Any]:
    """The service context (index, hash cache, HTTP client: opened when first used, retries
    said on stderr); a file-system error anywhere inside is one clear line."""
    from sdlib.errors import LibraryError

    try:
        with cli_context(settings) as ctx:
            yield ctx
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else None
        raise LibraryError(exc.strerror or str(exc), path=where) from None


class Progress:
    """Per-file progress on stderr, fed by core progress events: on a terminal a live rich
    bar (gone when done); otherwise (stderr piped or logged) a plain line at most every
    ``every`` seconds once the work has taken that long, and never anything on stdout."""

    def __init__(self, every: float = 5.0) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.err = console(stderr=True)
        self.live = self.err.is_terminal
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[name]}", style="dim"), console=self.err, transient=True,
            disable=not self.live,
        )  # fmt: skip
        self.tasks: dict[str, Any] = {}
        self.every = every
        self.last = time.monotonic()

    def __enter__(self) -> Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, stage: str, done: int, total: int | None, name: str | None = None) -> None:
        label = os.path.basename(name) if name else ""
        if not self.live:
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                of = f" of {total}" if total else ""
                echo_err(f"sdlib: {stage}: {done}{of}" + (f" ({label})" if label else ""))
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total, name="")
        self.bar.update(self.tasks[stage], completed=done, total=total, name=label[:50])

    def scan_event(self, event: Any) -> None:
        if event.stage != "walk":
            self.update(event.stage, event.done, event.total, event.path)

    def note(self, message: str) -> None:
        self.bar.console.print(message, markup=True, highlight=False)


def run_scan(ctx: Any, root: Path, layout: Any, hash_all: bool, progress: Progress) -> Any:
    from sdlib.services.library import scan

    return scan(ctx, root, layout=layout, hash_all=hash_all, on_progress=progress.scan_event,
                workers=None)  # fmt: skip
