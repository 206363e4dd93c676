"""One model store several webUIs share (``sdlib store init|status``, ``sdlib link``,
``sdlib unlink``; the Python API ``sdlib.init_store`` ... ``sdlib.store_status``).

``link_store`` shows the store to one webUI as reference shared-store.md's strategy matrix
says for that UI and filesystem, after probing what the webUI's folders support; every link
and config edit is recorded (before it is made) so that ``unlink_store`` removes exactly
those and nothing else. No file of the user's, and nothing in the store, is moved or deleted,
unless ``move_existing`` asks to move the webUI's own models into the store
(:mod:`sdlib.services.store_move`, journaled; unlinking moves them back).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.config import Settings
    from sdlib.library.placement import Destination
    from sdlib.services._context import Context
    from sdlib.services.store_move import MoveReport, OnMove
    from sdlib.store.plan import Plan
    from sdlib.store.record import LinkRecord

# Re-exported: `store status` lives in its own module.
from sdlib.services.store_status import StoreStatus, store_status

__all__ = [
    "LinkOutcome",
    "StoreInit",
    "StoreStatus",
    "UnlinkOutcome",
    "init_store",
    "link_store",
    "store_folders",
    "store_status",
    "unlink_store",
    "with_store",
]


@dataclass(frozen=True)
class StoreInit:
    path: str
    adopted: bool
    #: Kind folders made (none when adopting).
    made: tuple[str, ...]
    #: The config file ``[store] path`` was written to (None: not saved).
    config: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "adopted": self.adopted, "made": list(self.made),
                "config": self.config}  # fmt: skip


@dataclass(frozen=True)
class LinkOutcome:
    root: str
    ui: str
    store: str
    method: str
    #: (op, path, target) of every change made: mkdir, symlink, junction, hardlink (target:
    #: what it leads to), yaml, json (target: "").
    changes: tuple[tuple[str, str, str], ...]
    notes: tuple[str, ...]
    #: ``--move-existing``: the webUI's own files moved into the store (None: not asked, or
    #: nothing to move); ``resumed``: this run finished an interrupted one.
    moves: MoveReport | None = None
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "ui": self.ui, "store": self.store, "method": self.method,
            "changes": [{"op": op, "path": p, "target": t or None} for op, p, t in self.changes],
            "notes": list(self.notes), "resumed": self.resumed,
            "moved": self.moves.to_dict() if self.moves is not None else None,
        }  # fmt: skip


@dataclass(frozen=True)
class UnlinkOutcome:
    root: str
    ui: str
    method: str
    removed: tuple[str, ...]
    #: (path, why it was left as it is)
    kept: tuple[tuple[str, str], ...]
    #: The files ``--move-existing`` had moved into the store, moved back (None: none were).
    moved_back: MoveReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "ui": self.ui, "method": self.method,
            "removed": list(self.removed),
            "kept": [{"path": p, "reason": r} for p, r in self.kept],
            "moved_back": self.moved_back.to_dict() if self.moved_back is not None else None,
        }  # fmt: skip


def _record_path(ctx: Context) -> Path:
    from sdlib.store.record import FILE_NAME

    return Path(ctx.settings.data_dir) / FILE_NAME


def init_store(
    ctx: Context, path: str | os.PathLike[str], *, adopt: bool = False, save: bool = True
) -> StoreInit:
    """Make a store at ``path`` (its kind folders), or with ``adopt`` take a Stability Matrix
    ``Models`` folder as it is; with ``save``, record it as ``[store] path`` in the config
    (comments and other settings kept)."""
    from sdlib.store.tree import init_tree

    store, made = init_tree(Path(path), adopt)
    config = None
    if save:
        from sdlib.config import default_config_path
        from sdlib.config_edit import save_values

        target = ctx.settings.config_path or default_config_path()
        save_values(target, {"store": {"path": str(store)}})
        config = str(target)
    return StoreInit(str(store), adopt, made, config)


def _store(ctx: Context, store: str | os.PathLike[str] | None) -> Path:
    from sdlib.errors import UsageError

    if store is None:
        store = ctx.settings.store.path
        if not store:
            raise UsageError("no store is set: run `sdlib store init DIR` first")
    path = Path(os.path.abspath(Path(store).expanduser()))
    if not path.is_dir():
        raise UsageError(f"the store {path} is not a folder")
    return path


def _find(records: list[LinkRecord], root: str) -> LinkRecord | None:
    from sdlib.store.record import same_path

    real = os.path.realpath(root)
    for record in records:
        if same_path(record.root, root) or same_path(os.path.realpath(record.root), real):
            return record
    return None


def link_store(
    ctx: Context,
    root: str | os.PathLike[str],
    ui: str = "auto",
    *,
    method: str = "auto",
    store: str | os.PathLike[str] | None = None,
    move_existing: bool = False,
    on_progress: OnMove | None = None,
) -> LinkOutcome:
    """Make the webUI at ``root`` see the store (``store``, default ``[store] path``).

    ``move_existing``: also move the webUI's own model files (with their sidecars) from the
    folders now shown the store into it, journaled (``on_progress(done, total)``); a run
    killed half-way is finished by calling this again, and ``unlink_store`` moves them back.
    Without it nothing of the user's is moved.

    UsageError for a UI or method that cannot be used, a root already linked, a store inside
    the root; LibraryError when the filesystem takes no link of the kind needed; ConfigError
    when a config file sdlib would edit cannot be read safely.
    """
    from sdlib.errors import UsageError
    from sdlib.library.layouts import resolve_layout
    from sdlib.library.wall import real, within
    from sdlib.store.record import locked
    from sdlib.store.tree import present

    store_path = _store(ctx, store)
    root_path = Path(os.path.abspath(Path(root).expanduser()))
    if not root_path.is_dir():
        raise UsageError(f"the webUI folder {root_path} is not a folder")
    ui_name = resolve_layout(ui, root_path).name
    root_s, store_s = str(root_path), str(store_path)
    if within(real(store_s), real(root_s)) or within(real(root_s), real(store_s)):
        raise UsageError(f"the store {store_s} and the webUI folder {root_s} overlap: not linked")
    folders = present(store_path)
    if not folders:
        raise UsageError(f"the store {store_s} has no kind folders: run `sdlib store init`")
    with locked(_record_path(ctx)):
        return _link_locked(ctx, root_s, ui_name, store_s, folders, method, move_existing,
                            on_progress)  # fmt: skip


def _link_locked(
    ctx: Context, root_s: str, ui_name: str, store_s: str, folders: tuple[str, ...], method: str,
    moving: bool, on_progress: OnMove | None,
) -> LinkOutcome:  # fmt: skip
    from sdlib.errors import SdlibError, UsageError
    from sdlib.services import store_move
    from sdlib.store.apply import do_actions, finish_actions
    from sdlib.store.record import LinkRecord, load_records, save_records

    records = load_records(_record_path(ctx))
    old = _find(records, root_s)
    if old is not None and moving and old.moves and store_move.interrupted(old.moves):
        finish_actions(old.actions)  # a run killed half-way: finish it
        finished = store_move.run_moves(ctx, old.moves, on_progress)
        changes = tuple((a.op, a.path, a.target) for a in old.actions)
        return LinkOutcome(old.root, old.ui, old.store, old.method, changes, old.notes,
                           finished, resumed=True)  # fmt: skip
    if old is not None:
        raise UsageError(
            f"{root_s} is already linked to {old.store} ({old.method}): `sdlib unlink` it first"
        )
    plan = _plan(ui_name, root_s, store_s, folders, method, moving)
    if moving and plan.method == "hardlink":
        raise UsageError("--move-existing needs a folder link or a config edit: hard links "
                         "are a snapshot of the store (choose another --method)")  # fmt: skip
    moves = store_move.plan_moves(ctx, plan, root_s, store_s, folders) if moving else None
    journal = store_move.start(ctx, moves) if moves is not None and moves.ops else None
    notes = (*plan.notes, *(moves.notes if moves is not None else ()))
    record = LinkRecord(root_s, ui_name, store_s, plan.method,
                        time.strftime("%Y-%m-%dT%H:%M:%S%z"), plan.actions, notes,
                        journal)  # fmt: skip
    save_records(_record_path(ctx), [*records, record])  # first: a killed run stays undoable
    try:
        do_actions(plan.actions)
    except SdlibError:  # undone already: forget it (an interrupt keeps it for `sdlib unlink`)
        save_records(_record_path(ctx), records)
        if journal is not None:
            Path(journal).unlink(missing_ok=True)  # written, never started
        raise
    report = store_move.run_moves(ctx, journal, on_progress) if journal else None
    changes = tuple((a.op, a.path, a.target) for a in plan.actions)
    return LinkOutcome(root_s, ui_name, store_s, plan.method, changes, notes, report)


def _plan(
    ui: str, root: str, store: str, folders: tuple[str, ...], method: str, moving: bool = False
) -> Plan:
    from sdlib.library.wall import real, within
    from sdlib.store import plan as planning
    from sdlib.store.apply import read_text
    from sdlib.store.folders import SDNEXT_KEYS, link_spots
    from sdlib.store.probe import probe
    from sdlib.store.tree import model_files

    def path_of(rel: str) -> str:
        return os.path.join(root, *rel.split("/"))

    def exists(rel: str) -> bool:
        return os.path.lexists(path_of(rel))

    def outside(rel: str) -> bool:
        return not within(real(path_of(rel)), real(root))

    spots = link_spots(ui, folders)

    def works(how: str) -> tuple[bool, str]:
        tried: set[str] = set()
        for spot in spots:
            here = path_of(spot.ui_folder)
            while not os.path.isdir(here) and len(here) > len(root):
                here = os.path.dirname(here)
            if here in tried or (os.path.isdir(here) and outside(os.path.relpath(here, root))):
                continue
            tried.add(here)
            result = probe(how, here, os.path.join(store, spot.store_folder))
            if not result.ok:
                return False, result.reason
        return True, ""

    own = 0  # moving: its own files go into the store, none would be hidden
    if ui == "sdnext" and not moving:
        own = sum(
            len(model_files(Path(path_of(spot.ui_folder))))
            for spot in link_spots("sdnext", folders)
            if spot.store_folder in SDNEXT_KEYS and os.path.isdir(path_of(spot.ui_folder))
        )
    chosen = planning.choose_method(ui, method, works, windows=sys.platform == "win32",
                                    own_files=own)  # fmt: skip
    if chosen in ("symlink", "junction"):
        return planning.plan_links(ui, root, store, folders, chosen, exists=exists,
                                   outside=outside)  # fmt: skip
    if chosen == "hardlink":
        files = {f: model_files(Path(store) / f) for f in folders}
        return planning.plan_hardlinks(ui, root, store, files, exists=exists, outside=outside)
    if ui == "comfyui":
        path = os.path.join(root, "extra_model_paths.yaml")
        plan = planning.plan_comfy_yaml(root, store, folders, read_text(path))
        _check_yaml(plan, root, store, folders)
        return plan
    path = os.path.join(root, "config.json")
    return planning.plan_sdnext_json(root, store, folders, read_text(path), own)


def _check_yaml(plan: Plan, root: str, store: str, folders: tuple[str, ...]) -> None:
    """Read the edited YAML back with the library's own reader: it must parse, keep every
    section the user had, and add exactly the store's folders under sdlib's section."""
    from sdlib.errors import ConfigError
    from sdlib.library.comfy_paths import parse_extra_paths
    from sdlib.store.comfy_section import SECTION
    from sdlib.store.folders import COMFY_KEYS

    action = plan.actions[0]
    try:
        before = parse_extra_paths(action.before or "", root, action.path)
        after = parse_extra_paths(action.after, root, action.path)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}; sdlib edits only a file it can read back (try --method symlink)",
            path=action.path,
        ) from None
    ours = {(f.key, f.path) for f in after if f.section == SECTION}
    want = {
        (COMFY_KEYS[f], os.path.normpath(os.path.join(store, f)))
        for f in folders
        if f in COMFY_KEYS
    }
    if ours != want or [f for f in after if f.section != SECTION] != before:
        raise ConfigError("the edited extra_model_paths.yaml would not read back as intended; "
                          "nothing changed", path=action.path)  # fmt: skip


def unlink_store(
    ctx: Context, root: str | os.PathLike[str], *, on_progress: OnMove | None = None
) -> UnlinkOutcome:
    """Remove exactly the links and config edits ``link_store`` recorded for ``root``, after
    moving back (journaled, ``on_progress(done, total)``) the files ``move_existing`` moved
    into the store: each to its original path, with its bytes.

    A link is removed only while it still leads to the store, a hard link only while the
    store still has the file, a folder sdlib made only when empty; nothing is followed.
    NotFound (exit 5) when nothing is recorded for ``root``.
    """
    from sdlib.store.record import locked

    root_s = os.path.abspath(Path(root).expanduser())
    with locked(_record_path(ctx)):
        return _unlink_locked(ctx, root_s, on_progress)


def _unlink_locked(ctx: Context, root_s: str, on_progress: OnMove | None) -> UnlinkOutcome:
    from sdlib.errors import NotFound
    from sdlib.store.apply import undo_actions
    from sdlib.store.record import load_records, save_records

    records = load_records(_record_path(ctx))
    record = _find(records, root_s)
    if record is None:
        raise NotFound(f"no store link is recorded for {root_s}")
    back = None
    if record.moves:  # the files first, while the webUI still sees the store
        from sdlib.services.store_move import undo_moves

        back = undo_moves(ctx, record.moves, on_progress)
    undone = undo_actions(record.actions)
    failed = {p for p, why in undone.kept if why.startswith("not undone:")}
    rest = [r for r in records if r is not record]
    if failed:  # keep what could not be undone (a permission error): a later run retries it
        from dataclasses import replace

        rest.append(replace(record, actions=tuple(a for a in record.actions if a.path in failed)))
    save_records(_record_path(ctx), rest)
    kept = undone.kept
    if back is not None:
        kept += tuple((p, f"not moved back from the store: {why}")
                      for p, why in (*back.skipped, *back.failed))  # fmt: skip
    return UnlinkOutcome(record.root, record.ui, record.method, undone.removed, kept, back)


def with_store(settings: Settings, dest: Destination) -> Destination:
    """``dest`` placing the kinds its webUI sees in the configured store (``sdlib link``)
    into the store, once for every linked webUI; ``[library.folders]`` still wins for its
    kinds. Unchanged without a store, for a root not linked to it, or a plain folder."""
    from dataclasses import replace

    if not settings.store.path or dest.layout is None:
        return dest
    shared = {
        kind: folder
        for kind, folder in store_folders(settings, dest.root).items()
        if kind not in settings.library.folders
    }
    return replace(dest, layout=dest.layout.with_overrides(shared)) if shared else dest


def store_folders(settings: Settings, root: str | os.PathLike[str]) -> dict[str, str]:
    """{kind: store folder} for the kinds the webUI at ``root`` sees in the configured store
    through a link or config edit that is still in place: where downloads for it go, once
    for every linked UI. Empty when there is no store, ``root`` is not linked to it, or it
    was linked with hard links (a snapshot: new files would not be seen)."""
    from sdlib.services.store_status import view
    from sdlib.store.folders import STORE_FOLDERS
    from sdlib.store.record import FILE_NAME, load_records, same_path

    configured = settings.store.path
    if not configured:
        return {}
    store = os.path.abspath(Path(configured).expanduser())
    records = load_records(Path(settings.data_dir) / FILE_NAME)
    record = _find(records, os.path.abspath(Path(root).expanduser()))
    if record is None or not same_path(record.store, store) or record.method == "hardlink":
        return {}
    return {
        STORE_FOLDERS[f].value: os.path.join(store, f)
        for f in STORE_FOLDERS
        if f in view(record, store).folders
    }
