"""``sdlib dedupe``: identical model files inside and across webUI roots, as hard links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, emit_json, handle_errors, human_size, json_option
from sdlib.cli._library import UI_HELP, Progress, context, root_of, settings
from sdlib.formatting import plural


@click.command("dedupe")
@click.argument("roots", nargs=-1,
                type=click.Path(path_type=Path, file_okay=False, exists=True))  # fmt: skip
@click.option("--ui", "uis", multiple=True,
              help=UI_HELP + " Once for every root, or once per root in order.")  # fmt: skip
@click.option("--apply", "do_apply", is_flag=True,
              help="Replace the extra copies by hard links (journaled).")  # fmt: skip
@click.option("--undo", is_flag=True, help="Give back separate files for what --apply linked.")
@click.option("--no-reflink", "no_reflink", is_flag=True,
              help="Hard links even where the filesystem makes reflinks.")  # fmt: skip
@json_option
@handle_errors
def dedupe_cmd(roots: tuple[Path, ...], uis: tuple[str, ...], do_apply: bool, undo: bool,
               no_reflink: bool, as_json: bool) -> None:  # fmt: skip
    """Find identical model files in and across webUI folders; --apply makes them one file.

    Files are compared by size, then by SHA256 (from the hash cache: a second run reads no
    model file). Without --apply nothing changes: the groups and the bytes that could be
    freed are listed. --apply keeps one copy on each volume and replaces every other copy
    there by a hard link to it: each webUI still opens its own path, every name keeps its
    own sidecars, and the disk holds the bytes once. Where the filesystem makes reflinks
    (Btrfs, XFS...; tried on each volume, Linux only for now) the copy becomes a reflink
    instead: a copy-on-write clone that stays a file of its own (--no-reflink: hard links
    anyway); the report says which. The kept copy is never touched, and
    symlinks and junctions are never followed or replaced. Copies on different volumes
    cannot be hard links: they are reported (a shared store, `sdlib store`, is the way).
    --apply writes a journal first: if it is interrupted, run it again to finish, or
    --undo to go back; --undo gives every name its own bytes again, verified by SHA256.
    Note: a hard-linked file edited in place changes under every name.

    \b
    Examples:
      sdlib dedupe ~/stable-diffusion-webui ~/ComfyUI
      sdlib dedupe ~/stable-diffusion-webui ~/ComfyUI --apply
      sdlib dedupe ~/stable-diffusion-webui ~/ComfyUI --undo
      sdlib dedupe ~/forge ~/ComfyUI --ui forge --ui comfyui --json
    """
    from sdlib.errors import UsageError
    from sdlib.services import dedupe

    if do_apply and undo:
        raise UsageError("use --apply or --undo, not both")
    config = settings()
    given = list(roots) or [root_of(config, None)]
    ui: list[str] | None = list(uis) or None
    with context(config) as ctx, Progress(every=1.0) as progress:

        def step(event: Any) -> None:
            progress.update(event.stage, event.done, event.total, event.path)

        if undo:
            out = dedupe.undo(ctx, given, on_progress=step).to_dict()
        elif do_apply:
            out = dedupe.apply(ctx, given, ui, on_progress=step,
                               reflink=not no_reflink).to_dict()  # fmt: skip
        else:
            plan = dedupe.plan(ctx, given, ui, on_progress=step, reflink=not no_reflink)
            out = {"action": "plan", **plan.to_dict(),
                   "interrupted": dedupe.interrupted(ctx, given)}  # fmt: skip
    if as_json:
        emit_json(out)
    else:
        _print(out)
    if out.get("failed"):
        raise SystemExit(1)


def _print(out: dict[str, Any]) -> None:
    from rich.markup import escape as esc

    c = console()
    if out["action"] == "plan" or out.get("journal") is None:
        plan = out.get("plan", out)
        _print_plan(c, plan)
        if out["action"] == "plan" and plan["actions"]:
            c.print("Run with --apply to link them; --undo reverts.")
        if out.get("interrupted"):
            c.print("[yellow]an earlier dedupe was interrupted[/yellow]: "
                    "--apply finishes it, --undo reverts it")  # fmt: skip
        return
    if out.get("plan"):
        _print_plan(c, out["plan"])
    word = "undid" if out["action"] == "undo" else ("finished" if out["resumed"] else "linked")
    c.print(f"{word} {out['done']} of {plural(len(out['actions']), 'copy', 'copies')} "
            f"(journal {esc(out['journal'])})", highlight=False)  # fmt: skip
    for s in out["skipped"]:
        c.print(f"[yellow]skipped[/yellow] {esc(s['path'])}: {esc(s['why'])}", highlight=False)
    for s in out["failed"]:
        c.print(f"[red]failed[/red] {esc(s['path'])}: {esc(s['why'])}", highlight=False)


def _print_plan(c: Any, plan: dict[str, Any]) -> None:
    from rich.markup import escape as esc

    summary = plan["summary"]
    for g in plan["groups"]:
        c.print(f"{len(g['copies'])} copies of {human_size(g['size'])} "
                f"(SHA256 {g['sha256'][:12]}):", highlight=False)  # fmt: skip
        for copy in g["copies"]:
            c.print(f"  {copy['role']:9} {esc(copy['path'])}", highlight=False)
    for note in plan["notes"]:
        c.print(f"[yellow]note[/yellow] {esc(note)}", highlight=False)
    if not plan["groups"]:
        c.print(f"[green]no duplicates[/green] among {summary['files']} model files")
        return
    reflinks = summary.get("reflinks", 0)
    how = "" if not reflinks else (" as reflinks" if reflinks == summary["links"]
                                   else f" ({reflinks} as reflinks)")  # fmt: skip
    copies = plural(summary["links"], "copy", "copies")
    line = (f"{plural(summary['groups'], 'group')}, {copies} "
            f"to link{how}: {human_size(summary['reclaimable_bytes'])} to reclaim")  # fmt: skip
    if summary["other_volume_bytes"]:
        line += f", {human_size(summary['other_volume_bytes'])} more on other volumes"
    c.print(line, highlight=False)
