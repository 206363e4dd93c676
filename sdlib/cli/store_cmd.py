"""``sdlib store init|status``, ``sdlib link`` and ``sdlib unlink``: one model store that
several webUIs share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sdlib.cli._common import console, emit_json, handle_errors, human_size, json_option
from sdlib.cli._library import UI_HELP, Progress, context, settings
from sdlib.formatting import plural

_METHOD_HELP = (
    "auto (the default: ComfyUI's extra_model_paths.yaml, SD.Next's config.json, else a "
    "sub-folder link, a junction first on Windows), config, symlink, junction (Windows), "
    "hardlink (a snapshot of the store's files)."
)


def _say(line: str) -> None:
    console().print(line, markup=False, highlight=False)


def _rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` when inside it (``/`` separated), else as it is."""
    import os

    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


@click.group("store", context_settings={"help_option_names": ["-h", "--help"]})
def store_group() -> None:
    """One model store several webUIs share.

    \b
    Examples:
      sdlib store init ~/sd-models
      sdlib link ~/stable-diffusion-webui --ui a1111
      sdlib link ~/ComfyUI --ui comfyui
      sdlib store status --json
    """


@store_group.command("init")
@click.argument("directory", type=click.Path(path_type=Path, dir_okay=True, file_okay=False))
@click.option("--adopt", is_flag=True,
              help="Use an existing Stability Matrix Models folder (or its data folder) as the "
                   "store, as it is.")  # fmt: skip
@json_option
@handle_errors
def init_cmd(directory: Path, adopt: bool, as_json: bool) -> None:
    """Make DIRECTORY the model store and record it as [store] path in the config.

    The store holds one folder per kind, named as Stability Matrix names its shared Models
    folder (StableDiffusion, DiffusionModels, Lora, LyCORIS, Embeddings, Hypernetwork, VAE,
    ControlNet, ESRGAN, TextEncoders, ClipVision, IpAdapter). Missing ones are made; nothing
    in the folder is moved. With --adopt nothing is made at all.

    \b
    Examples:
      sdlib store init ~/sd-models
      sdlib store init "D:/StabilityMatrix/Data/Models" --adopt
    """
    from sdlib.services.store import init_store

    with context(settings()) as ctx:
        done = init_store(ctx, directory, adopt=adopt)
    if as_json:
        emit_json(done.to_dict())
        return
    how = "adopted" if done.adopted else f"ready ({len(done.made)} kind folders made)"
    _say(f"store {done.path}: {how}")
    if done.config:
        _say(f"[store] path saved in {done.config}")


@store_group.command("status")
@json_option
@handle_errors
def status_cmd(as_json: bool) -> None:
    """The store, what each kind folder holds, the webUIs it is linked into, and the space
    saved: each store file seen by N linked webUIs counts (N - 1) x its size (the copies
    they would otherwise each hold), plus the copies `sdlib dedupe --apply` hard-linked.

    \b
    Examples:
      sdlib store status
      sdlib store status --json
    """
    from sdlib.errors import UsageError
    from sdlib.services.store import store_status

    with context(settings()) as ctx:
        status = store_status(ctx)
    if status.path is None:
        raise UsageError("no store is set: run `sdlib store init DIR` first")
    if as_json:
        emit_json(status.to_dict())
        return
    missing = "" if status.exists else " (missing!)"
    _say(f"store {status.path}{missing}: {plural(status.files, 'file')}, "
         f"{human_size(status.bytes)}")  # fmt: skip
    for folder, files, size in status.folders:
        if files:
            _say(f"  {folder}: {plural(files, 'file')}, {human_size(size)}")
    if not status.links:
        _say("linked into no webUI yet: sdlib link ROOT --ui UI")
    for link in status.links:
        state = "" if link["intact"] else " (a link is missing or changed)"
        _say(f"linked: {link['root']} ({link['ui']}, {link['method']}){state}")
    _say(
        f"reclaimed: {human_size(status.reclaimed)} ({human_size(status.shared_bytes)} in "
        f"{plural(status.shared_files, 'store file')} more than one webUI sees, "
        f"{human_size(status.dedupe_bytes)} in {plural(status.dedupe_files, 'copy', 'copies')} "
        "`sdlib dedupe` "
        "hard-linked)"
    )


@click.command("link")
@click.argument("root", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--ui", default="auto", show_default=True, help=UI_HELP)
@click.option("--method", type=click.Choice(["auto", "config", "symlink", "junction", "hardlink"]),
              default="auto", show_default=True, help=_METHOD_HELP)  # fmt: skip
@click.option("--store", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The store (default: [store] path).")  # fmt: skip
@click.option("--move-existing", is_flag=True,
              help="Also move the webUI's own model files (with their sidecars) from the "
                   "folders now shown the store into it (journaled; `sdlib unlink` moves them "
                   "back). Run it again to finish a run that was interrupted.")  # fmt: skip
@json_option
@handle_errors
def link_cmd(root: Path, ui: str, method: str, store: Path | None, move_existing: bool,
             as_json: bool) -> None:  # fmt: skip
    """Make the webUI at ROOT see the model store.

    ComfyUI gets its own delimited section in extra_model_paths.yaml (your sections and
    comments stay as they are); A1111, Forge and reForge a link inside each model folder
    (models/Lora/sdlib-store -> STORE/Lora), never replacing the folder itself; SD.Next its
    config.json folder keys, or links when its own folders hold models. What the folders
    support is tried first (a test link made and removed). Every link and edit is recorded:
    `sdlib unlink ROOT` removes exactly those. Nothing of yours is moved unless you
    ask with --move-existing: then the webUI's own model files in those folders move into
    the store (a rename on one volume; across volumes a copy, verified by SHA256, then the
    original removed), journaled: if it is interrupted, run it again to finish, or
    `sdlib unlink ROOT` to put every file back where it was, byte for byte. Links are never
    moved or followed. A file whose name the store has with the same bytes is removed (the
    store's copy serves; unlink copies it back); with other bytes it is left where it is.

    \b
    Examples:
      sdlib link ~/stable-diffusion-webui --ui a1111
      sdlib link ~/stable-diffusion-webui --ui a1111 --move-existing
      sdlib link ~/ComfyUI --ui comfyui --json
      sdlib link D:/Forge --ui forge --method junction
    """
    from sdlib.services.store import link_store

    with context(settings()) as ctx, Progress(every=1.0) as progress:
        done = link_store(
            ctx, root, ui, method=method, store=store, move_existing=move_existing,
            on_progress=lambda n, total: progress.update("move", n, total),
        )  # fmt: skip
    failed = done.moves is not None and done.moves.failed
    if as_json:
        emit_json(done.to_dict())
        if failed:
            raise SystemExit(1)
        return
    for op, path, target in done.changes:
        if op in ("symlink", "junction"):
            _say(f"{op}  {_rel(path, done.root)} -> {target}")
        elif op in ("yaml", "json"):
            _say(f"edited  {_rel(path, done.root)} (sdlib's part only)")
    links = sum(1 for op, _, _ in done.changes if op == "hardlink")
    if links:
        _say(f"{links} hard links made")
    for note in done.notes:
        _say(f"note: {note}")
    if done.moves is not None:
        _print_moves(done.moves, "moved", "into the store", done.resumed)
    elif move_existing:
        _say("moved nothing: no model files of its own in the folders shown the store")
    _say(f"{done.root} ({done.ui}) now sees the store {done.store} ({done.method})")
    if failed:
        raise SystemExit(1)


def _print_moves(report: Any, word: str, where: str, resumed: bool = False,
                 details: bool = True) -> None:  # fmt: skip
    again = " (finishing the interrupted run)" if resumed else ""
    how = ("copied back from the store's copy" if word == "moved back" else
           "already there with the same bytes (the store's copy serves)")  # fmt: skip
    same = f", {report.same} of them {how}" if report.same else ""
    _say(f"{word} {plural(report.moved, 'file')} ({human_size(report.bytes)}) {where}{again}"
         f"{same}; journal {report.journal}")  # fmt: skip
    if not details:
        return  # said in the caller's own lines
    for path, why in report.skipped:
        _say(f"skipped {path}: {why}")
    for path, why in report.failed:
        _say(f"failed  {path}: {why}")


@click.command("unlink")
@click.argument("root", type=click.Path(path_type=Path, file_okay=False))
@json_option
@handle_errors
def unlink_cmd(root: Path, as_json: bool) -> None:
    """Remove the links and config edits `sdlib link` made in ROOT, and nothing else.

    A link is removed only while it still leads to the store (the link itself: nothing is
    ever deleted through it); a folder sdlib made only if it is empty; a config file gets
    back the exact text it had when it is otherwise unchanged, else loses sdlib's part only.
    Files `sdlib link --move-existing` moved into the store are moved back first, each to
    its original path with its bytes; the store's other files are never touched. If it is
    interrupted, run it again. Exit 5 when nothing is recorded for ROOT.

    \b
    Examples:
      sdlib unlink ~/stable-diffusion-webui
      sdlib unlink ~/ComfyUI --json
    """
    from sdlib.services.store import unlink_store

    with context(settings()) as ctx, Progress(every=1.0) as progress:
        done = unlink_store(
            ctx, root, on_progress=lambda n, total: progress.update("move back", n, total)
        )
    if as_json:
        emit_json(done.to_dict())
        if done.moved_back is not None and done.moved_back.failed:
            raise SystemExit(1)
        return
    if done.moved_back is not None:
        _print_moves(done.moved_back, "moved back", "from the store", details=False)
    for path in done.removed:
        _say(f"undone  {_rel(path, done.root)}")
    for path, why in done.kept:
        _say(f"left    {_rel(path, done.root)}: {why}")
    _say(f"{done.root} no longer sees the store ({plural(len(done.removed), 'change')} undone)")
    if done.moved_back is not None and done.moved_back.failed:
        raise SystemExit(1)
