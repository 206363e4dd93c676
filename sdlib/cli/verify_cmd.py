"""``sdlib verify``: read model files again and compare them with every SHA256 known for them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, echo_err, emit_json, handle_errors, json_option
from sdlib.cli._library import UI_HELP, context, settings


@click.command("verify")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("--root", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Without PATH: the webUI folder (default: [library] root).")  # fmt: skip
@click.option("--ui", help=UI_HELP)
@json_option
@handle_errors
def verify_cmd(paths: tuple[Path, ...], root: Path | None, ui: str | None, as_json: bool) -> None:
    """Re-hash model files and check them against their recorded or published SHA256.

    PATH is a model file or a folder (every model in it); without PATH, every model of
    the webUI folder. Each file is read whole again (nothing cached is trusted: bytes can
    rot without the size or time changing) and compared with Civitai's published SHA256
    from its .civitai.info sidecar, the SHA256 the library index recorded at an earlier
    scan, and the hash cache's. Files with none of these are listed as "no reference".
    Exit code 4 when a file does not match (each is named), 1 when one cannot be read.

    \b
    Examples:
      sdlib verify ~/stable-diffusion-webui/models/Lora/add_detail.safetensors
      sdlib verify --root ~/ComfyUI --ui comfyui --json
    """
    from sdlib.errors import UsageError
    from sdlib.services.verify import verify_paths

    if paths and root is not None:
        raise UsageError("give PATHs or --root, not both")
    with context(settings()) as ctx, _Display() as display:
        report = verify_paths(ctx, paths, root=root, ui=ui, on_progress=display.update)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print(report)
    bad = [f.path for f in report.files if f.state == "mismatch"]
    if bad:
        names = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        echo_err(f"sdlib: error: SHA256 does not match: {names}")
    for f in report.files:
        if f.state == "error":
            echo_err(f"sdlib: error: {f.path}: {f.error}")
    if report.exit_code:
        raise SystemExit(report.exit_code)


def _print(report: Any) -> None:
    from sdlib.cli._table import Column, print_records
    from sdlib.services.verify import SOURCES

    out = console()
    style = {"ok": "green", "mismatch": "bold red", "no-reference": "yellow", "error": "red"}
    rows = []
    for f in report.files:
        if f.state == "mismatch":
            why = "differs from " + "; ".join(SOURCES[s] for s in f.mismatched)
        elif f.state == "ok":
            why = "matches " + "; ".join(SOURCES[s] for s, _ in f.references)
        elif f.state == "no-reference":
            why = "no reference: no .civitai.info, index or cache SHA256 to compare with"
        else:
            why = f.error or ""
        sha = f.sha256 or ""
        if out.is_terminal and sha:
            sha = sha[:12] + "…"  # room for the path; whole through a pipe and in --json
        rows.append([[(f.state, style[f.state])], sha, f.path, why])
    if rows:
        columns = [Column("state", no_wrap=True), Column("sha256", no_wrap=True),
                   Column("file"), Column("why")]  # fmt: skip
        print_records(out, columns, rows)
    counts = {s: report.count(s) for s in ("ok", "mismatch", "no-reference", "error")}
    out.print(f"{counts['ok']} ok, {counts['mismatch']} mismatched, "
              f"{counts['no-reference']} with no reference, {counts['error']} unreadable",
              markup=False, highlight=False)  # fmt: skip


class _Display:
    """Per-file progress on stderr: a live bar on a terminal; otherwise a line at most every
    5 s once verifying has taken that long (never anything on stdout)."""

    def __init__(self) -> None:
        self.err = console(stderr=True)
        self.bar: Any = None
        self.task: Any = None
        self.last = time.monotonic()

    def __enter__(self) -> _Display:
        if self.err.is_terminal:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                DownloadColumn(binary_units=True), console=self.err,
                                transient=True)  # fmt: skip
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, event: Any) -> None:
        label = f"verify {event.index}/{event.total} {os.path.basename(event.path)}"
        if self.bar is None:
            now = time.monotonic()
            if now - self.last >= 5:
                self.last = now
                echo_err(f"sdlib: {label}: {event.done >> 20} of {event.size >> 20} MiB")
            return
        if self.task is None:
            self.task = self.bar.add_task(label, total=event.size)
        self.bar.update(self.task, completed=event.done, total=event.size, description=label)
