"""``sdlib install -f models.toml``: bulk installs from a manifest, with a lock file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, emit_json, handle_errors, human_size, json_option
from sdlib.cli._refresh import no_refresh_option, refresh_after


@click.command("install")
@click.option("-f", "--file", "manifest_path", required=True, help="The models.toml manifest.",
              type=click.Path(path_type=Path, dir_okay=False))  # fmt: skip
@click.option("--lock", "lock_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Lock file (default: the manifest's name with .lock).")  # fmt: skip
@click.option("--jobs", type=click.IntRange(1, 8), default=3, show_default=True,
              help="Entries resolved and downloaded at the same time.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print the plan; download nothing.")
@click.option("--frozen", is_flag=True,
              help="Install exactly the lock; fail where the manifest differs.")  # fmt: skip
@click.option("--ui", help="Override [target] ui (a1111, forge, comfyui, ...).")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False),
              help="Override [target] root.")  # fmt: skip
@click.option("--no-preview", is_flag=True, help="Do not save preview images.")
@click.option("--accept-mismatch", is_flag=True,
              help="Keep files whose size or SHA256 differs from what Civitai publishes "
              "(marked unverified).")  # fmt: skip
@no_refresh_option
@json_option
@handle_errors
def install_cmd(
    manifest_path: Path, lock_path: Path | None, jobs: int, dry_run: bool, frozen: bool,
    ui: str | None, root: Path | None, no_preview: bool, accept_mismatch: bool,
    no_refresh: bool, as_json: bool,
) -> None:  # fmt: skip
    """Install every model a manifest lists, and record what was installed in a lock.

    A second run with nothing changed downloads nothing and makes no network request.
    --frozen rebuilds exactly the locked files and fails if anything drifted. One failing
    entry does not stop the others; the exit code is non-zero if any failed. Running
    webUIs set up as [webui.NAME] are asked to rescan what changed (not with --no-refresh).

    \b
    Examples:
      sdlib install -f models.toml --dry-run
      sdlib install -f models.toml --ui a1111 --root ~/stable-diffusion-webui
      sdlib install -f models.toml --frozen --json
    """
    from sdlib.cli._progress import installer_session
    from sdlib.config import load_settings
    from sdlib.services import Context
    from sdlib.services.manifests import install_manifest, load_manifest

    plan = load_manifest(manifest_path, lock_path=lock_path, root=root, ui=ui, frozen=frozen)
    lock_path = plan.lock_path
    settings = load_settings()
    overrides = {"accept_mismatch": True} if accept_mismatch else {}
    with (
        Context(settings) as ctx,
        installer_session(settings, plan.destination, overrides, not no_preview) as (
            installer,
            display,
        ),
    ):
        from rich.markup import escape

        def on_result(r: Any) -> None:
            if r.status == "failed":
                text = escape(f"line {r.line}: {r.ref}: {r.message}")
                display.note(f"sdlib: [red]error[/red]: {text}")

        report = install_manifest(ctx, plan, installer=installer, jobs=jobs, frozen=frozen,
                                  dry_run=dry_run, on_result=on_result)  # fmt: skip
    if as_json:
        emit_json({**report.to_dict(), "lock": None if dry_run else str(lock_path)})
    else:
        _print(report, dry_run, lock_path)
    if not no_refresh and not dry_run:  # running webUIs rescan the lists that changed
        placed = [(r.path, None) for r in report.results if r.status == "installed" and r.path]
        refresh_after(settings, plan.destination.layout, plan.destination.root, placed)
    if report.exit_code:
        raise SystemExit(report.exit_code)


def came_from_words(came_from: str | None, published: str | None) -> str:
    """Where the bytes came from, for a result line: the mirror or a cache (upstream, the
    usual case, goes unsaid unless the file was published to the mirror)."""
    if came_from in ("mirror", "cache"):
        return f"  (from {came_from})"
    if published:
        return f"  (from upstream; mirror: {published})"
    return ""


def _print(report: Any, dry_run: bool, lock_path: Path) -> None:
    out = console()
    colours = {"up-to-date": "dim", "installed": "green", "already-present": "green",
               "would-install": "cyan", "failed": "red"}  # fmt: skip
    total = 0
    for r in report.results:
        colour = colours.get(r.status, "white")
        size = f"  {human_size(r.size)}" if r.size else ""
        where = f"  -> {r.path}" if r.path else ""
        where += came_from_words(r.came_from, r.published)
        out.print(f"[{colour}]{r.status:<15}[/{colour}] {r.ref}{size}{where}")
        if r.status == "failed":
            out.print(f"                {r.message}", markup=False)
        for warning in r.warnings:
            out.print(f"                [yellow]warning[/yellow]: {warning}")
        if r.status == "would-install" and r.size:
            total += r.size
    summary = report.to_dict()["summary"]
    line = ", ".join(f"{n} {status}" for status, n in sorted(summary.items()))
    if dry_run:
        out.print(f"plan: {line}; {human_size(total)} to download")
    else:
        out.print(f"{line}; lock written to {lock_path}")
