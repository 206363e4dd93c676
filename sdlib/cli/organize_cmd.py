"""``sdlib organize``: plan, apply and undo the moves that fix what ``sdlib scan`` found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, emit_json, handle_errors, json_option
from sdlib.cli._library import (
    ROOT,
    Progress,
    context,
    layout_of,
    root_of,
    run_scan,
    settings,
    ui_option,
)
from sdlib.cli._refresh import no_refresh_option, refresh_after
from sdlib.formatting import plural


@click.command("organize")
@ROOT
@ui_option
@click.option("--by-base", is_flag=True,
              help="Sort each kind's folder by base: SD1.5/, SDXL/, FLUX1/...")  # fmt: skip
@click.option("--dedupe", type=click.Choice(["keep", "hardlink", "delete"]), default="keep",
              show_default=True,
              help="Identical copies: leave them, make them hard links to one file, or delete "
              "all but one.")  # fmt: skip
@click.option("--apply", "do_apply", is_flag=True, help="Carry out the plan (journaled).")
@click.option("--undo", is_flag=True, help="Put back what the last --apply changed.")
@no_refresh_option
@json_option
@handle_errors
def organize_cmd(root: Path | None, ui: str | None, by_base: bool, dedupe: str, do_apply: bool,
                 undo: bool, no_refresh: bool, as_json: bool) -> None:  # fmt: skip
    """Plan (and with --apply, make) the moves that fix what `sdlib scan` found.

    Misplaced models go to the folder their content belongs in, sidecars travel with their
    model, clashing names get the Civitai version id (or a short hash), unsafe names and
    preview extensions are fixed, orphaned sidecars rejoin their model, and duplicates are
    resolved as --dedupe says. Without --apply nothing changes. --apply writes a journal
    first: if it is interrupted, run it again to finish, or --undo to go back. Cross-drive
    moves copy, verify and only then delete. Note: moving a model changes the name
    ComfyUI workflows use for it. --undo and finishing an interrupted --apply need only
    ROOT: the journal remembers the --ui it ran with. After --apply or --undo, running
    webUIs set up as [webui.NAME] are asked to rescan the lists that changed.

    \b
    Examples:
      sdlib organize ~/stable-diffusion-webui
      sdlib organize ~/ComfyUI --by-base --dedupe hardlink --apply
      sdlib organize ~/ComfyUI --undo
    """
    from sdlib.errors import UsageError
    from sdlib.library.organize import OrganizeOptions
    from sdlib.services import library

    if do_apply and undo:
        raise UsageError("use --apply or --undo, not both")
    options = OrganizeOptions(by_base=by_base, dedupe=dedupe)
    config = settings()
    root = root_of(config, root)
    with context(config) as ctx, Progress() as progress:
        if ui is None and (undo or do_apply):
            ui = library.journal_ui(ctx, root, undo=undo)  # undo and resume need only ROOT
        layout = layout_of(config, root, ui)
        out = _organize(ctx, root, layout, options, undo, do_apply, progress)
    if as_json:
        emit_json(out)
    else:
        _print_organize(out)
    if not no_refresh and out.get("done"):  # both ends of a move change a list
        moved = [(a[k], None) for a in out["actions"] for k in ("path", "dst") if a.get(k)]
        refresh_after(config, layout, root, moved)
    if out.get("failed"):
        raise SystemExit(1)


def _organize(ctx: Any, root: Path, layout: Any, options: Any, undo: bool, do_apply: bool,
              progress: Progress) -> dict[str, Any]:  # fmt: skip
    """Plan, apply or undo through the service layer (as the TUI does); the JSON record."""
    from sdlib.services import library

    made: list[Any] = []

    def plan() -> Any:
        made.append(library.organize_plan(ctx, run_scan(ctx, root, layout, False, progress),
                                          options))  # fmt: skip
        return made[-1]

    if not undo and not do_apply:
        return {"action": "plan", **plan().to_dict(), "interrupted": library.interrupted(ctx, root)}
    outcome = library.organize_undo(ctx, root) if undo else library.organize_apply(ctx, root, plan)
    if outcome.journal is None:  # nothing to do: the plan says why
        return {"action": "apply", **made[-1].to_dict(), "journal": None, "resumed": False,
                "done": 0, "skipped": [], "failed": [], "after": None}  # fmt: skip
    return {**outcome.to_dict(), "after": run_scan(ctx, root, layout, False, progress).summary()}


def _print_organize(out: dict[str, Any]) -> None:
    from rich.markup import escape as esc

    out_c = console()
    verbs = {"move": "move", "link": "link", "delete": "delete", "mkdir": "mkdir"}
    action = out["action"]
    actions = out.get("actions", [])
    if action == "plan" or (action == "apply" and out.get("journal") is None):
        if not actions:
            out_c.print("[green]nothing to do[/green]: the folders are in order")
        elif not out_c.is_terminal:
            _plan_records(out_c, actions)
        for a in actions if out_c.is_terminal else ():
            verb = verbs[a["action"]]
            if a["action"] == "move":
                line = f"{verb:6} {esc(a['path_rel'])} -> {esc(a['dst_rel'])}"
            elif a["action"] in ("link", "delete"):
                line = f"{verb:6} {esc(a['path_rel'])} (same bytes as {esc(a['keep_rel'])})"
            else:
                line = f"{verb:6} {esc(a['path_rel'])}/"
            why = f"  [dim]{esc(a.get('why', ''))}[/dim]" if a["action"] != "mkdir" else ""
            out_c.print(line + why, highlight=False)
        for note in out.get("notes", []):
            out_c.print(f"[yellow]not changed[/yellow] {esc(note)}", highlight=False)
        if action == "plan" and actions:
            steps = plural(len(actions), "step")
            out_c.print(f"{steps}. Run with --apply to make them; --undo reverts.")
        if out.get("interrupted"):
            out_c.print("[yellow]an earlier organize was interrupted[/yellow]: "
                        "--apply finishes it, --undo reverts it")  # fmt: skip
        return
    word = "undid" if action == "undo" else ("finished" if out.get("resumed") else "applied")
    steps = plural(len(actions), "step")
    out_c.print(f"{word} {out['done']} of {steps} (journal {esc(out['journal'])})")
    for s in out["skipped"]:
        out_c.print(f"[yellow]skipped[/yellow] {esc(s['path_rel'])}: {esc(s['why'])}")
    for s in out["failed"]:
        out_c.print(f"[red]failed[/red] {esc(s['path_rel'])}: {esc(s['why'])}")
    after = out.get("after") or {}
    if after:
        counts = ", ".join(f"{n} {k}" for k, n in after.get("by_status", {}).items())
        out_c.print(f"now: {plural(after.get('files', 0), 'file')}: {counts}")


def _plan_records(out: Any, actions: list[dict[str, Any]]) -> None:
    """Through a pipe: one line per step with full paths (the target, or the copy kept)."""
    from sdlib.cli._table import Column, print_records

    rows = [[a["action"], a.get("path") or a.get("path_rel", ""),
             a.get("dst") or a.get("keep") or a.get("dst_rel") or a.get("keep_rel") or "",
             a.get("why", "")] for a in actions]  # fmt: skip
    print_records(out, [Column(c) for c in ("action", "path", "to or same as", "why")], rows)
