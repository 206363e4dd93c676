"""``sdlib mirror push|ls|verify|pull``: the studio mirror (content-addressed model files on
S3-compatible storage or an HTTP server), so each file crosses the internet once."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, echo_err, emit_json, handle_errors, human_size, json_option
from sdlib.cli._library import context, settings

_SETUP = """
    The mirror is [mirror] url in the config (or SDLIB_MIRROR_URL): s3://BUCKET/PREFIX with
    endpoint_url for a non-AWS server (credentials from AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY or an AWS profile), or https://HOST/PREFIX/ for a read-only HTTP
    mirror."""


def _say(line: str) -> None:
    console().print(line, markup=False, highlight=False)


class _Bytes:
    """Progress for (stage, name, done, total) events on stderr: a rich bar on a terminal,
    a plain line at most twice a second through a pipe."""

    def __init__(self) -> None:
        from sdlib.cli._progress import StageProgress

        self.live = console(stderr=True).is_terminal
        self.bar = StageProgress("mirror")
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            if self.live:
                self.bar.update(_Staged(f"{event.stage} {event.name}", event.done, event.total))
                return
            now = time.monotonic()
            if now - self._last < 0.5 and event.done != event.total:
                return
            self._last = now
            of = f" of {human_size(event.total)}" if event.total else ""
            echo_err(f"{event.name}: {event.stage} {human_size(event.done)}{of}")

    def stop(self) -> None:
        self.bar.stop()


class _Staged:
    def __init__(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total


def _finish(outcomes: list[Any], as_json: bool, key: str) -> None:
    from sdlib.services.mirror import exit_code

    code = exit_code(outcomes)
    if as_json:
        emit_json({key: [o.to_dict() for o in outcomes], "ok": code == 0})
    if code:
        sys.exit(code)


@click.group("mirror", context_settings={"help_option_names": ["-h", "--help"]})
def mirror_group() -> None:
    """A studio mirror: model files stored once by SHA256 on S3-compatible storage.

    Downloads and installs try the mirror first when they know a file's SHA256.

    \b
    Examples:
      sdlib mirror push ~/sd/models/Lora/detail.safetensors
      sdlib mirror push --lock models.lock
      sdlib mirror ls --json
      sdlib mirror verify
      sdlib mirror pull --lock models.lock --to ./prefetch
    """


mirror_group.help = (mirror_group.help or "") + "\n" + _SETUP


@mirror_group.command("push")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--lock",
    "lock",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Push every file this lock file lists (each must match its SHA256).",
)
@click.option(
    "--library",
    "library",
    type=click.Path(path_type=Path, file_okay=False),
    help="Push every model file of this webUI folder.",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --lock: where the lock's relative paths are (default: the manifest's "
    "target root, else [library] root, else the lock's folder).",
)
@json_option
@handle_errors
def push_cmd(files: tuple[Path, ...], lock: Path | None, library: Path | None,
             root: Path | None, as_json: bool) -> None:  # fmt: skip
    """Upload files to the mirror, keyed by SHA256, with a JSON sidecar saying what each is.

    Each file is hashed (the hash cache saves a second read) and sent as a conditional
    create: when another machine got there first, that is success ("exists"). Big files go
    up in parts and appear only when complete. Needs an s3:// mirror and write access.

    \b
    Examples:
      sdlib mirror push detail.safetensors sdxl_vae.safetensors
      sdlib mirror push --lock models.lock
      sdlib mirror push --library ~/stable-diffusion-webui --json
    """
    from sdlib.errors import UsageError
    from sdlib.services import mirror

    if sum(map(bool, (files, lock, library))) != 1:
        raise UsageError("give FILE..., or --lock models.lock, or --library ROOT (one of them)")
    if root is not None and lock is None:
        raise UsageError("--root goes with --lock")
    progress = _Bytes()
    try:
        with context(settings()) as ctx:
            if lock is not None:
                outcomes = mirror.push_lock(ctx, lock, root=root, on_progress=progress)
            elif library is not None:
                outcomes = mirror.push_library(ctx, library, on_progress=progress)
            else:
                outcomes = mirror.push_files(ctx, files, on_progress=progress)
    finally:
        progress.stop()
    if not as_json:
        for o in outcomes:
            if o.status == "failed":
                echo_err(f"sdlib: {o.path}: {o.error}")
            else:
                sha = (o.sha256 or "-").upper()
                _say(f"{o.status:8} {sha}  {human_size(o.size or 0):>10}  {o.path}")
        done = [o for o in outcomes if o.status != "failed"]
        created = sum(o.status == "created" for o in outcomes)
        _say(f"{len(done)} of {len(outcomes)} file(s) in the mirror ({created} uploaded now)")
    _finish(outcomes, as_json, "files")


@mirror_group.command("ls")
@click.option("--no-meta", is_flag=True, help="List keys and sizes only (no sidecar reads).")
@json_option
@handle_errors
def ls_cmd(no_meta: bool, as_json: bool) -> None:
    """List the mirror's objects: SHA256, size, and the names, kind and base their sidecars
    record. Needs an s3:// mirror (a plain HTTP server cannot be listed).

    \b
    Examples:
      sdlib mirror ls
      sdlib mirror ls --json | jq '.objects[].names'
    """
    from sdlib.services import mirror

    with context(settings()) as ctx:
        objects = mirror.list_objects(ctx, with_meta=not no_meta)
        url = mirror.require_mirror(ctx).url
    if as_json:
        emit_json({"mirror": url, "objects": [o.to_dict() for o in objects],
                   "count": len(objects), "bytes": sum(o.size for o in objects)})  # fmt: skip
        return
    for o in objects:
        what = " ".join(x for x in (o.kind, o.base) if x and x != "unknown")
        name = o.names[0] if o.names else "-"
        _say(f"{o.sha256.upper()}  {human_size(o.size):>10}  {what or '-':14}  {name}")
    _say(f"{len(objects)} object(s), {human_size(sum(o.size for o in objects))} in {url}")


@mirror_group.command("verify")
@click.argument("sha256", nargs=-1)
@json_option
@handle_errors
def verify_cmd(sha256: tuple[str, ...], as_json: bool) -> None:
    """Re-hash mirror objects by streaming them (all of them, or the SHA256s given) and
    report any whose bytes are not what their key says. Exit 4 if any is bad, 5 if one
    asked for is missing.

    \b
    Examples:
      sdlib mirror verify
      sdlib mirror verify 5c2b...e1a0 --json
    """
    from sdlib.services import mirror

    progress = _Bytes()
    try:
        with context(settings()) as ctx:
            outcomes = mirror.verify_objects(ctx, sha256, on_progress=progress)
    finally:
        progress.stop()
    if not as_json:
        for o in outcomes:
            line = f"{o.status:7} {o.sha256.upper()}"
            if o.status == "bad":
                line += f"  holds {(o.actual_sha256 or '?').upper()} ({o.error})"
            elif o.error:
                line += f"  {o.error}"
            (_say if o.status == "ok" else echo_err)(line)
        bad = sum(o.status != "ok" for o in outcomes)
        _say(f"{len(outcomes) - bad} of {len(outcomes)} object(s) verified")
    _finish(outcomes, as_json, "objects")


@mirror_group.command("pull")
@click.option(
    "--lock",
    "lock",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The lock file whose files to fetch.",
)
@click.option(
    "--to",
    "to",
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder to put them in (default: the store, each in its kind's folder).",
)
@json_option
@handle_errors
def pull_cmd(lock: Path, to: Path | None, as_json: bool) -> None:
    """Prefetch a lock's files from the mirror, verified against the lock's SHA256 before
    each takes its name (a corrupt object is never placed); resumable.

    \b
    Examples:
      sdlib mirror pull --lock models.lock --to ./prefetch
      sdlib mirror pull --lock models.lock            # into the store ([store] path)
    """
    from sdlib.cli._progress import DownloadDisplay
    from sdlib.services import mirror

    with context(settings()) as ctx, DownloadDisplay(console(stderr=True)) as display:
        outcomes = mirror.pull_lock(ctx, lock, to=to, on_event=display.event)
    if not as_json:
        for o in outcomes:
            if o.status in ("failed", "missing"):
                echo_err(f"sdlib: {o.name} ({o.sha256[:12].upper()}): {o.error}")
            else:
                _say(f"{o.status:8} {o.path}")
        ok = sum(o.status in ("pulled", "present") for o in outcomes)
        _say(f"{ok} of {len(outcomes)} file(s) from the mirror")
    _finish(outcomes, as_json, "files")
