"""``sdlib scan``, ``identify`` and ``updates``: what is in a webUI's folders, and what Civitai
knows of it (``organize`` is in ``organize_cmd``, the shared plumbing in ``_library``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from sdlib.cli import _library
from sdlib.cli._common import (
    console,
    echo_err,
    emit_json,
    handle_errors,
    human_size,
    json_option,
)
from sdlib.cli._library import FAILED, ROOT, STYLE, ui_option
from sdlib.formatting import plural

# The plumbing shared with ``organize`` (``sdlib export`` imports these names from here).
_context, _layout, _Progress = _library.context, _library.layout_of, _library.Progress
_root, _run_scan, _settings = _library.root_of, _library.run_scan, _library.settings

# --- scan --------------------------------------------------------------------------------------


@click.command("scan")
@ROOT
@ui_option
@click.option("--hash", "hash_all", is_flag=True,
              help="Hash every model (SHA256), not only files that may be duplicates.")  # fmt: skip
@click.option("--all", "show_all", is_flag=True, help="List every file, not only problems.")
@json_option
@handle_errors
def scan_cmd(root: Path | None, ui: str | None, hash_all: bool, show_all: bool,
             as_json: bool) -> None:  # fmt: skip
    """Check a webUI's model folders and explain every problem found.

    Walks the folders the webUI loads models from (ComfyUI: plus extra_model_paths.yaml),
    classifies each file from its header, reads sidecars, and records everything in the
    library index. Unchanged files are not read again, so a re-scan takes a moment.
    A file that cannot be read never stops the scan: it is listed as corrupt (malformed
    bytes) or unreadable (permissions, a FIFO, a link loop) with the reason, every other
    file is reported as usual, and the exit code is 1. A pickle that would run code when
    loaded (unsafe-pickle) makes the exit code 3. Through a pipe the list is one file per
    line, tab-separated, with full paths.
    Statuses: ok, misplaced, duplicate, name-clash, unsafe-pickle, suspicious-pickle,
    unknown, corrupt, unreadable, unsupported-extension, orphan-sidecar,
    wrong-preview-extension, illegal-or-too-long-name, broken-link, link-outside-root
    (a link leading out of the root: listed, but nothing behind it is moved or deleted).

    \b
    Examples:
      sdlib scan ~/stable-diffusion-webui
      sdlib scan ~/ComfyUI --ui comfyui --hash --json
    """
    settings = _settings()
    root = _root(settings, root)
    layout = _layout(settings, root, ui)
    with _context(settings) as ctx, _Progress() as progress:
        result = _run_scan(ctx, root, layout, hash_all, progress)
    if as_json:
        emit_json(result.to_dict())
    else:
        _print_scan(result, show_all)
    if any("unsafe-pickle" in f.status for f in result.files):
        raise SystemExit(3)  # a file that would run code when loaded: the loudest finding
    if any(set(f.status) & FAILED for f in result.files):
        raise SystemExit(1)  # every file was reported; some could not be read


def _print_scan(result: Any, show_all: bool) -> None:
    from rich.markup import escape

    from sdlib.cli._table import Column, print_records

    out = console()
    rows = [f for f in result.files if show_all or f.status != ["ok"]]
    if rows:
        columns = [Column("status", no_wrap=True), Column("kind"), Column("base"),
                   Column("size", no_wrap=True), Column("file"), Column("why")]  # fmt: skip
        print_records(out, columns, [
            [[(s, STYLE.get(s, "")) for s in f.status],
             f.kind if f.role == "model" else f.role or "",
             f.base if f.role == "model" and f.base != "unknown" else "",
             human_size(f.size) if f.size else "",
             f.rel if out.is_terminal else f.path,  # through a pipe: a path that works anywhere
             "; ".join(f.notes)]
            for f in rows
        ])  # fmt: skip
        if out.is_terminal:
            out.print()
    s = result.summary()
    counts = ", ".join(f"{n} {name}" for name, n in s["by_status"].items())
    out.print(
        f"{plural(s['files'], 'file')} ({plural(s['models'], 'model')}, "
        f"{human_size(s['bytes'])}; {plural(s['sidecars'], 'sidecar')}) in "
        f"{result.layout.title} at {escape(str(result.root))}: {counts}"
    )
    out.print(
        f"[dim]{s['inspected']} read, {s['hashed']} hashed, {s['added']} new, "
        f"{s['moved']} moved, {s['removed']} gone; {s['seconds']:.2f} s[/dim]"
    )
    fixable = {"misplaced", "duplicate", "name-clash", "orphan-sidecar",
               "wrong-preview-extension", "illegal-or-too-long-name"}  # fmt: skip
    if fixable & set(s["by_status"]):
        out.print(f"[dim]see the fixes: sdlib organize {escape(str(result.root))}[/dim]")


# --- identify ----------------------------------------------------------------------------------


@click.command("identify")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
@ui_option
@click.option("--refresh", is_flag=True,
              help="Ask Civitai again; rewrite sidecars (backed up to .bak first).")  # fmt: skip
@click.option("--no-preview", is_flag=True, help="Do not download preview images.")
@click.option("--rate", type=click.FloatRange(0.1, 100), default=4.0, show_default=True,
              help="At most this many Civitai requests per second.")  # fmt: skip
@click.option("--jobs", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Lookups in flight at once.")  # fmt: skip
@json_option
@handle_errors
def identify_cmd(paths: tuple[Path, ...], ui: str | None, refresh: bool, no_preview: bool,
                 rate: float, jobs: int, as_json: bool) -> None:  # fmt: skip
    """Find each model file on Civitai by its hash and write its sidecars.

    PATH is a webUI folder, any folder of models, or model files (default: [library] root
    from the config). Looks up SHA256 first, then AutoV3 and AutoV2; answers are cached and
    requests paced, and an interrupted run picks up where it stopped. Writes
    <stem>.civitai.info (Civitai's version JSON), A1111's <stem>.json (merged: your keys
    are kept) and <stem>.preview.<true extension>, never replacing good metadata with an
    error; changed sidecars are backed up to .bak. Files Civitai does not know are reported
    as unidentified; files that cannot be read are skipped with the reason (exit code 1).

    \b
    Examples:
      sdlib identify ~/stable-diffusion-webui
      sdlib identify ~/ComfyUI/models/loras/add_detail.safetensors --json
      sdlib identify ~/models --refresh --rate 2
    """
    from sdlib.services.identify import identify_paths

    settings = _settings()
    wanted = _regular_or_dirs(paths)
    if paths and not wanted:
        raise SystemExit(1)  # each was reported; nothing left to look up
    with _context(settings) as ctx, _Progress() as progress:
        report = identify_paths(
            ctx, wanted, ui=ui, refresh=refresh, previews=not no_preview, jobs=jobs, rate=rate,
            on_event=lambda e: progress.update(e.stage, e.done, e.total, e.path),
            on_scan=progress.scan_event,
        )  # fmt: skip
    results, summary = list(report.results), report.summary()
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_identify(results, summary)
    code = max(report.exit_code, 1 if len(wanted) < len(paths) else 0)
    if code:
        raise SystemExit(code)


def _regular_or_dirs(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """PATHS without the files that are not regular (a FIFO, a device), each reported in
    one line: a scan would skip them without a word, and opening one would block."""
    from sdlib.errors import FormatError
    from sdlib.files.opening import check_regular

    out: list[Path] = []
    for path in paths:
        try:
            if not path.is_dir():
                check_regular(path)
        except FormatError as exc:
            echo_err(f"sdlib: error: {exc}")
            continue
        out.append(path)
    return tuple(out)


def _print_identify(results: list[Any], summary: dict[str, Any]) -> None:
    from rich.markup import escape

    out = console()
    if not out.is_terminal:
        _identify_records(out, results)
    style = {"identified": "green", "unidentified": "yellow", "error": "red", "skipped": "dim"}
    for r in results if out.is_terminal else ():
        name = escape(os.path.basename(r.path))
        state = f"[{style[r.state]}]{r.state}[/]"
        if r.state == "identified":
            via = f" by {r.matched_by}" if r.matched_by and r.matched_by != "SHA256" else ""
            if r.source and r.source != "civitai":  # a fallback (CivArchive): say so
                via += f"; source: {r.source}"
            out.print(f"{state} {name}: {escape(str(r.model_name))} / "
                      f"{escape(str(r.version_name))} (model {r.model_id}, "
                      f"version {r.version_id}){via}")  # fmt: skip
        elif r.state == "unidentified":
            out.print(f"{state} {name}: Civitai does not know this file")
        else:
            out.print(f"{state} {name}: {escape(r.error or '; '.join(r.notes))}")
        for side in r.sidecars:
            out.print(f"  + {os.path.basename(side)}", highlight=False, markup=False)
    out.print(
        f"{summary['identified']} identified, {summary['unidentified']} unidentified, "
        f"{plural(summary['error'], 'error')}, {summary['skipped']} skipped; "
        f"{plural(summary['requests'], 'request')}, "
        f"{plural(summary['sidecars_written'], 'sidecar')} written"
    )


def _identify_records(out: Any, results: list[Any]) -> None:
    """Through a pipe: one line per file, its full path, the sidecars written in one cell."""
    from sdlib.cli._table import Column, print_records

    rows = []
    for r in results:
        if r.state == "identified":
            detail = f"matched by {r.matched_by or 'SHA256'}"
            if r.source and r.source != "civitai":
                detail += f"; source: {r.source}"
        elif r.state == "unidentified":
            detail = "Civitai does not know this file"
        else:
            detail = r.error or "; ".join(r.notes)
        sidecars = ", ".join(os.path.basename(side) for side in r.sidecars)
        known = r.state == "identified"
        rows.append([r.state, r.path, str(r.model_name) if known else "",
                     str(r.version_name) if known else "", str(r.model_id) if known else "",
                     str(r.version_id) if known else "", detail, sidecars])  # fmt: skip
    columns = ("state", "file", "model", "version", "model_id", "version_id", "detail",
               "sidecars written")  # fmt: skip
    print_records(out, [Column(c) for c in columns], rows)


# --- updates -----------------------------------------------------------------------------------


@click.command("updates")
@ROOT
@ui_option
@click.option("--ttl", type=click.FloatRange(0, 24 * 365), default=24.0, show_default=True,
              help="Hours a cached Civitai answer stays good.")  # fmt: skip
@click.option("--refresh", is_flag=True, help="Ignore the cache and ask Civitai again.")
@json_option
@handle_errors
def updates_cmd(root: Path | None, ui: str | None, ttl: float, refresh: bool,
                as_json: bool) -> None:  # fmt: skip
    """List newer Civitai versions of the models in a webUI's folders.

    Only files `sdlib identify` recognised are checked. Models are asked for in batches and
    cached for --ttl hours; if some requests fail, the other results are still shown (with
    the last cached answer, marked stale, where there is one) and the exit code is 7.

    \b
    Examples:
      sdlib updates ~/stable-diffusion-webui
      sdlib updates ~/ComfyUI --ttl 1 --json
    """
    from sdlib.services.library import check_updates

    settings = _settings()
    root = _root(settings, root)
    layout = _layout(settings, root, ui)
    with _context(settings) as ctx, _Progress() as progress:
        result = _run_scan(ctx, root, layout, False, progress)
        report = check_updates(
            ctx, result.models, ttl=ttl * 3600, refresh=refresh,
            on_progress=lambda done, total: progress.update("models", done, total),
        )  # fmt: skip
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_updates(report, result)
    for note in report.notes:
        echo_err(f"sdlib: note: {note}")
    if report.errors:
        raise SystemExit(7)


def _print_updates(report: Any, scanned: Any) -> None:
    from rich.markup import escape

    out = console()
    unidentified = sum(1 for f in scanned.models if f.row.civitai_model_id is None)
    if not out.is_terminal:
        _updates_records(out, report)
    for r in report.files if out.is_terminal else ():
        name = escape(os.path.basename(r.path))
        stale = " [dim](cached answer)[/dim]" if r.stale else ""
        if r.status == "update-available":
            best = next((n for n in r.newer if n["same_base"]), r.newer[0])
            more = f" (+{len(r.newer) - 1} more)" if len(r.newer) > 1 else ""
            target = f"{escape(str(best['name']))} ({best['base_model']}, version "
            out.print(f"[green]update[/green] {name}: {escape(str(r.model_name))} "
                      f"{escape(str(r.version_name))} -> {target}{best['version_id']})"
                      f"{more}{stale}")  # fmt: skip
        elif r.status == "up-to-date":
            out.print(f"[dim]up to date[/dim] {name}: {escape(str(r.model_name))} "
                      f"{escape(str(r.version_name))}{stale}")  # fmt: skip
        elif r.status == "error":
            out.print(f"[red]error[/red] {name}: {escape(str(r.error))}")
        else:
            gone = "the model" if r.status == "model-gone" else "this version"
            out.print(f"[yellow]{r.status}[/yellow] {name}: {gone} is no longer on Civitai{stale}")
    s = report.summary()
    missing = plural(unidentified, "file")
    out.print(
        f"{s.get('update-available', 0)} with updates, {s.get('up-to-date', 0)} up to date, "
        f"{plural(len(report.errors), 'failed request')}; {plural(s['requests'], 'request')}, "
        f"{s['cache_hits']} from cache"
        + (f"; {missing} not identified (run sdlib identify)" if unidentified else "")
    )


def _updates_records(out: Any, report: Any) -> None:
    """Through a pipe: one line per file with its full path and the newest version's id."""
    from sdlib.cli._table import Column, print_records

    rows = []
    for r in report.files:
        newer = ["", "", ""]
        if r.status == "update-available":
            best = next((n for n in r.newer if n["same_base"]), r.newer[0])
            newer = [str(best["name"]), str(best["version_id"]), str(best["base_model"])]
        detail = str(r.error) if r.status == "error" else ("cached answer" if r.stale else "")
        rows.append([r.status, r.path, str(r.model_name or ""), str(r.version_name or ""),
                     *newer, detail])  # fmt: skip
    columns = ("status", "file", "model", "version", "newer", "newer_version_id", "newer_base",
               "detail")  # fmt: skip
    print_records(out, [Column(c) for c in columns], rows)
