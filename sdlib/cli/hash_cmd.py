"""``sdlib hash``: every Civitai hash of a file from one read, cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, echo_err, emit_json, handle_errors, json_option

#: Files at least this large get a progress bar (on a terminal).
PROGRESS_MIN = 64 << 20


@click.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-cache", is_flag=True, help="Read the files even if cached hashes exist.")
@json_option
@handle_errors
def hash_cmd(files: tuple[Path, ...], no_cache: bool, as_json: bool) -> None:
    """Compute SHA256, AutoV1, AutoV2, AutoV3, CRC32 and BLAKE3 of FILES in one read.

    Hashes follow Civitai's conventions (uppercase hex; AutoV1 only for files of 2 MiB or
    more; AutoV3 only for safetensors). Results are cached by device, inode, size and
    modification time, so an unchanged file is never read twice. A file that cannot be
    read gets one error line, the others are still hashed, and the exit code is 1.

    \b
    Examples:
      sdlib hash model.safetensors
      sdlib hash models/Lora/*.safetensors --json
    """
    from sdlib.errors import SdlibError
    from sdlib.services import Context
    from sdlib.services.files import hash_path

    err = console(stderr=True)
    results: list[dict[str, Any]] = []
    failures: list[SdlibError] = []
    with Context() as ctx:
        for path in files:
            try:
                outcome = _hash_one(None if no_cache else ctx, path, err, hash_path)
            except SdlibError as exc:  # this file fails; the others are still hashed
                failures.append(exc)
                echo_err(f"sdlib: error: {exc}")
                continue
            except Exception as exc:
                from sdlib.cli._crash import report_crash

                failures.append(SdlibError(str(exc)))
                echo_err(report_crash(exc).replace("sdlib: ", f"sdlib: {path}: ", 1))
                continue
            results.append({"path": str(path), **outcome.hashes.to_dict(),
                            "cached": outcome.cached})  # fmt: skip
    if as_json:
        emit_json(results)
    else:
        _print(results)
    if failures:
        raise SystemExit(max(f.exit_code for f in failures))


def _hash_one(ctx: Any, path: Path, err: Any, hash_path: Any) -> Any:
    """``hash_path`` with a progress bar on a terminal for a file worth one."""
    if not err.is_terminal:
        return hash_path(ctx, path)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
    )  # fmt: skip

    from sdlib.cli._progress import _speed_column

    with Progress(
        "[progress.description]{task.description}", BarColumn(),
        DownloadColumn(binary_units=True), _speed_column(), TimeRemainingColumn(),
        console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(path.name, total=None, visible=False)

        def start(size: int) -> None:
            bar.update(task, total=size, visible=size >= PROGRESS_MIN)

        return hash_path(ctx, path, on_start=start, on_bytes=lambda n: bar.advance(task, n))


def _print(results: list[dict[str, Any]]) -> None:
    from rich.markup import escape  # a path may hold [brackets]

    out = console()
    for i, r in enumerate(results):
        if i:
            out.print()
        note = "  [dim](cached)[/dim]" if r["cached"] else ""
        out.print(f"[bold]{escape(r['path'])}[/bold]  {r['size']:,} bytes{note}")
        for name, label in (
            ("sha256", "SHA256"), ("autov1", "AutoV1"), ("autov2", "AutoV2"),
            ("autov3", "AutoV3"), ("crc32", "CRC32"), ("blake3", "BLAKE3"),
        ):  # fmt: skip
            value = r[name] if r[name] is not None else "[dim]-[/dim]"
            out.print(f"  {label:<7} {value}")
