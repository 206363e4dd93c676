"""``sdlib trash``: move model files and their sidecars to the trash."""

from __future__ import annotations

from pathlib import Path

import click

from sdlib.cli._common import console, emit_json, handle_errors, json_option
from sdlib.cli._library import UI_HELP, context, settings


@click.command("trash")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=False))  # fmt: skip
@click.option("--root", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The webUI folder the files are in (default: [library] root).")  # fmt: skip
@click.option("--ui", help=UI_HELP)
@json_option
@handle_errors
def trash_cmd(paths: tuple[Path, ...], root: Path | None, ui: str | None, as_json: bool) -> None:
    """Move model files, each with its sidecars, to the trash.

    The system trash (Recycle Bin, macOS Trash, freedesktop trash) takes them; where it
    cannot, they go to ROOT/.sdlib-trash/<time>/ with a restore.json saying where each
    came from. Only files inside the webUI folder (and the folders its configuration
    reads elsewhere) are moved: a path outside it refuses the whole command (exit 2)
    before anything moves. A link is trashed as the link, never what it points to.

    \b
    Examples:
      sdlib trash ~/stable-diffusion-webui/models/Lora/old_style.safetensors
      sdlib trash models/Lora/a.safetensors models/Lora/b.safetensors --root . --json
    """
    from sdlib.services.trash import trash_paths

    with context(settings()) as ctx:
        outcome = trash_paths(ctx, paths, root=root, ui=ui)
    if as_json:
        emit_json(outcome.to_dict())
        return
    out = console()
    for path in outcome.moved:
        out.print(f"trashed {path}", markup=False, highlight=False)
    where = "the system trash" if outcome.folder is None else outcome.folder
    if outcome.folder is not None and outcome.system:
        where = f"the system trash and {outcome.folder}"
    n = len(outcome.moved)
    out.print(f"{n} file{'' if n == 1 else 's'} moved to {where}", markup=False,
              highlight=False)  # fmt: skip
