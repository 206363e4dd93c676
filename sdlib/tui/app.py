"""The ``sdlib tui`` application: four modes (Browse, Downloads, Library, Settings), global
keys, the command palette, and the download queue's message hub. Screens do the rest."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from sdlib.formatting import terminal_safe, tilde
from sdlib.tui.download_worker import discard_part, run_job
from sdlib.tui.downloads import DownloadJob, DownloadQueue
from sdlib.tui.keys import KeyGate
from sdlib.tui.messages import (
    DownloadDone,
    DownloadFailed,
    DownloadPhase,
    DownloadProgress,
    DownloadStopped,
    LibraryChanged,
    SettingsChanged,
)
from sdlib.tui.screens._base import SdlibScreen
from sdlib.tui.screens.browse import BrowseScreen
from sdlib.tui.services import Services, TuiOptions, WorkerPool

if TYPE_CHECKING:
    import httpx2

    from sdlib.config import Settings
    from sdlib.install import FileChoice
    from sdlib.sources.civitai import CivitaiModel, CivitaiVersion

_SCREENS = (
    ("browse", "Browse", "search Civitai or the Hugging Face Hub"),
    ("downloads", "Downloads", "the queue"),
    ("library", "Library", "models in your webUI"),
    ("settings", "Settings", "folders, token, NSFW"),
)


class SdlibApp(App[None]):
    """Find, preview, download and manage Stable Diffusion models."""

    TITLE = "sdlib"
    CSS_PATH = "app.tcss"
    DEFAULT_MODE = "browse"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "browse": BrowseScreen,
        # Imported on first visit: the first frame only needs Browse.
        "downloads": lambda: _screen("downloads", "DownloadsScreen"),
        "library": lambda: _screen("library", "LibraryScreen"),
        "settings": lambda: _screen("settings", "SettingsScreen"),
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('browse')", "Browse", show=False),
        Binding("2", "switch_mode('downloads')", "Downloads", show=False),
        Binding("3", "switch_mode('library')", "Library", show=False),
        Binding("4", "switch_mode('settings')", "Settings", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx2.BaseTransport | None = None,
        options: TuiOptions | None = None,
    ) -> None:
        super().__init__()
        options = options or TuiOptions()
        self.services = Services(settings, transport=transport, options=options)
        self._retired: list[Services] = []
        self._downloaded: list[str] = []
        self.downloads = DownloadQueue(
            start=self._start_job, discard=self._discard, parallel=options.parallel_downloads
        )
        self._keys = KeyGate(self, self._key)
        #: Work held back until the first frame is on screen (see after_first_frame).
        self._first_frame_shown = False
        self._after_first_frame: list[Callable[[], object]] = []

    # -- keys ---------------------------------------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        # Keys from the terminal go one at a time (see sdlib.tui.keys); keys bubbling back
        # up from a widget, and every other event, as Textual sends them.
        if isinstance(event, events.Key) and not event.is_forwarded:
            await self._keys.press(event)
            return
        await super().on_event(event)

    async def _key(self, event: events.Key) -> None:
        from sdlib.tui.screens.dialogs import Decision  # imported after the first frame

        screen = self.screen
        if isinstance(screen, Decision) and screen.typed_before_shown(event):
            return  # type-ahead is no answer to a question the user has not seen
        await super().on_event(event)

    # -- services -----------------------------------------------------------------------------
    def apply_settings(self, settings: Settings) -> None:
        """Use new settings from now on (running downloads keep their old client)."""
        self._retired.append(self.services)
        self.services = self.services.with_settings(settings)
        for screen in self._mode_screens():
            screen.post_message(SettingsChanged())

    def notify(self, message: str, *, title: str = "", **kwargs: Any) -> None:
        """Toasts often carry file names and server messages: shown terminal-safe."""
        super().notify(terminal_safe(message), title=terminal_safe(title), **kwargs)

    def _mode_screens(self) -> list[SdlibScreen]:
        screens: list[SdlibScreen] = []
        for stack in self._screen_stacks.values():
            screens += [s for s in stack if isinstance(s, SdlibScreen)]
        return screens

    def on_load(self) -> None:
        asyncio.get_running_loop().set_default_executor(WorkerPool())

    def on_resize(self, event: events.Resize) -> None:
        # Rich's console asks the OS for the terminal's size whenever a cell is measured
        # or drawn (Console.options): 600 times for a page of 100 results, a third of the
        # table's measuring. The app knows the size; the console is told it.
        self.console.size = (event.size.width, event.size.height)

    # -- start-up -----------------------------------------------------------------------------
    def after_first_frame(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the first frame has been drawn (at once after that).

        For work a screen starts when it mounts, such as Browse's first search: its thread
        imports the HTTP stack and opens a connection, and started before the first paint
        it competes with it for the interpreter (the first frame came 60-130 ms later)."""
        if self._first_frame_shown:
            self.call_later(callback)
        else:
            self._after_first_frame.append(callback)

    def on_ready(self) -> None:
        # Textual sends Ready once the first frame has been displayed.
        self._first_frame_shown = True
        if not gc.isenabled():
            # `sdlib tui` started without the cyclic collector (see tui_cmd): what start-up
            # made stays for the session, so it goes to the permanent generation (later
            # full collections, which took 100-240 ms mid-frame, no longer walk it), then
            # the collector runs again. Start-up's few cycles (~2.5 MB) are kept with it.
            gc.freeze()
            gc.enable()
        callbacks, self._after_first_frame = self._after_first_frame, []
        for callback in callbacks:
            self.call_later(callback)

    def on_unmount(self) -> None:
        # Stop downloads at their next write (part files stay for the next session).
        for job in self.downloads:
            job.cancel.set()
        for services in [*self._retired, self.services]:
            services.close()

    # -- downloads ----------------------------------------------------------------------------
    def queue_download(self, model: CivitaiModel, version: CivitaiVersion, file_id: int) -> None:
        """Add one file of ``version`` to the download queue (Browse's ``d``)."""
        from sdlib.install import FileChoice

        ref = f"{model.id}@{version.id}"
        chosen = next((f for f in version.files if f.id == file_id), None)
        self._queue(
            ref,
            FileChoice(file_id=file_id),
            title=f"{model.name} {version.name}",
            file_name=chosen.name if chosen else f"file {file_id}",
            size=chosen.size if chosen else None,
        )

    def queue_file(self, ref: str, *, title: str, file_name: str, size: int | None) -> None:
        """Add the one file ``ref`` names (a Hub file: ``hf:ORG/REPO@COMMIT/PATH``) to the
        queue: the same install path as any download."""
        from sdlib.install import FileChoice

        self._queue(ref, FileChoice(), title=title, file_name=file_name, size=size)

    def _queue(
        self, ref: str, choice: FileChoice, *, title: str, file_name: str, size: int | None
    ) -> None:
        existing = self.downloads.find(ref, choice.file_id)
        if existing is not None:
            self.notify(f"{existing.file_name} is already in the queue", timeout=4)
            return
        job = self.downloads.add(ref, choice, title=title, file_name=file_name, size=size)
        self.notify(f"queued {job.file_name} (2: Downloads)", title="Download", markup=False)
        self._refresh_downloads(job)

    def _start_job(self, job: DownloadJob) -> None:
        self.run_worker(
            partial(run_job, job, self.services, self.post_message),
            name=f"download {job.id}",
            group="downloads",
            thread=True,
            exit_on_error=False,
        )

    def _discard(self, path: str) -> None:
        self.run_worker(
            partial(discard_part, path, self.services),
            group="discard",
            thread=True,
            exit_on_error=False,
        )

    @on(DownloadProgress)
    @on(DownloadPhase)
    @on(DownloadDone)
    @on(DownloadStopped)
    @on(DownloadFailed)
    def _download_message(
        self,
        message: DownloadProgress | DownloadPhase | DownloadDone | DownloadStopped | DownloadFailed,
    ) -> None:
        job = self.downloads.apply(message)
        if job is None:
            return
        if isinstance(message, DownloadDone):
            where = message.result.path
            self._downloaded.append(str(where))
            self.notify(f"{where.name} → {tilde(where.parent)}", title="Downloaded", markup=False)
            for screen in self._mode_screens():
                screen.post_message(LibraryChanged((str(where),)))
        elif isinstance(message, DownloadFailed):
            self.notify(
                f"{job.file_name}: {message.message}",
                title=f"Download failed: {message.reason}",
                severity="error",
                timeout=12,
                markup=False,
            )
        self._refresh_downloads(job)

    def take_downloaded(self) -> list[str]:
        """Files downloaded since the Library last asked (it identifies them)."""
        paths, self._downloaded = self._downloaded, []
        return paths

    def _refresh_downloads(self, job: DownloadJob) -> None:
        screen = self.screen
        if isinstance(screen, SdlibScreen):
            screen.download_changed(job)

    # -- commands -----------------------------------------------------------------------------
    async def action_quit(self) -> None:
        """Quit; while files are downloading, ask first (they resume next time)."""
        from sdlib.tui.screens.dialogs import ConfirmDialog

        running = self.downloads.active + self.downloads.waiting
        if not running or isinstance(self.screen, ConfirmDialog):
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmDialog(
                "Quit sdlib?",
                f"{running} download{'s are' if running != 1 else ' is'} not finished. Their "
                "partial files are kept and can be resumed: here next time (Downloads), or "
                "with sdlib downloads --resume.",
                yes="Quit",
            ),
            answer,
        )

    def action_help(self) -> None:
        from sdlib.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for number, (mode, title, what) in enumerate(_SCREENS, start=1):
            yield SystemCommand(
                f"Go to {title}", f"{what} (key {number})", partial(self.switch_mode, mode)
            )
        yield SystemCommand("Help", "every key of every screen (?)", self.action_help)
        if isinstance(screen, SdlibScreen):
            for title, help_text, callback in screen.palette_commands():
                yield SystemCommand(f"{screen.MODE.title()}: {title}", help_text, callback)
        yield from super().get_system_commands(screen)


def _screen(module: str, name: str) -> Screen[Any]:
    import importlib

    cls = getattr(importlib.import_module(f"sdlib.tui.screens.{module}"), name)
    screen: Screen[Any] = cls()
    return screen
