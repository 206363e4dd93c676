"""``sdlib search --source hf`` and ``sdlib show hf:...``: the Hub's answers rendered.

Parse -> ``sdlib.services.remote`` -> render, as for Civitai; through a pipe a table is one
tab-separated record per line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from sdlib.cli._common import console, emit_json, human_size
from sdlib.formatting import count

if TYPE_CHECKING:
    from sdlib.services import Context
    from sdlib.services.remote import Peek
    from sdlib.sources.hf import HubRepo

__all__ = ["search_hub", "show_hub"]


def search_hub(
    ctx: Context,
    query: str | None,
    *,
    types: tuple[str, ...],
    bases: tuple[str, ...],
    sort: str | None,
    limit: int,
    as_json: bool,
) -> None:
    from sdlib.services import remote

    stopped: list[str] = []
    with ctx:
        models = list(remote.hub_search(ctx, query, types=types, bases=bases, sort=sort,
                                        limit=limit, on_stop=stopped.append))  # fmt: skip
    if stopped:
        from sdlib.errors import BadResponse
        from sdlib.formatting import terminal_safe

        if not models:
            raise BadResponse(f"Hugging Face search {stopped[0]}")
        click.echo(f"sdlib: note: {terminal_safe(stopped[0], newlines=False)}; showing what "
                   "was found", err=True)  # fmt: skip
    if as_json:
        emit_json([m.to_dict() for m in models])
        return
    out = console()
    if not models:
        out.print("No models found on the Hugging Face Hub.")
        return
    from sdlib.cli._table import Column, print_records

    columns = [
        Column("repo", max_width=56, style="cyan"), Column("base"), Column("gated"),
        Column("downloads", justify="right"), Column("likes", justify="right"),
        Column("updated"),
    ]  # fmt: skip
    print_records(out, columns, [
        [f"hf:{m.id}", m.base.value, m.gated or "no", count(m.downloads), count(m.likes),
         (m.last_modified or "")[:10]]
        for m in models
    ])  # fmt: skip


def show_hub(ctx: Context, ref: str, *, as_json: bool, peek: bool = True) -> None:
    from sdlib.services import remote

    with ctx:
        repo = remote.hub_show(ctx, ref)
        peeks = remote.hub_peek(ctx, repo) if peek else []
    if as_json:
        emit_json({**repo.to_dict(), "peeked": [p.to_dict() for p in peeks]})
        return
    _print_repo(repo, {p.path: p for p in peeks})


def _print_repo(repo: HubRepo, peeks: Mapping[str, Peek] | None = None) -> None:
    from rich.markup import escape

    out = console()
    model = repo.model
    rev = f"@{repo.revision}" if repo.revision else ""
    out.print(f"[bold]hf:{escape(model.id)}{escape(rev)}[/]"
              + (f"  [dim]commit {model.sha}[/]" if model.sha else ""))  # fmt: skip
    if repo.renamed_from:
        out.print(f"[yellow]{escape(repo.renamed_from)} moved to {escape(model.id)}[/]")
    if model.gated:
        out.print(f"[yellow]Gated ({model.gated})[/]: downloads need a logged-in account that "
                  f"was granted access on the model's page")  # fmt: skip
    facts = [f"{count(model.downloads)} downloads", f"{count(model.likes)} likes"]
    facts.append(f"license: {model.license or '?'}")
    if model.base.value != "unknown":
        facts.append(f"base: {model.base.value}")
    if model.pipeline_tag:
        facts.append(model.pipeline_tag)
    out.print("[dim]" + escape(" · ".join(facts)) + "[/]")
    if repo.card_summary:
        out.print(escape(repo.card_summary))
    out.print()
    guesses = repo.guesses()
    singles = [(f, g) for f, g in guesses if g.layout == "single-file"]
    if singles:
        out.print("[bold]Single-file models[/] [dim](kind is a guess from names and tags)[/]")
        for f, g in singles:
            mark = " [bold]<- selected[/]" if f.path == repo.selected else ""
            out.print(f"  [cyan]{escape(f.path)}[/]  {human_size(f.size)}  {g.kind.value} "
                      f"[dim](guess: {escape(g.reason)})[/]{mark}")  # fmt: skip
            sha = f.sha256.upper() if f.sha256 else "? (not an LFS file)"
            out.print(f"      [dim]SHA256[/] {sha}")  # uppercase, as every SHA256 sdlib prints
            seen = (peeks or {}).get(f.path)
            if seen is not None:
                colour = "yellow" if seen.error else "green"
                out.print(f"      [{colour}]content[/] {escape(seen.summary())}")
    folders = repo.diffusers_folders()
    if folders:
        out.print()
        out.print("[bold]Diffusers folders[/] [dim](a diffusers pipeline: webUIs load the "
                  "single files above, not these)[/]")  # fmt: skip
        for folder in folders:
            parts = [f for f, g in guesses if g.component == folder]
            size = sum(f.size or 0 for f in parts)
            files = f"{len(parts)} file" + ("s" if len(parts) != 1 else "")
            out.print(f"  {escape(folder)}/  {files}, {human_size(size)}")
    others = [f.path for f, g in guesses if g.layout == "other"]
    if others:
        more = f" and {len(others) - 20} more" if len(others) > 20 else ""
        out.print()
        out.print("[dim]Other files: " + escape(", ".join(others[:20]) + more) + "[/]")
    if repo.selected and repo.selected not in {f.path for f, _ in singles}:
        out.print(f"[dim]Selected: {escape(repo.selected)}[/]")
