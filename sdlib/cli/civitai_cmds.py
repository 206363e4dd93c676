"""``sdlib search`` and ``sdlib show``: browse Civitai (or a compatible server) or the
Hugging Face Hub (``--source hf``, ``hf:`` references; rendered by ``_hf``) from the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sdlib.cli._common import console, emit_json, handle_errors, human_size, json_option
from sdlib.errors import UsageError
from sdlib.formatting import count, plural

if TYPE_CHECKING:
    from sdlib.services import Context
    from sdlib.sources.civitai import (
        CivitaiModel,
        CivitaiVersion,
        RecommendedSettings,
    )

_SORT_ALIASES = {
    "highestrated": "Highest Rated",
    "rated": "Highest Rated",
    "rating": "Highest Rated",
    "mostdownloaded": "Most Downloaded",
    "downloads": "Most Downloaded",
    "mostliked": "Most Liked",
    "likes": "Most Liked",
    "mostdiscussed": "Most Discussed",
    "comments": "Most Discussed",
    "mostcollected": "Most Collected",
    "collected": "Most Collected",
    "mostimages": "Most Images",
    "images": "Most Images",
    "newest": "Newest",
    "new": "Newest",
    "oldest": "Oldest",
}
_PERIOD_ALIASES = {"alltime": "AllTime", "all": "AllTime", "year": "Year", "month": "Month",
                   "week": "Week", "day": "Day"}  # fmt: skip


def _key(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _context() -> Context:
    from sdlib.cli._common import cli_context
    from sdlib.config import load_settings

    context: Context = cli_context(load_settings())
    return context


@click.command("search")
@click.argument("query", required=False)
@click.option(
    "--type",
    "-t",
    "types",
    multiple=True,
    metavar="T",
    help="Model type: checkpoint, lora, lycoris, embedding, hypernetwork, vae, "
    "controlnet... (repeatable).",
)
@click.option(
    "--base",
    "-b",
    "bases",
    multiple=True,
    metavar="B",
    help="Base model: sd1, sd2, sdxl, flux... or a Civitai name like 'SD 1.5', "
    "'Pony' (repeatable).",
)
@click.option(
    "--sort",
    "-s",
    metavar="S",
    help="Highest Rated (default), Most Downloaded, "
    "Most Liked, Most Discussed, Most Collected, Most Images, Newest, Oldest.",
)
@click.option("--period", "-p", metavar="P", help="AllTime (default), Year, Month, Week, Day.")
@click.option("--nsfw", is_flag=True, help="Include NSFW models (Civitai hides them by default).")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show at most N models.",
)
@click.option(
    "--source",
    type=click.Choice(["civitai", "hf", "huggingface"], case_sensitive=False),
    default="civitai",
    show_default=True,
    help="Where to search: Civitai, or the Hugging Face Hub (hf).",
)
@json_option
@handle_errors
def search_cmd(
    source: str,
    query: str | None,
    types: tuple[str, ...],
    bases: tuple[str, ...],
    sort: str | None,
    period: str | None,
    nsfw: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Search Civitai models.

    \b
    Examples:
      sdlib search dreamshaper
      sdlib search --type lora --base sdxl --sort downloads --period month -n 50
      sdlib search "realistic vision" --type checkpoint --json
      sdlib search --source hf lcm --type lora --base sdxl --sort downloads

    On the Hub (--source hf): --type lora, checkpoint, vae, controlnet or embedding;
    --base sd1, sd2, sdxl, sd3, flux, flux2 or a base model's repo id; --sort downloads,
    likes, trending, updated or created.
    """  # fmt: skip
    if source.lower() != "civitai":
        if period or nsfw:
            raise UsageError("--period and --nsfw are Civitai's; the Hub has neither")
        from sdlib.cli._hf import search_hub

        search_hub(_context(), query, types=types, bases=bases, sort=sort, limit=limit,
                   as_json=as_json)  # fmt: skip
        return
    from sdlib.taxonomy import civitai_base_models, civitai_type

    civitai_types = []
    for t in types:
        name = civitai_type(t)
        if name is None:
            raise UsageError(f"unknown model type {t!r} (try checkpoint, lora, lycoris, "
                             "embedding, hypernetwork, vae, controlnet)")  # fmt: skip
        civitai_types.append(name)
    base_models: list[str] = []
    for b in bases:
        base_models += [n for n in civitai_base_models(b) if n not in base_models]
    sort_name = None
    if sort:
        sort_name = _SORT_ALIASES.get(_key(sort))
        if sort_name is None:
            raise UsageError(f"unknown sort {sort!r} (try downloads, likes, newest, rated)")
    period_name = None
    if period:
        period_name = _PERIOD_ALIASES.get(_key(period))
        if period_name is None:
            raise UsageError(f"unknown period {period!r} (AllTime, Year, Month, Week, Day)")

    stopped: list[str] = []
    from sdlib.services import remote

    with _context() as ctx:
        models = list(
            remote.search(
                ctx,
                query,
                types=civitai_types,
                base_models=base_models,
                sort=sort_name,
                period=period_name,
                nsfw=True if nsfw else None,
                limit=limit,
                on_stop=stopped.append,
            )
        )
    if stopped:
        from sdlib.errors import BadResponse

        if not models:  # the server kept paging without results: a broken answer
            raise BadResponse(f"Civitai search {stopped[0]}")
        from sdlib.formatting import terminal_safe

        note = terminal_safe(stopped[0], newlines=False)
        click.echo(f"sdlib: note: {note}; showing what was found", err=True)
    if as_json:
        emit_json([m.to_dict() for m in models])
        return
    out = console()
    if not models:
        out.print("No models found." + ("" if nsfw else " (NSFW models are hidden; try --nsfw)"))
        return
    from sdlib.cli._table import Column, print_records

    columns = [
        Column("id", justify="right", style="cyan"), Column("name", max_width=44),
        Column("type"), Column("base", max_width=22), Column("downloads", justify="right"),
        Column("likes", justify="right"), Column("updated"),
    ]  # fmt: skip
    print_records(out, columns, [
        [str(m.id), m.name, m.type, ", ".join(m.base_models) or "?", count(m.download_count),
         count(m.thumbs_up_count), (m.updated or "")[:10]]
        for m in models
    ])  # fmt: skip


@click.command("show")
@click.argument("ref")
@click.option(
    "--no-examples", is_flag=True, help="Do not fetch example images to recommend settings."
)
@click.option("--no-peek", is_flag=True,
              help="Hub repos: do not read the model files' headers (a few KiB each) to "
              "say what they are.")  # fmt: skip
@json_option
@handle_errors
def show_cmd(ref: str, no_examples: bool, no_peek: bool, as_json: bool) -> None:
    """Show a Civitai model or a Hugging Face repo: files, hashes, what they are.

    REF is a model id (4384), model@version (4384@128713), a civitai.com or civitai.red
    model or download URL, or an AIR (urn:air:sd1:checkpoint:civitai:4384@128713); or a
    Hub repo: hf:ORG/REPO[@REV] or a huggingface.co link (card summary, license, gated
    state, files with sizes and sha256, single-file models vs diffusers folders, and what
    each single-file model is, read from its header through Range requests).

    \b
    Examples:
      sdlib show 4384
      sdlib show 'https://civitai.com/models/4384?modelVersionId=128713'
      sdlib show urn:air:sd1:checkpoint:civitai:4384@128713 --json
      sdlib show hf:stable-diffusion-v1-5/stable-diffusion-v1-5
    """  # fmt: skip
    from sdlib.services import remote
    from sdlib.sources.civitai import RecommendedSettings

    context = _context()
    if remote.source_of(context, ref) == "huggingface":
        from sdlib.cli._hf import show_hub

        show_hub(context, ref, as_json=as_json, peek=not no_peek)
        return
    from sdlib.cli._archived import elsewhere_dict, print_elsewhere
    from sdlib.errors import Gone, SourceError
    from sdlib.services.fallback import elsewhere

    with context as ctx:
        file_id = ctx.civitai.parse_ref(ref).file_id
        try:
            model, version = remote.show(ctx, ref)
        except SourceError as exc:  # gone from Civitai: offer what a download would take
            found = elsewhere(ctx, ref, exc, file_id=file_id)
            if found is None:
                raise
            if as_json:
                emit_json({"model": None, "version": None, "gone": exc.message,
                           "elsewhere": elsewhere_dict(found)})  # fmt: skip
            else:
                print_elsewhere(ref, found, gone=exc.message)
            return
        rec = version.recommended if no_examples else remote.recommended(ctx, version)
        found = None
        if not version.files:  # archived: its files may live on elsewhere
            found = elsewhere(ctx, ref, Gone("no downloadable files"), file_id=file_id)
    if not isinstance(rec, RecommendedSettings):  # pragma: no cover - typing aid
        raise TypeError(type(rec))
    if as_json:
        from sdlib.sources.versions import early_access_active

        emit_json({"model": model.to_dict(), "version": version.to_dict(),
                   "recommended": rec.to_dict(), "file_id": file_id,
                   "early_access": early_access_active(version.early_access_ends),
                   "elsewhere": elsewhere_dict(found) if found else None})  # fmt: skip
        return
    _print_show(model, version, rec, file_id)
    if found is not None:
        print_elsewhere(ref, found)


def _print_show(
    model: CivitaiModel, version: CivitaiVersion, rec: RecommendedSettings, file_id: int | None
) -> None:
    from rich.markup import escape

    from sdlib.sources.versions import early_access_active

    out = console()
    flags = []
    if model.nsfw:
        flags.append("[red]NSFW[/]")
    if model.mode:
        flags.append(f"[red]{model.mode.upper()}[/]")
    out.print(
        f"[bold]{escape(model.name)}[/]  [dim]model {model.id}, {model.type} ({model.kind})"
        + (f", by {escape(model.creator)}" if model.creator else "")
        + "[/]"
        + ("  " + " ".join(flags) if flags else "")
    )
    stats = [f"{count(model.download_count)} downloads", f"{count(model.thumbs_up_count)} likes"]
    if model.tags:
        stats.append("tags: " + ", ".join(model.tags[:8]))
    out.print("[dim]" + escape(" · ".join(stats)) + "[/]")
    if model.allow_commercial_use:
        out.print(f"[dim]commercial use: {', '.join(model.allow_commercial_use)}[/]")
    out.print()

    out.print(
        f"[bold]Version[/] {escape(version.name)} [dim]({version.id})[/]  "
        f"base: {escape(version.base_model or '?')} [dim]({version.base})[/]"
        + (f"  published {version.published_at[:10]}" if version.published_at else "")
    )
    if version.air:
        out.print(f"AIR: {version.air}")
    if early_access_active(version.early_access_ends):
        out.print(f"[yellow]Early access until {version.early_access_ends}[/] "
                  "(downloads need early access until then)")  # fmt: skip
    if version.trained_words:
        out.print(
            "Trained words: " + ", ".join(f"[green]{escape(w)}[/]" for w in version.trained_words)
        )
    out.print("Recommended: " + _format_rec(rec))
    out.print()

    if version.files:
        out.print("[bold]Files[/]")
        for f in version.files:
            mark = " [green]primary[/]" if f.primary else ""
            if file_id is not None and f.id == file_id:
                mark += " [bold]<- selected[/]"
            what = " · ".join(b for b in (f.type, f.format, f.fp, f.weights) if b)
            out.print(
                f"  [cyan]{f.id}[/]  {escape(f.name)}  {human_size(f.size)}  {what}{mark}",
                soft_wrap=True,
            )
            scans = f"pickle scan {f.pickle_scan or '?'}, virus scan {f.virus_scan or '?'}"
            out.print(f"      [dim]{scans}[/]")
            for k, v in f.hashes.items():
                out.print(f"      [dim]{k:<7}[/] {v}", soft_wrap=True)
    else:
        out.print("[yellow]No downloadable files[/] (archived or not yet published).")

    others = [v for v in model.versions_newest_first if v.id != version.id]
    if others:
        from sdlib.cli._table import Column, print_records

        out.print()
        columns = [Column(c, justify="right" if c in ("id", "downloads") else "left")
                   for c in ("id", "name", "base", "published", "downloads")]  # fmt: skip
        print_records(out, columns, [
            [str(other.id), other.name, other.base_model or "?",
             (other.published_at or "")[:10], count(other.download_count)]
            for other in others
        ], title="Other versions")  # fmt: skip
        out.print(f"[dim]Show one with: sdlib show {model.id}@<version id>[/]")


def _format_rec(rec: RecommendedSettings) -> str:
    if not rec.samples:
        return "no example images with metadata"
    return ", ".join(rec.parts()) + f" [dim](from {plural(rec.samples, 'example image')})[/]"
