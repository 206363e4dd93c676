"""The model detail pane: description, versions, files, trained words, recommended settings
and previews of one model version. It shows what it is given; the screen fetches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Label, Select, Static
from textual.widgets.select import NoSelection

from sdlib.formatting import count, date, human_size, terminal_safe
from sdlib.sources.versions import early_access_active
from sdlib.tui.widgets.preview import PreviewPane

if TYPE_CHECKING:
    from textual.widgets import Markdown

    from sdlib.sources.civitai import (
        CivitaiFile,
        CivitaiModel,
        CivitaiVersion,
        RecommendedSettings,
    )
    from sdlib.tui.services import Services


def describe_file(f: CivitaiFile) -> str:
    """``SafeTensor · fp16 · pruned``: what tells files of one version apart."""
    bits = [f.format, f.fp, f.weights]
    if f.type not in ("Model", "Pruned Model"):
        bits.insert(0, f.type)
    return " · ".join(b for b in bits if b)


def scan_text(f: CivitaiFile) -> str:
    """Civitai's pickle and virus scan results, in one word where both agree."""
    pickle, virus = f.pickle_scan or "?", f.virus_scan or "?"
    if pickle == virus == "Success":
        return "clean"
    return f"pickle {pickle}, virus {virus}"


def files_text(version: CivitaiVersion) -> Content:
    """Two lines per file: name and size, then format, precision, weights and scans."""
    if not version.files:
        return Content("no downloadable files (archived, or not published yet)")
    parts = []
    for f in version.files:
        star = "★ " if f.primary else "  "
        parts.append(
            Content.from_markup(
                "$star[b]$name[/b]  $size\n    [dim]$what · scan: $scan[/dim]",
                star=star,
                name=terminal_safe(f.name, newlines=False),
                size=human_size(f.size),
                what=describe_file(f) or "?",
                scan=scan_text(f),
            )
        )
    return Content("\n").join(parts)


def recommended_text(rec: RecommendedSettings | None) -> str:
    if rec is None:
        return "loading…"
    if not rec.samples:
        return "no example images with generation data"
    images = "image" if rec.samples == 1 else "images"
    return " · ".join(rec.parts()) + f"  (from {rec.samples} {images})"


class VersionSelect(Select[int]):
    """The version picker: a Select without a blank entry.

    Without a blank, Textual's Select sets its first value when it mounts, and under load
    its mount can come before its label widget has been composed (NoMatches: the app would
    crash). The value is then shown once the label is there.
    """

    def _watch_value(self, value: int | NoSelection) -> None:
        try:
            super()._watch_value(value)
        except NoMatches:
            self.call_after_refresh(self._watch_value, value)


class ModelDetail(Horizontal):
    """Left: the model's facts (scrolls). Right: its preview images."""

    class VersionChosen(Message):
        """The user picked another version in the versions list."""

        def __init__(self, version_id: int) -> None:
            super().__init__()
            self.version_id = version_id

    def __init__(self, services: Services, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._services = services
        self.model: CivitaiModel | None = None
        self.version: CivitaiVersion | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-info"):
            yield Static("", id="detail-title")
            yield Static("", id="detail-meta")
            # No blank entry: a model always shows one of its versions. (A Select without
            # a blank needs an option from the start; show() puts the real ones in.)
            yield VersionSelect([("…", 0)], allow_blank=False, compact=True, id="versions")
            yield Static("", id="version-meta")
            yield Label("Files  (d: download)", classes="detail-heading")
            yield Static("", id="files")
            yield Label("Trained words", classes="detail-heading")
            yield Static("", id="words")
            yield Label("Recommended settings", classes="detail-heading")
            yield Static("", id="recommended")
            yield Label("Description", classes="detail-heading")
            yield _markdown()("", id="description")  # links are http(s) only (htmlmd)
        yield PreviewPane(self._services, id="preview")

    def use_services(self, services: Services) -> None:
        self._services = services
        self.query_one(PreviewPane).use_services(services)

    # -- filling ------------------------------------------------------------------------------
    def clear(self) -> None:
        """Show nothing (the results it belonged to are gone)."""
        self.model = None
        self.version = None
        for widget_id in ("#detail-title", "#detail-meta", "#version-meta", "#files", "#words"):
            self.query_one(widget_id, Static).update("")
        self.query_one("#description", _markdown()).update("")
        self.set_recommended(None)
        self.query_one(PreviewPane).show((), nsfw=False)

    def show(self, model: CivitaiModel, version: CivitaiVersion | None) -> None:
        """Show ``model`` at ``version`` (its newest when None)."""
        self.model = model
        version = version or model.latest
        flags = []
        if model.nsfw:
            flags.append("[$error]NSFW[/]")
        if model.mode:
            flags.append(f"[$error]{model.mode.upper()}[/]")
        self.query_one("#detail-title", Static).update(
            Content.from_markup(
                "[b]$name[/b]  [dim]$type · model $id$creator[/dim] " + " ".join(flags),
                name=terminal_safe(model.name, newlines=False),
                type=terminal_safe(model.type, newlines=False),
                id=str(model.id),
                creator=f" · by {terminal_safe(model.creator, newlines=False)}"
                if model.creator
                else "",
            )
        )
        stats = [
            f"{count(model.download_count)} downloads",
            f"{count(model.thumbs_up_count)} likes",
        ]
        if model.tags:
            stats.append("tags: " + ", ".join(model.tags[:6]))
        self.query_one("#detail-meta", Static).update(Content(terminal_safe(" · ".join(stats))))
        select = self.query_one("#versions", Select)
        options = [
            (
                terminal_safe(
                    f"{v.name}  ({v.base_model or '?'}, {date(v.published_at)})", newlines=False
                ),
                v.id,
            )
            for v in model.versions_newest_first
        ]
        select.display = bool(options)
        if options:
            select.set_options(options)
        if version is not None and any(v.id == version.id for v in model.versions):
            select.value = version.id
        from sdlib.tui.htmlmd import html_to_markdown

        description = html_to_markdown(model.description) or "*No description.*"
        self.query_one("#description", _markdown()).update(description)
        if version is not None:
            self.show_version(version, None)

    def show_version(self, version: CivitaiVersion, rec: RecommendedSettings | None) -> None:
        """Fill the version's facts, files, words, settings and previews."""
        self.version = version
        lines = [f"base: {version.base_model or '?'} ({version.base})"]
        if version.published_at:
            lines[0] += f" · published {date(version.published_at)}"
        if version.air:
            lines.append(f"AIR: {version.air}")
        markup = "\n".join("$l" + str(i) for i in range(len(lines)))
        variables = {f"l{i}": terminal_safe(line) for i, line in enumerate(lines)}
        if early_access_active(version.early_access_ends):
            markup += "\n[$warning]Early access until $ea[/] (downloads need early access)"
            variables["ea"] = date(version.early_access_ends)
        self.query_one("#version-meta", Static).update(Content.from_markup(markup, **variables))
        self.query_one("#files", Static).update(files_text(version))
        words = self.query_one("#words", Static)
        if version.trained_words:
            words.update(
                Content.from_markup(
                    "[$success]$words[/]  [dim](c: copy)[/dim]",
                    words=terminal_safe(", ".join(version.trained_words)),
                )
            )
        else:
            words.update(Content("none"))
        self.set_recommended(rec)
        self.query_one(PreviewPane).show(version.images, nsfw=self._services.settings.civitai.nsfw)

    def set_recommended(self, rec: RecommendedSettings | None) -> None:
        self.query_one("#recommended", Static).update(Content(recommended_text(rec)))

    # -- queries ------------------------------------------------------------------------------
    def step_preview(self, delta: int) -> None:
        self.query_one(PreviewPane).step(delta)

    @on(Select.Changed, "#versions")
    def _version_changed(self, event: Select.Changed) -> None:
        event.stop()
        if not isinstance(event.value, int) or event.value != event.select.value:
            return  # a blank, or a value set_options passed through on the way to ours
        if self.model is None or self.model.version(event.value) is None:
            return
        if self.version is None or event.value != self.version.id:
            self.post_message(self.VersionChosen(event.value))


def _markdown() -> type[Markdown]:
    """Textual's Markdown widget, imported when a detail pane is first composed: importing
    it (markdown-it and its rules) cost Browse's first frame ~70 ms of CPU."""
    from textual.widgets import Markdown

    return Markdown
