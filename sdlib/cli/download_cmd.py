"""``sdlib download``: fetch models from Civitai into a webUI's folders, verified."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, emit_json, handle_errors, human_size, json_option
from sdlib.cli._refresh import no_refresh_option, refresh_after

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str | None) -> int:
    """``500K``, ``2M``, ``1.5MB/s`` -> bytes per second (0: unlimited)."""
    if not text:
        return 0
    m = _RATE.match(text)
    if not m:
        raise click.BadParameter(
            f"{text!r} is not a rate like 500K or 2M", param_hint="--limit-rate"
        )
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


@click.command("download")
@click.argument("refs", nargs=-1, required=True)
@click.option("--type", "file_type", help="Civitai file type: Model, Pruned Model, VAE...")
@click.option("--format", "file_format", help="SafeTensor, PickleTensor, GGUF...")
@click.option("--fp", type=click.Choice(["fp16", "fp32", "bf16", "fp8"]), help="Precision.")
@click.option("--size", "file_size", type=click.Choice(["pruned", "full"]), help="Pruned or full.")
@click.option("--file-id", type=int, help="Exactly this file of the version.")
@click.option("--to", "to_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Put files in this folder, whatever their kind.")  # fmt: skip
@click.option("--ui", help="Place by kind for this webUI: a1111, forge, reforge, sdnext, "
              "comfyui, stabilitymatrix, or auto.")  # fmt: skip
@click.option("--root", type=click.Path(path_type=Path, file_okay=False),
              help="The webUI's folder (default: [library] root in the config).")  # fmt: skip
@click.option("--connections", type=click.IntRange(1, 16),
              help="Exactly N connections a file (default: 1, more while they pay).")  # fmt: skip
@click.option("--limit-rate", help="Cap the total speed per file, e.g. 2M (bytes/s).")
@click.option("--jobs", type=click.IntRange(1, 8), default=3, show_default=True,
              help="Files downloaded at the same time.")  # fmt: skip
@click.option("--no-preview", is_flag=True, help="Do not save a preview image.")
@click.option("--accept-mismatch", is_flag=True,
              help="Keep a file whose size or SHA256 differs from what Civitai publishes "
              "(marked unverified).")  # fmt: skip
@no_refresh_option
@json_option
@handle_errors
def download_cmd(
    refs: tuple[str, ...], file_type: str | None, file_format: str | None, fp: str | None,
    file_size: str | None, file_id: int | None, to_dir: Path | None, ui: str | None,
    root: Path | None, connections: int | None, limit_rate: str | None, jobs: int,
    no_preview: bool, accept_mismatch: bool, no_refresh: bool, as_json: bool,
) -> None:  # fmt: skip
    """Download models by REF into the right folder, verified against Civitai's hashes.

    REF is a model page URL, a download URL, an id (4384), id@version (4384@128713) or an
    AIR (urn:air:sd1:checkpoint:civitai:4384@128713). The version's primary file is picked
    unless --type/--format/--fp/--size/--file-id say otherwise. An interrupted download
    keeps its bytes: run the same command again, or see `sdlib downloads` (--resume).
    Running webUIs set up as [webui.NAME] in the config are then asked to rescan the
    lists that changed (one line each on stderr; --no-refresh skips it).

    \b
    Examples:
      sdlib download 4384 --ui a1111 --root ~/stable-diffusion-webui
      sdlib download 4384@128713 --fp fp16 --size pruned --to ./models
      sdlib download urn:air:sd1:lora:civitai:1001@1101 --ui comfyui --root ~/ComfyUI --json
    """
    from sdlib.config import load_settings
    from sdlib.errors import UsageError
    from sdlib.install import FileChoice

    settings = load_settings()
    dest = _destination(settings, to_dir, ui, root)
    overrides: dict[str, Any] = {}
    if connections is not None:  # exactly N, instead of one and more while they pay
        overrides["connections"] = connections
        overrides["adaptive"] = False
    if limit_rate is not None:
        overrides["limit_rate"] = parse_rate(limit_rate)
    if accept_mismatch:
        overrides["accept_mismatch"] = True
    if file_id is not None and len(refs) > 1:
        raise UsageError("--file-id names one file; give a single REF with it")
    choice = FileChoice(file_type, file_format, file_size, fp, file_id)
    results, failures = _run(settings, dest, refs, choice, overrides, jobs, not no_preview)
    if as_json:
        emit_json([r.to_dict() for r in results] + [
            {"ref": ref, "error": exc.message, "exit_code": exc.exit_code}
            for ref, exc in failures
        ])  # fmt: skip
    else:
        print_results(results)
    if not no_refresh:  # running webUIs ([webui.NAME]) rescan the lists that changed
        placed = [(r.path, r.kind) for r in results if r.status != "already-present"]
        refresh_after(settings, dest.layout, dest.root, placed)
    if failures:
        raise SystemExit(max(exc.exit_code for _ref, exc in failures))


def _destination(settings: Any, to_dir: Path | None, ui: str | None, root: Path | None) -> Any:
    from sdlib.errors import UsageError
    from sdlib.services import Context

    if to_dir is None and root is None and not settings.library.root:
        raise UsageError(
            "say where the files go: --to DIR, or --ui NAME --root PATH "
            "(or set [library] root in the config)"
        )
    with Context(settings) as ctx:  # builds nothing but the destination
        return ctx.destination(root, ui, folder=to_dir, create=True)


def _run(
    settings: Any, dest: Any, refs: tuple[str, ...], choice: Any, overrides: dict[str, Any],
    jobs: int, previews: bool,
) -> tuple[list[Any], list[tuple[str, Any]]]:  # fmt: skip
    from sdlib.cli._progress import installer_session
    from sdlib.errors import SdlibError
    from sdlib.install import run_all

    results: list[Any] = []
    failures: list[tuple[str, SdlibError]] = []
    with installer_session(settings, dest, overrides, previews) as (installer, display):
        from rich.markup import escape

        def one(ref: str) -> None:
            try:
                result = installer.install(ref, choice)
            except SdlibError as exc:
                failures.append((ref, exc))
                # A message that already starts with the reference is not prefixed again.
                said = str(exc) if str(exc).startswith(f"{ref} ") else f"{ref}: {exc}"
                display.note(f"sdlib: [red]error[/red]: {escape(said)}")
                return
            results.append(result)
            for warning in result.warnings:
                said = escape(f"{result.path.name}: {warning}")
                display.note(f"[yellow]warning[/yellow]: {said}")

        run_all(installer, one, refs, jobs)
    order = {ref: i for i, ref in enumerate(refs)}
    results.sort(key=lambda r: order.get(r.ref, 0))
    return results, failures


def print_results(results: list[Any]) -> None:
    """What was placed where, and whether it is verified (``download``, ``downloads``)."""
    out = console()
    for r in results:
        from sdlib.cli.install_cmd import came_from_words

        state = "already present" if r.status == "already-present" else "downloaded"
        where = came_from_words(getattr(r, "came_from", None), getattr(r, "published", None))
        out.print(f"[green]{state}[/green] {r.path}  ({human_size(r.size)}, {r.kind}, "
                  f"{r.base}){where}")  # fmt: skip
        state = "verified" if r.verified else "[yellow]unverified[/yellow]"
        if r.verified and r.verification is not None and r.verification.decided_by != "SHA256":
            state = f"verified by {r.verification.decided_by}"  # none published
        out.print(f"  SHA256 {r.sha256} {state}", highlight=False)
        for side in r.sidecars:
            out.print(f"  + {Path(side).name}", highlight=False)
