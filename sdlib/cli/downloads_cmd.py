"""``sdlib downloads``: list, finish or forget downloads that stopped before their end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sdlib.cli._common import console, emit_json, handle_errors, json_option

if TYPE_CHECKING:
    from sdlib.download import UnfinishedDownload


@click.command("downloads")
@click.option("--resume", "resume", is_flag=False, flag_value="all", default=None,
              metavar="[ID|all]",
              help="Finish this download (or all of them: the default).")  # fmt: skip
@click.option("--forget", "forget", metavar="ID",
              help="Drop this download and delete its part file.")  # fmt: skip
@click.option("--no-preview", is_flag=True, help="Do not save a preview image when resuming.")
@json_option
@handle_errors
def downloads_cmd(resume: str | None, forget: str | None, no_preview: bool, as_json: bool) -> None:
    """List downloads that stopped before their end; resume or forget them.

    A download that is interrupted (Ctrl-C, a dropped connection, a failed verification,
    a crash) keeps its bytes in NAME.part beside the file it becomes. This lists them: ID,
    what it was (REF), the bytes kept and why it stopped. --resume finishes them from the
    kept bytes, verified against the source's hashes as any download is; --forget drops
    one and deletes its part file.

    \b
    Examples:
      sdlib downloads
      sdlib downloads --json
      sdlib downloads --resume 3f2a9c1b
      sdlib downloads --resume
      sdlib downloads --forget 3f2a9c1b
    """
    from sdlib.config import load_settings
    from sdlib.errors import UsageError

    if resume is not None and forget is not None:
        raise UsageError("use either --resume or --forget, not both")
    settings = load_settings()
    if forget is not None:
        _forget(settings, forget, as_json)
    elif resume is not None:
        _resume(settings, resume, not no_preview, as_json)
    else:
        _list(settings, as_json)


def _list(settings: Any, as_json: bool) -> None:
    from sdlib.cli._common import cli_context
    from sdlib.services.downloads import unfinished_downloads

    with cli_context(settings) as ctx:
        entries = unfinished_downloads(ctx)
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    out = console()
    if not entries:
        out.print("no unfinished downloads", highlight=False)
        return
    for entry in entries:  # one record a line, never a table with wrapped cells
        out.print(describe(entry), highlight=False, markup=False, soft_wrap=True)
    if any(not e.running for e in entries):
        console(stderr=True).print(
            "resume with: sdlib downloads --resume ID (or all); forget one with --forget ID",
            highlight=False, markup=False,
        )  # fmt: skip


def describe(entry: UnfinishedDownload) -> str:
    """One line: ID, ref, bytes kept, why it stopped, the target, and the reason."""
    from sdlib.formatting import human_size

    if entry.part_exists:
        kept = human_size(entry.kept)
        kept += f" of {human_size(entry.size)}" if entry.size else " kept"
    else:
        kept = "part file gone"
    why = f"{entry.stopped_by}: {entry.reason}" if entry.reason else entry.stopped_by
    return f"{entry.id}  {entry.ref}  {kept}  {entry.target}  ({why})"


def _forget(settings: Any, wanted: str, as_json: bool) -> None:
    from sdlib.cli._common import cli_context
    from sdlib.services.downloads import forget_download

    with cli_context(settings) as ctx:
        entry = forget_download(ctx, wanted)
    if as_json:
        emit_json({**entry.to_dict(), "forgotten": True})
        return
    what = f"deleted {entry.part}" if entry.part_exists else "its part file was already gone"
    console().print(f"forgot {entry.id} {entry.file_name}; {what}", highlight=False, markup=False)


def _resume(settings: Any, wanted: str, previews: bool, as_json: bool) -> None:
    import threading

    from sdlib.cli._common import cli_context
    from sdlib.cli._progress import DownloadDisplay
    from sdlib.cli.download_cmd import print_results
    from sdlib.errors import SdlibError
    from sdlib.services.downloads import find_download, resume_download, unfinished_downloads

    results: list[Any] = []
    failures: list[tuple[UnfinishedDownload, SdlibError]] = []
    with cli_context(settings) as ctx, DownloadDisplay(console(stderr=True)) as display:
        if wanted.lower() == "all":
            entries = unfinished_downloads(ctx)
            for entry in [e for e in entries if e.running]:
                display.plain(f"{entry.id} {entry.file_name}: downloading in another process")
            entries = [e for e in entries if not e.running]
            if not entries:
                display.plain("no unfinished downloads to resume")
        else:
            entries = [find_download(ctx, wanted)]
        cancel = threading.Event()
        for entry in entries:
            try:
                result = resume_download(
                    ctx, entry, on_event=display.event, on_note=display.note, cancel=cancel,
                    previews=previews,
                )  # fmt: skip
            except SdlibError as exc:
                if exc.exit_code == 130:
                    raise  # Ctrl-C: stop here; what is left stays listed
                failures.append((entry, exc))
                display.plain(f"sdlib: error: {entry.id} {entry.file_name}: {exc}")
                continue
            results.append(result)
            for warning in result.warnings:
                display.plain(f"warning: {result.path.name}: {warning}")
    if as_json:
        emit_json([r.to_dict() for r in results] + [
            {"id": e.id, "ref": e.ref, "error": exc.message, "exit_code": exc.exit_code}
            for e, exc in failures
        ])  # fmt: skip
    else:
        print_results(results)
    if failures:
        raise SystemExit(max(exc.exit_code for _e, exc in failures))
