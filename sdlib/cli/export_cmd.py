"""``sdlib export``: write a manifest and lock from an existing library."""

from __future__ import annotations

from pathlib import Path

import click

from sdlib.cli._common import console, emit_json, handle_errors, json_option
from sdlib.formatting import plural


@click.command("export")
@click.argument("root", required=False,
                type=click.Path(path_type=Path, file_okay=False, exists=True))  # fmt: skip
@click.option("--ui", help="Which webUI: a1111, forge, reforge, sdnext, comfyui, ... or auto.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("models.toml"), show_default=True,
              help="Manifest to write; the lock goes beside it (.lock).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing manifest and lock.")
@json_option
@handle_errors
def export_cmd(root: Path | None, ui: str | None, output: Path, overwrite: bool,
               as_json: bool) -> None:  # fmt: skip
    """Write a models.toml (and models.lock) listing the identified models under ROOT.

    Each entry pins the exact Civitai file and keeps the file's name and folder, so
    `sdlib install -f models.toml --frozen --root NEW_ROOT` rebuilds the library elsewhere.
    Run `sdlib identify ROOT` first: files Civitai does not know are listed as skipped.

    \b
    Examples:
      sdlib identify ~/stable-diffusion-webui && sdlib export ~/stable-diffusion-webui
      sdlib export ~/ComfyUI --ui comfyui -o comfy-models.toml --json
    """
    from sdlib.cli._library import Progress, context, settings
    from sdlib.services.manifests import check_export_target, export_library, write_export

    check_export_target(output, overwrite=overwrite)
    config = settings()
    with context(config) as ctx, Progress() as progress:
        export = export_library(ctx, root, ui, on_progress=progress.scan_event)
    lock_path = write_export(export, output, overwrite=overwrite)
    if as_json:
        emit_json({**export.to_dict(), "manifest": str(output), "lock": str(lock_path)})
        return
    out = console()
    out.print(f"{plural(len(export.entries), 'model')} written to {output} (lock: {lock_path})")
    for path, reason in export.skipped:
        out.print(f"  skipped {path}: {reason}", markup=False)
