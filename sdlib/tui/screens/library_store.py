"""The Library screen's shared-store half: which webUIs see each file, and dedupe.

``StoreViews`` is a base of :class:`~sdlib.tui.screens.library.LibraryScreen`. After each
scan a worker asks ``sdlib.services.seen`` who sees every model (the configured webUI,
roots ``sdlib link`` recorded, roots of dedupe runs); the answer fills the "seen by" column
and the detail pane when it arrives, so the table is drawn without waiting for it.

``d`` plans a dedupe of the known roots with ``sdlib.services.dedupe`` (the same as
``sdlib dedupe ROOT... --apply``), shows what would be linked and the bytes reclaimable,
and applies it after a yes; ``D`` undoes the last dedupe of this webUI (or
``sdlib dedupe --undo ROOT...``, which the dialogs print).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import on, work

from sdlib.formatting import human_size, plural, terminal_safe, tilde
from sdlib.tui.messages import LibraryProgress, LibrarySeen, LibraryTaskDone
from sdlib.tui.screens._base import SdlibScreen
from sdlib.tui.widgets.library_detail import LibraryDetail

if TYPE_CHECKING:
    from collections.abc import Callable

    from sdlib.library.dedupe import DedupePlan
    from sdlib.library.scan import FileReport, ScanResult
    from sdlib.services.dedupe import DedupeProgress
    from sdlib.store.seen import Seen

__all__ = ["Proposal", "StoreViews", "seen_lines", "undo_command"]

#: Copies listed in the dedupe dialog before "... and N more".
_SHOWN = 30

_HOW = {
    "store": "through the shared store",
    "linked": "through a link",
    "hardlink": "a hard link (one copy on disk)",
    "copy": "a separate copy (d: dedupe)",
}


@dataclass(frozen=True)
class Proposal:
    """A dedupe plan of ``roots`` (their webUIs ``uis``) waiting for a yes."""

    roots: tuple[str, ...]
    uis: tuple[str, ...]
    labels: dict[str, str]
    plan: DedupePlan


def undo_command(roots: tuple[str, ...]) -> str:
    """The CLI line that undoes a dedupe of ``roots``, quoted for this system's shell."""
    if os.name == "nt":
        import subprocess

        return "sdlib dedupe --undo " + subprocess.list2cmdline(roots)
    return "sdlib dedupe --undo " + " ".join(shlex.quote(r) for r in roots)


def seen_lines(seen: Seen | None, known: int) -> str:
    """The detail pane's "seen by" lines."""
    if seen is None:
        return "seen by: …"
    if not seen.sightings:
        text = "seen by: this webUI only"
        if known < 2:
            text += " (no other webUI folder known: sdlib link or dedupe adds them)"
    else:
        lines, told = [], {seen.path}
        for s in seen.sightings:
            where = "" if s.path in told else f": {tilde(s.path)}"  # a store file: once
            told.add(s.path)
            lines.append(f"{s.label} {_HOW[s.how]}{where}")
        text = "seen by: " + "\n         ".join(lines)
    if seen.elsewhere:
        text += f"\n  {plural(seen.elsewhere, 'more hard link')} outside the known webUI folders"
    return terminal_safe(text)


class StoreViews(SdlibScreen):
    """The "seen by" column and the dedupe actions (see the module docstring)."""

    _result: ScanResult | None
    _reports: dict[str, FileReport]
    _width: int

    def _store_init(self) -> None:
        self._seen: dict[str, Seen] = {}
        self._known_uis = 0

    if TYPE_CHECKING:  # LibraryScreen defines them

        def _setup(self, width: int) -> None: ...

        def _fill(self, selected: str | None = None) -> None: ...

        def _selected_path(self) -> str | None: ...

        def _status(self, text: str) -> None: ...

        def selected(self) -> FileReport | None: ...

        def run_task(self, label: str, fn: Callable[[], LibraryTaskDone]) -> None: ...

    # -- who sees each file -------------------------------------------------------------------
    def seen_shown(self) -> bool:
        """Show the column: some file is seen by another webUI, or not as its own copy."""
        return any(s.sightings for s in self._seen.values())

    def seen_width(self, most: int) -> int:
        """The column's width (0: not shown): its longest text, up to ``most``."""
        longest = max((len(s.compact()) for s in self._seen.values()), default=0)
        return min(max(longest, 8), most) if longest else 0

    def seen_text(self, path: str) -> str:
        seen = self._seen.get(path)
        return seen.compact() if seen is not None else ""

    def seen_detail(self, path: str) -> str:
        return seen_lines(self._seen.get(path), self._known_uis)

    def find_seen(self, result: ScanResult) -> None:
        models = {f.path: f.row for f in result.files if f.role == "model"}
        self._find_seen(str(result.root), models)

    @work(thread=True, exclusive=True, group="library-seen", exit_on_error=False)
    def _find_seen(self, root: str, rows: dict[str, Any]) -> None:
        from sdlib.errors import SdlibError
        from sdlib.services.seen import seen_by

        try:
            report = seen_by(self.services, list(rows), rows=rows)
        except (SdlibError, OSError):
            return  # the column stays empty; the table is what matters
        self.post_message(LibrarySeen(root, report))

    @on(LibrarySeen)
    def _seen_ready(self, message: LibrarySeen) -> None:
        if self._result is None or str(self._result.root) != message.root:
            return  # a rescan of another folder is under way
        was = self.seen_shown()
        self._seen = dict(message.report.files)
        self._known_uis = len(message.report.uis)
        if was or self.seen_shown():
            selected = self._selected_path()
            self._setup(self._width)
            self._fill(selected)
        path = self._selected_path()
        if path is not None:
            self.query_one(LibraryDetail).show_seen(self.seen_detail(path))

    # -- dedupe -------------------------------------------------------------------------------
    def action_dedupe(self) -> None:
        if self._result is None:
            self.notify("scan first (r)", timeout=3)
            return

        def plan() -> LibraryTaskDone:
            from sdlib.services import dedupe
            from sdlib.services.seen import known_uis

            uis = known_uis(self.services)
            roots = tuple(u.root for u in uis)
            names = tuple(u.ui if u.ui != "plain" else "" for u in uis)  # "": a plain folder
            made = dedupe.plan(self.services, roots, list(names), on_progress=self._dedupe_step)
            labels = {u.root: u.label for u in uis}
            return LibraryTaskDone("dedupe plan ready", "",
                                   dedupe=Proposal(roots, names, labels, made))  # fmt: skip

        self.run_task("looking for identical files", plan)

    def show_dedupe(self, proposal: Proposal) -> None:
        from sdlib.tui.screens.dialogs import ConfirmDialog

        plan = proposal.plan
        where = ", ".join(proposal.labels.values())
        if not plan.ops:
            notes = "".join(f"\n{n}" for n in plan.notes)
            self.notify(f"no identical copies to link in {where}{notes}", title="Dedupe",
                        markup=False, timeout=8)  # fmt: skip
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_task("deduplicating", lambda: self._apply(proposal))

        title = (f"Dedupe: {plural(len(plan.ops), 'copy', 'copies')}, "
                 f"{human_size(plan.reclaimable)} reclaimable")  # fmt: skip
        self.app.push_screen(ConfirmDialog(title, self._plan_text(proposal), yes="Apply"),
                             answer)  # fmt: skip

    def _plan_text(self, proposal: Proposal) -> str:
        plan = proposal.plan
        lines = [f"Across {', '.join(proposal.labels.values())}: "
                 f"{plural(plan.files, 'model file')} compared."]  # fmt: skip
        shown = 0
        for group in plan.groups:
            for copy in group.copies:
                if copy.role == "linked" or shown >= _SHOWN:
                    continue
                shown += 1
                label = proposal.labels.get(copy.root, "")
                rel = os.path.relpath(copy.path, copy.root)
                verb = "keep" if copy.role == "keep" else "link"
                lines.append(f"{verb}  {label} {rel} ({human_size(group.size)})")
        rest = sum(len(g.copies) for g in plan.groups) - shown
        if rest > 0:
            lines.append(f"… and {rest} more")
        if plan.notes:
            lines += ["", *plan.notes]
        lines += [
            "",
            "Each extra copy becomes a hard link to the kept file: one copy on disk, every "
            "name opens the same bytes (deleting one name frees nothing).",
            f"A journal is written first. To undo: D here, or `{undo_command(proposal.roots)}`.",
        ]
        return "\n".join(lines)

    def _apply(self, proposal: Proposal) -> LibraryTaskDone:
        from sdlib.services import dedupe

        out = dedupe.apply(self.services, proposal.roots, list(proposal.uis),
                           on_progress=self._dedupe_step)  # fmt: skip
        problems = [f"{p['path']}: {p['why']}" for p in (*out.skipped, *out.failed)]
        freed = out.plan.reclaimable if out.plan is not None else None
        text = f"{plural(out.done, 'copy', 'copies')} linked"
        if freed is not None and out.done:
            text += f", {human_size(freed)} freed"
        if out.resumed:
            text += " (an interrupted dedupe was finished first)"
        text += f"; D (or {undo_command(proposal.roots)}) undoes it"
        return LibraryTaskDone("deduplicated", text + "".join(f"\n{p}" for p in problems),
                               changed=True, ok=not out.failed, dialog=bool(problems))  # fmt: skip

    def action_undo_dedupe(self) -> None:
        from sdlib.tui.screens.dialogs import ConfirmDialog

        run = self._last_run()
        if run is None:
            self.notify("no dedupe of this webUI folder to undo", title="Undo dedupe", timeout=4)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_task("undoing the dedupe", lambda: self._undo(run.roots))

        body = (
            f"Give every name the dedupe of {', '.join(tilde(r) for r in run.roots)} linked "
            f"its own bytes back ({plural(run.links, 'file')}, {human_size(run.bytes)} of disk "
            "space again), copied from the kept file and checked by SHA256.\n\n"
            f"The same as `{undo_command(run.roots)}`."
        )
        self.app.push_screen(ConfirmDialog("Undo dedupe", body, yes="Undo"), answer)

    def _last_run(self) -> Any:
        from sdlib.services.seen import dedupe_runs

        if self._result is None:
            return None
        home = os.path.normcase(os.path.abspath(self._result.root))
        for run in dedupe_runs(self.services):
            if home in (os.path.normcase(r) for r in run.roots):
                return run
        return None

    def _undo(self, roots: tuple[str, ...]) -> LibraryTaskDone:
        from sdlib.services import dedupe

        out = dedupe.undo(self.services, roots, on_progress=self._dedupe_step)
        problems = [f"{p['path']}: {p['why']}" for p in (*out.skipped, *out.failed)]
        return LibraryTaskDone("dedupe undone",
                               f"{plural(out.done, 'file')} separate again"
                               + "".join(f"\n{p}" for p in problems),
                               changed=True, ok=not out.failed, dialog=bool(problems))  # fmt: skip

    def _dedupe_step(self, event: DedupeProgress) -> None:
        """Called from the worker: one status line per step (coalesced)."""
        words = {"scan": "scanning", "hash": "hashing", "link": "linking", "undo": "restoring"}
        total = f"/{event.total}" if event.total else ""
        name = f" {os.path.basename(event.path)}" if event.path else ""
        self.post_message(LibraryProgress(f"{words.get(event.stage, event.stage)} "
                                          f"{event.done}{total}{name}"))  # fmt: skip
