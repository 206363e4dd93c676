"""Settings: where the webUI lives, its layout, folder overrides, NSFW and the Civitai token.

Saving writes the config file (0600) in a worker, keeping comments and other settings;
the token goes through ``config.save_token``. The app then rebuilds its services from the
new settings, so the next request uses the new token. A ``--demo`` session never writes the
config file: its settings point at the demo server, and a saved demo folder would become
every later session's webUI. There, saving applies the values for the session only.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from sdlib.formatting import terminal_safe, tilde
from sdlib.tui.screens._base import LEAVE_FIELD, SdlibScreen

if TYPE_CHECKING:
    from sdlib.config import Settings

#: Kinds whose folder a user may override (taxonomy values; "unknown" has no folder).
FOLDER_KINDS = (
    "checkpoint",
    "unet",
    "lora",
    "lycoris",
    "embedding",
    "hypernetwork",
    "vae",
    "controlnet",
    "upscaler",
    "text-encoder",
    "ip-adapter",
    "motion-module",
    "clip-vision",
)


def layout_options() -> list[tuple[str, str]]:
    from sdlib.library.layouts import LAYOUTS

    return [("auto-detect", "auto")] + [(f"{lay.title}", name) for name, lay in LAYOUTS.items()]


class SettingsScreen(SdlibScreen):
    MODE = "settings"
    # Arriving here focuses no field: 1-4 and ? stay hotkeys until tab or a click enters
    # one, and esc leaves it again.
    AUTO_FOCUS = "#settings-body"
    HOME = "#settings-body"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", tooltip="Save folders, layout and NSFW to the config"),
        Binding("ctrl+r", "revert", "Revert", show=False, tooltip="Discard unsaved edits"),
        LEAVE_FIELD,
    ]

    def compose(self) -> ComposeResult:
        yield self.nav()
        with VerticalScroll(id="settings-body"):
            yield Label("webUI", classes="settings-heading")
            with Horizontal(classes="settings-row"):
                yield Label("folder", classes="settings-label")
                yield Input(placeholder="~/stable-diffusion-webui", id="root", compact=True)
            with Horizontal(classes="settings-row"):
                yield Label("layout", classes="settings-label")
                yield Select(
                    layout_options(), allow_blank=False, value="auto", id="ui", compact=True
                )
            yield Static("", id="root-check", classes="settings-note")
            yield Label("Civitai", classes="settings-heading")
            with Horizontal(classes="settings-row"):
                yield Label("NSFW", classes="settings-label")
                yield Checkbox("show NSFW models and previews", id="nsfw-setting", compact=True)
            with Horizontal(classes="settings-row"):
                yield Label("token", classes="settings-label")
                yield Static("", id="token-current")
            with Horizontal(classes="settings-row"):
                yield Label("", classes="settings-label")
                yield Input(
                    placeholder="paste a new API token", password=True, id="token", compact=True
                )
            with Horizontal(classes="settings-row settings-buttons"):
                yield Label("", classes="settings-label")
                yield Button("Save token", id="save-token", compact=True)
                yield Button("Remove token", id="remove-token", compact=True)
                yield Button("Check token", id="check-token", compact=True)
            yield Static("", id="token-who", classes="settings-note")
            yield Label("Download folders (empty: the layout's own)", classes="settings-heading")
            with Vertical(id="folder-rules"):
                for kind in FOLDER_KINDS:
                    with Horizontal(classes="settings-row"):
                        yield Label(kind, classes="settings-label")
                        yield Input(id=f"folder-{kind}", compact=True)
            with Horizontal(classes="settings-row settings-buttons"):
                yield Label("", classes="settings-label")
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
            yield Static("", id="config-path", classes="settings-note")
        yield Footer()

    def on_mount(self) -> None:
        self.fill(self.services.settings)

    # -- showing ------------------------------------------------------------------------------
    def fill(self, settings: Settings) -> None:
        lib = settings.library
        self.query_one("#root", Input).value = lib.root or ""
        self.query_one("#ui", Select).value = (
            lib.ui if lib.ui in dict((v, k) for k, v in layout_options()) else "auto"
        )
        self.query_one("#nsfw-setting", Checkbox).value = settings.civitai.nsfw
        for kind in FOLDER_KINDS:
            self.query_one(f"#folder-{kind}", Input).value = lib.folders.get(kind, "")
        self._show_token(settings)
        path = settings.config_path
        if self.services.options.demo:
            note = "demo mode: saving applies to this session only; the config file is not written"
        else:
            note = f"config file: {tilde(path)}" if path else "config file: (default location)"
        self.query_one("#config-path", Static).update(Content(note))
        self._check_root(lib.root or "", lib.ui)

    def _show_token(self, settings: Settings) -> None:
        from sdlib.config import mask_token

        masked = mask_token(settings.civitai.token)
        text = f"{masked} (set)" if masked else "not set: some downloads need one"
        if os.environ.get("CIVITAI_TOKEN"):
            text += " · CIVITAI_TOKEN in the environment overrides the file"
        self.query_one("#token-current", Static).update(Content(text))
        self.query_one("#token-who", Static).update("")  # a check said who the old one was

    @on(Input.Changed, "#root")
    @on(Select.Changed, "#ui")
    def _root_edited(self) -> None:
        ui = self.query_one("#ui", Select).value
        self._check_root(self.query_one("#root", Input).value, str(ui))

    @work(thread=True, exclusive=True, group="settings-check", exit_on_error=False)
    def _check_root(self, root: str, ui: str) -> None:
        """Say what lives at the folder and where models would go (stat calls: a worker)."""
        self.app.call_from_thread(self._set_check, *describe_root(root, ui))

    def _set_check(self, text: str, defaults: dict[str, str]) -> None:
        self.query_one("#root-check", Static).update(Content(text))
        for kind in FOLDER_KINDS:
            self.query_one(f"#folder-{kind}", Input).placeholder = defaults.get(kind, "")

    # -- saving -------------------------------------------------------------------------------
    def edited(self) -> Settings:
        """The current settings with this screen's edits applied."""
        settings = self.services.settings
        root = self.query_one("#root", Input).value.strip()
        folders = {
            kind: value
            for kind in FOLDER_KINDS
            if (value := self.query_one(f"#folder-{kind}", Input).value.strip())
        }
        library = replace(
            settings.library,
            root=root or None,
            ui=str(self.query_one("#ui", Select).value),
            folders=folders,
        )
        civitai = replace(settings.civitai, nsfw=self.query_one("#nsfw-setting", Checkbox).value)
        return replace(settings, library=library, civitai=civitai)

    def action_save(self) -> None:
        self._save(self.edited())

    def action_revert(self) -> None:
        self.fill(self.services.settings)
        self.notify("edits discarded", timeout=3)

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @work(thread=True, exclusive=True, group="settings-save", exit_on_error=False)
    def _save(self, new: Settings) -> None:
        from sdlib.config import default_config_path
        from sdlib.config_edit import save_values
        from sdlib.errors import SdlibError

        lib = new.library
        if lib.root and not Path(lib.root).expanduser().is_dir():
            self.app.call_from_thread(self.report_error, f"{lib.root} is not a folder", "Not saved")
            return
        if self.services.options.demo:
            self.app.call_from_thread(self._applied, new, "settings apply")
            return
        path = new.config_path or default_config_path()
        try:
            save_values(
                path,
                {
                    "library": {
                        "root": lib.root,
                        "ui": lib.ui,
                        "folders": dict(lib.folders) or None,
                    },
                    "civitai": {"nsfw": new.civitai.nsfw},
                },
            )
        except SdlibError as exc:
            self.app.call_from_thread(self.report_error, exc, "Not saved")
            return
        self.app.call_from_thread(self._saved, replace(new, config_path=path), "settings saved")

    def _applied(self, settings: Settings, note: str) -> None:
        """Demo mode: use ``settings`` for this session; the config file stays as it is."""
        self.sdlib.apply_settings(settings)
        self._show_token(settings)
        self.notify(
            f"{note} for this demo session only: the config file is not written in demo mode",
            title="Settings",
            markup=False,
        )

    def _saved(self, settings: Settings, note: str) -> None:
        self.sdlib.apply_settings(settings)
        self._show_token(settings)
        self.notify(
            f"{note} to {tilde(settings.config_path or '')}", title="Settings", markup=False
        )

    @on(Button.Pressed, "#save-token")
    def _save_token(self) -> None:
        field = self.query_one("#token", Input)
        token = field.value.strip()
        if not token:
            self.notify(
                "paste a token first (civitai.com → account settings → API keys)",
                severity="warning",
            )
            return
        field.value = ""
        self._store_token(token)

    @on(Button.Pressed, "#remove-token")
    def _remove_token(self) -> None:
        self._store_token(None)

    @on(Button.Pressed, "#check-token")
    def _check_token_pressed(self) -> None:
        self._show_who(f"asking {self.services.settings.civitai.base_url} whose the token is…")
        self._check_token()

    @work(thread=True, exclusive=True, group="settings-whoami", exit_on_error=False)
    def _check_token(self) -> None:
        """``sdlib whoami`` here: the token (as this session uses it) checked at the source."""
        from sdlib.errors import SdlibError
        from sdlib.services.account import whoami

        try:
            who = whoami(self.services)
        except SdlibError as exc:
            self.app.call_from_thread(self._show_who, f"could not ask: {exc.message}")
            return
        text = f"{who.headline()} · can reach: {'; '.join(who.can_reach)}"
        if who.state == "rejected":
            text += " · check the key (civitai.com/user/account, API Keys)"
        self.app.call_from_thread(self._show_who, text)

    def _show_who(self, text: str) -> None:
        self.query_one("#token-who", Static).update(Content(terminal_safe(text, newlines=False)))

    @work(thread=True, exclusive=True, group="settings-save", exit_on_error=False)
    def _store_token(self, token: str | None) -> None:
        from sdlib.config import default_config_path, save_token
        from sdlib.errors import SdlibError

        settings = self.services.settings
        if self.services.options.demo:
            demo = replace(settings, civitai=replace(settings.civitai, token=token))
            self.app.call_from_thread(
                self._applied, demo, "token used" if token else "token removed"
            )
            return
        path = settings.config_path or default_config_path()
        try:
            save_token(path, token)
        except SdlibError as exc:
            self.app.call_from_thread(self.report_error, exc, "Token not saved")
            return
        env = os.environ.get("CIVITAI_TOKEN")
        civitai = replace(settings.civitai, token=env or token)
        new = replace(settings, civitai=civitai, config_path=path)
        self.app.call_from_thread(self._saved, new, "token saved" if token else "token removed")


def describe_root(root: str, ui: str) -> tuple[str, dict[str, str]]:
    """One line about a webUI folder (what was detected, where checkpoints go), and the
    layout's folder for each kind."""
    from sdlib.errors import SdlibError
    from sdlib.library.placement import Destination
    from sdlib.taxonomy import Kind

    if not root.strip():
        return "no folder set: downloads need one", {}
    path = Path(root).expanduser()
    if not path.is_dir():
        return f"{tilde(path)} is not a folder", {}
    try:
        dest = Destination.for_ui(path, ui or "auto")
    except SdlibError as exc:
        return exc.message, {}
    layout = dest.layout
    assert layout is not None
    defaults = {k: layout.folder_for(Kind(k)) or "(none)" for k in FOLDER_KINDS}
    return f"{layout.title}: checkpoints go to {defaults['checkpoint']}", defaults
