"""``sdlib tui``: the terminal UI (Textual). Textual is imported only when this runs."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import handle_errors

_PREVIEWS = ("auto", "sixel", "kitty", "halfcell", "unicode", "off")


@click.command("tui")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    help="The webUI folder to download into and list (default: [library] root).",
)
@click.option(
    "--ui",
    help="Its layout: a1111, forge, reforge, sdnext, comfyui, "
    "stabilitymatrix, or auto (default: [library] ui).",
)
@click.option(
    "--previews",
    type=click.Choice(_PREVIEWS),
    default="auto",
    show_default=True,
    help="How to draw preview images: auto picks Kitty or Sixel graphics when the "
    "terminal supports them, else half-block characters; off shows none.",
)
@click.option(
    "--theme",
    default=None,
    metavar="NAME",
    help="A Textual theme, e.g. textual-light for light terminals (ctrl+p → Theme).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Try it offline: start the built-in demo server (Civitai and the Hugging Face Hub) "
    "and, unless "
    "--root is given, download into a demo webUI folder in sdlib's data dir. The config "
    "file is never written in demo mode (Settings last for the session).",
)
@handle_errors
def tui_cmd(
    root: Path | None, ui: str | None, previews: str, theme: str | None, demo: bool
) -> None:
    """Browse Civitai and the Hugging Face Hub, download models into your webUI, and manage
    your library.

    Keys: 1 Browse, 2 Downloads, 3 Library, 4 Settings, ? help, ctrl+p command palette,
    ctrl+q quit. Works offline against a Civitai-compatible server (SDLIB_CIVITAI_URL).

    \b
    Examples:
      sdlib tui
      sdlib tui --root ~/stable-diffusion-webui --ui a1111
      SDLIB_CIVITAI_URL=http://127.0.0.1:8765 sdlib tui --previews halfcell
      sdlib tui --demo
    """
    from dataclasses import replace

    from sdlib.config import load_settings

    settings = load_settings()
    server = None
    if demo:
        settings, server, demo_root = _start_demo(settings)
        if root is None:
            root, ui = demo_root, ui or "a1111"
    if root is not None or ui is not None:
        library = replace(
            settings.library,
            root=str(root.expanduser()) if root is not None else settings.library.root,
            ui=ui or settings.library.ui,
        )
        settings = replace(settings, library=library)
    probe = _probe_terminal() if previews != "off" else None
    # Start-up makes ~100k objects that live as long as the app; collecting while they are
    # made cost ~100 ms of CPU before the first frame. The app freezes them and turns the
    # collector back on once that frame is drawn (SdlibApp.on_ready).
    gc.disable()
    from sdlib.tui.app import SdlibApp
    from sdlib.tui.services import TuiOptions

    if probe is not None:
        probe.join()
        if not probe.ok:
            previews = "off"
    app = SdlibApp(settings, options=TuiOptions(previews=previews, demo=demo))
    if theme:
        app.theme = theme
    try:
        app.run()
    finally:
        gc.enable()
        if server is not None:
            server.stop()
    code = app.return_code or 0
    _leave(code)
    if code:  # Textual has shown the error; the exit code must say the app failed
        raise SystemExit(code)


def _start_demo(settings: Any) -> tuple[Any, Any, Path]:
    """The demo server on a free port, settings pointing at it, and a demo webUI folder."""
    from dataclasses import replace

    from sdlib.demo.server import DemoServer

    server = DemoServer(settings.cache_dir / "demo-server").start()
    civitai = replace(settings.civitai, base_url=server.url, token="demo-token")
    root = settings.data_dir / "demo-webui"
    (root / "modules").mkdir(parents=True, exist_ok=True)
    for marker in ("webui.py", "modules/sd_models.py"):
        (root / marker).touch()
    archive = replace(settings.civarchive, base_url=server.civarchive_url)  # gone models
    # Its Hub too (Browse's s): no token, so its gated repo shows what a refusal says (and
    # a real HF_TOKEN is not sent to the demo).
    hub = replace(settings.huggingface, endpoint=server.hub_url, token=None)
    return replace(settings, civitai=civitai, civarchive=archive, huggingface=hub), server, root


class _Probe(threading.Thread):
    """Ask the terminal what it can draw (Sixel? Kitty? cell size?), as textual-image would
    (sdlib.tui.graphics; textual-image itself is imported after the first frame). That must
    finish before Textual takes over stdin; in a thread it overlaps the import of Textual."""

    def __init__(self) -> None:
        super().__init__(name="sdlib-tui-probe", daemon=True)
        self.ok = False

    def run(self) -> None:
        from sdlib.tui import graphics

        self.ok = graphics.probe()


def _probe_terminal() -> _Probe:
    probe = _Probe()
    probe.start()
    return probe


def _leave(code: int) -> None:
    """Exit without waiting for background requests: downloads were told to stop and keep
    their part files; a worker stuck in a stalled read or a back-off has nothing to save."""
    import os
    import sys
    import threading
    import time

    deadline = time.monotonic() + 2.0
    workers = [t for t in threading.enumerate() if t.name.startswith("sdlib-tui")]
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in workers):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
