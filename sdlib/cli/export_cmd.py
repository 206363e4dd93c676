"""``sdlib export``: write a manifest and lock from an existing library."""

from __future__ import annotations

from pathlib import Path

import click

from sdlib.cli._common import console, emit_json, handle_errors, json_option


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
    from sdlib.bulk import write_lock
    from sdlib.cli.library_cmds import _context, _layout, _Progress, _root, _run_scan, _settings
    from sdlib.errors import UsageError
    from sdlib.export import build_export
    from sdlib.library.sidecars import write_bytes_atomic
    from sdlib.manifest import dump_manifest

    lock_path = output.with_suffix(".lock")
    if not overwrite and (output.exists() or lock_path.exists()):
        raise UsageError(f"{output} or {lock_path} exists; pass --overwrite to replace them")
    settings = _settings()
    root = _root(settings, root)
    layout = _layout(settings, root, ui)
    with _context(settings) as ctx, _Progress() as progress:
        scan = _run_scan(ctx, root, layout, False, progress)
        # Absolute: a relative root would be read relative to wherever the manifest is written.
        export = build_export(scan, ctx.hashes, settings.civitai.base_url, str(root.resolve()))
    header = (
        f"Exported by `sdlib export` from {root}.\n"
        "Rebuild with: sdlib install -f THIS_FILE --frozen [--root NEW_ROOT]"
    )
    write_bytes_atomic(output, dump_manifest(export.target, export.entries, header).encode())
    write_lock(lock_path, export.lock)
    if as_json:
        emit_json({**export.to_dict(), "manifest": str(output), "lock": str(lock_path)})
        return
    out = console()
    out.print(f"{len(export.entries)} models written to {output} (lock: {lock_path})")
    for path, reason in export.skipped:
        out.print(f"  skipped {path}: {reason}", markup=False)
