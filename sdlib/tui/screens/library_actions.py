"""The Library screen's actions: what each runs in its worker, and how it is reported.

Verify, identify, updates and convert return a ``LibraryTaskDone``. The file-moving ones,
organize (plan, confirm, apply, undo) and trash, ask first in a dialog that lists exactly
what will move, then run the library's own journaled organize (``sdlib organize --apply``)
or the system trash (where there is none, a same-disk rename into ``.sdlib-trash``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdlib.formatting import human_size, plural, tilde
from sdlib.tui.messages import LibraryTaskDone

if TYPE_CHECKING:
    from sdlib.library.organize import Plan
    from sdlib.library.scan import FileReport, ScanResult
    from sdlib.tui.screens.library import LibraryScreen

#: Lines of a plan shown before "... and N more".
_SHOWN = 40


def plan_text(plan: Plan) -> str:
    """The plan as a user reads it: one line per operation, then the notes."""
    from sdlib.library.organize import op_dict

    lines = []
    for op in plan.ops[:_SHOWN]:
        d: dict[str, Any] = op_dict(op, plan.root)
        if op.action == "move":
            lines.append(f"move   {d['path_rel']} → {d['dst_rel']}")
        elif op.action in ("link", "delete"):
            lines.append(f"{op.action:6} {d['path_rel']} (same bytes as {d['keep_rel']})")
        else:
            lines.append(f"{op.action:6} {d['path_rel']}/")
        if op.why and op.action != "mkdir":
            lines.append(f"       {op.why}")
    if len(plan.ops) > _SHOWN:
        lines.append(f"… and {len(plan.ops) - _SHOWN} more")
    if plan.notes:
        lines += ["", "left as they are:"] + [f"  {n}" for n in plan.notes]
    return "\n".join(lines)


def start_organize(screen: LibraryScreen, result: ScanResult) -> None:
    def plan() -> LibraryTaskDone:
        from sdlib.services.library import interrupted, organize_plan

        made = organize_plan(screen.services, result)
        pending = interrupted(screen.services, made.root)
        return LibraryTaskDone("organize plan ready", "", plan=made, interrupted=pending)

    screen.run_task("planning the fixes", plan)


#: What the confirm dialog says when an earlier run on the folder never finished (the CLI's
#: plan says the same): Apply finishes that run, not the plan shown (`organize_apply`).
INTERRUPTED = (
    "An earlier organize run on this folder was interrupted: Apply finishes that run first "
    "(the steps below are what a new plan would do; plan again afterwards to see what is "
    "left). ctrl+z instead puts back what it moved."
)


def show_plan(screen: LibraryScreen, plan: Plan, interrupted: str | None = None) -> None:
    """Called with the finished plan: nothing to do, or confirm and apply it. An interrupted
    run on the folder (its journal) is offered to be finished even when the plan is empty."""
    from sdlib.tui.screens.dialogs import ConfirmDialog

    if not plan.ops and not interrupted:
        extra = ("\n" + "\n".join(plan.notes)) if plan.notes else ""
        screen.notify(
            "nothing to move: the folders are in order" + extra, title="Organize", markup=False
        )
        return

    def answer(yes: bool | None) -> None:
        if yes:
            screen.run_task("organizing", lambda: _apply(screen, plan))

    counts = ", ".join(f"{n} {action}" for action, n in plan.summary().items())
    title = f"Organize: {counts}" if counts else "Organize: finish the interrupted run"
    text = plan_text(plan) if plan.ops else "A new plan finds nothing to move."
    screen.app.push_screen(
        ConfirmDialog(
            title,
            (INTERRUPTED + "\n\n" if interrupted else "") + text + "\n\nA journal is written "
            "first: `sdlib organize --undo` (or ctrl+z here) puts everything back.",
            yes="Apply",
        ),
        answer,
    )


def _apply(screen: LibraryScreen, plan: Plan) -> LibraryTaskDone:
    from sdlib.services.library import organize_apply

    # One implementation with `sdlib organize --apply`: an interrupted run is finished first.
    out = organize_apply(screen.services, plan.root, lambda: plan)
    problems = [f"{p['path_rel']}: {p['why']}" for p in (*out.skipped, *out.failed)]
    done = f"{plural(out.done, 'operation')} done"
    if out.resumed:
        done += " (an interrupted organize run was finished first; plan again to see what is left)"
    text = done + "".join(f"\n{p}" for p in problems)
    return LibraryTaskDone(
        "organized", text, changed=True, ok=not out.failed, dialog=bool(problems)
    )


def start_undo(screen: LibraryScreen) -> None:
    def undo() -> LibraryTaskDone:
        from sdlib.services.library import organize_undo

        root, _layout = screen.services.library_root()
        out = organize_undo(screen.services, root)
        problems = [f"{p['path_rel']}: {p['why']}" for p in (*out.skipped, *out.failed)]
        return LibraryTaskDone(
            "organize undone",
            f"{plural(out.done, 'operation')} put back" + "".join(f"\n{p}" for p in problems),
            changed=True,
            ok=not out.failed,
        )

    screen.run_task("undoing the last organize", undo)


def start_convert(screen: LibraryScreen, f: FileReport) -> None:
    from sdlib.tui.screens.dialogs import ConfirmDialog

    if not (f.row.container or "").startswith("pickle"):
        screen.notify(
            f"{f.rel} is {f.row.container or 'not a pickle'}: nothing to convert", timeout=4
        )
        return

    def go(yes: bool | None) -> None:
        if yes:
            screen.run_task("converting " + f.rel, lambda: convert_task(f))

    screen.app.push_screen(
        ConfirmDialog(
            "Convert to safetensors",
            f"Write a .safetensors copy of {f.rel} beside it?\n"
            "The pickle is read without running any of its code; the original is kept.",
            yes="Convert",
        ),
        go,
    )


def start_trash(screen: LibraryScreen, report: FileReport) -> None:
    from sdlib.tui.screens.dialogs import ConfirmDialog

    files = [report.rel] + [s.rsplit("/", 1)[-1] for s in report.sidecars]

    def answer(yes: bool | None) -> None:
        if yes:
            screen.run_task("moving to the trash", lambda: _trash(screen, report))

    screen.app.push_screen(
        ConfirmDialog(
            "Move to trash",
            "\n".join(files) + "\n\nThey go to the system trash; where there is none, to "
            ".sdlib-trash in the webUI folder (delete that folder to free the space).",
            yes="Move to trash",
            danger=True,
        ),
        answer,
    )


def _trash(screen: LibraryScreen, report: FileReport) -> LibraryTaskDone:
    from sdlib.services.library import trash

    root, layout = screen.services.library_root()
    done = trash(report, root, layout)
    where = tilde(done.folder) if done.folder and not done.system else done.where
    return LibraryTaskDone("moved to the trash", f"{report.rel} → {where}", changed=True)


# --- task bodies (worker threads) -----------------------------------------------------------


def verify_task(f: FileReport, screen: LibraryScreen) -> LibraryTaskDone:
    from sdlib.services.library import verify
    from sdlib.services.verify import SOURCES

    # `sdlib verify FILE`'s check: every SHA256 known for the file, the cache kept on a mismatch.
    check = verify(screen.services, f)
    name = f.rel.rsplit("/", 1)[-1]
    if check.state == "error":
        return LibraryTaskDone("cannot verify", f"{name}: {check.error}", ok=False)
    if check.state == "no-reference":
        return LibraryTaskDone(
            "verified",
            f"{name}: SHA256 {check.sha256} (nothing to compare with: identify it first)",
        )
    if check.state == "ok":
        matched = "; ".join(SOURCES[s] for s, _ in check.references)
        return LibraryTaskDone("verified", f"{name}: SHA256 matches {matched}")
    differs = "; ".join(SOURCES[s] for s in check.mismatched)
    return LibraryTaskDone(
        "hash mismatch",
        f"{name}: SHA256 {check.sha256} differs from {differs}; the file is damaged or was changed",
        ok=False,
    )


def identify_task(reports: list[FileReport], screen: LibraryScreen) -> LibraryTaskDone:
    from sdlib.services.library import identify

    root, layout = screen.services.library_root()
    results = identify(screen.services, reports, root=root, layout=layout)
    lines = []
    for r in results:
        name = r.path.rsplit("/", 1)[-1]
        if r.state == "identified":
            lines.append(f"{name}: {r.model_name} / {r.version_name} (model {r.model_id})")
        elif r.state == "unidentified":
            lines.append(f"{name}: not on Civitai")
        else:
            lines.append(f"{name}: {r.state} {r.error or ''}".rstrip())
    found = sum(1 for r in results if r.state == "identified")
    return LibraryTaskDone(
        f"identified {found} of {len(results)}",
        "\n".join(lines) or "nothing to identify",
        changed=True,
        ok=all(r.state != "error" for r in results),
    )


def updates_task(reports: list[FileReport], screen: LibraryScreen) -> LibraryTaskDone:
    from sdlib.services.library import check_updates

    report = check_updates(screen.services, reports)
    lines = []
    for r in report.files:
        name = r.path.rsplit("/", 1)[-1]
        if r.status == "update-available" and r.newer:
            best = next((n for n in r.newer if n.get("same_base")), r.newer[0])
            lines.append(
                f"↑ {name}: {r.model_name} {r.version_name} → {best['name']} "
                f"(version {best['version_id']}, {best['base_model']})"
            )
        elif r.status == "up-to-date":
            lines.append(f"✓ {name}: up to date")
        else:
            lines.append(f"! {name}: {r.status} {r.error or ''}".rstrip())
    unidentified = sum(1 for f in reports if f.row.civitai_model_id is None)
    if unidentified:
        lines.append(f"({plural(unidentified, 'file')} not identified: press I to identify them)")
    lines += [f"error: {e}" for e in report.errors]
    n = sum(1 for r in report.files if r.status == "update-available")
    return LibraryTaskDone(
        f"{n} update{'s' if n != 1 else ''} available",
        "\n".join(lines),
        ok=not report.errors,
        dialog=True,
    )


def convert_task(f: FileReport) -> LibraryTaskDone:
    from sdlib.services.transform import convert_beside

    result = convert_beside(None, f.path)  # converting needs nothing from the context
    return LibraryTaskDone(
        "converted",
        f"{result.output.name}: {result.tensors} tensors, "
        f"{human_size(result.bytes_written)}, verified",
        changed=True,
    )
