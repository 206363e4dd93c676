"""What linking a store into one webUI does: a list of actions, decided without touching disk.

The IO layer (``sdlib.store.apply``) gathers the facts (which folders exist, what a probe
found, the config file's text) and carries the actions out; the service layer records them.
Method choice follows reference shared-store.md 3.4: ComfyUI through its YAML; A1111, Forge and
reForge through sub-folder links (a junction first on Windows, where symlinks need admin
rights); SD.Next through ``config.json`` unless that would hide files in its own folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdlib.errors import LibraryError, UsageError
from sdlib.store import comfy_section, sdnext_config
from sdlib.store.folders import COMFY_KEYS, FLAG_ONLY, SDNEXT_KEYS, UI_NAMES, link_spots

__all__ = [
    "METHODS",
    "Action",
    "Plan",
    "choose_method",
    "flags_hint",
    "plan_comfy_yaml",
    "plan_hardlinks",
    "plan_links",
    "plan_sdnext_json",
]

METHODS = ("auto", "config", "symlink", "junction", "hardlink")
_LINK_METHODS = ("symlink", "junction")
_CONFIG_UIS = ("comfyui", "sdnext")

#: A1111-family launch flags per store folder (reference shared-store.md 3.3). Each is one
#: folder: it replaces the UI's own folder for that kind, which is why links come first.
_FLAGS: Mapping[str, str] = {
    "StableDiffusion": "--ckpt-dir",
    "Lora": "--lora-dir",
    "VAE": "--vae-dir",
    "Embeddings": "--embeddings-dir",
    "Hypernetwork": "--hypernetwork-dir",
}


@dataclass(frozen=True)
class Action:
    """One change: ``op`` is mkdir, symlink, junction, hardlink, yaml or json.

    ``target`` is what a link leads to (a hard link's source file); ``before``/``after`` are
    a config file's whole text (``before`` None: sdlib creates the file); ``changes`` the
    SD.Next keys set.
    """

    op: str
    path: str
    target: str = ""
    before: str | None = None
    after: str = ""
    changes: tuple[sdnext_config.KeyChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.target:
            out["target"] = self.target
        if self.op in ("yaml", "json"):
            out["before"] = self.before
            out["after"] = self.after
        if self.changes:
            out["changes"] = [c.to_dict() for c in self.changes]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            op=str(data["op"]), path=str(data["path"]), target=str(data.get("target", "")),
            before=data.get("before"), after=str(data.get("after", "")),
            changes=tuple(sdnext_config.KeyChange.from_dict(c) for c in data.get("changes", ())),
        )  # fmt: skip


@dataclass(frozen=True)
class Plan:
    ui: str
    method: str
    actions: tuple[Action, ...]
    #: Things the user should know (a folder skipped, a kind only a launch flag can add).
    notes: tuple[str, ...] = field(default=())


def _join(root: str, rel: str) -> str:
    return os.path.join(root, *rel.split("/"))


def flags_hint(ui: str, store: str, present: Sequence[str]) -> str:
    """The launch flags that point an A1111-family UI at the store instead (one per kind)."""
    flags = [(f, flag) for f, flag in _FLAGS.items() if f in present]
    flags += [pair for pair in FLAG_ONLY.get(ui, ()) if pair[0] in present and pair not in flags]
    return " ".join(f'{flag} "{os.path.join(store, folder)}"' for folder, flag in flags)


def choose_method(
    ui: str,
    requested: str,
    works: Callable[[str], tuple[bool, str]],
    *,
    windows: bool,
    own_files: int = 0,
) -> str:
    """The method to use: ``requested``, or for ``auto`` the first the matrix lists that
    ``works`` (a probe: (ok, reason)) on this filesystem.

    ``own_files``: model files in the SD.Next folders its config keys would replace.
    UsageError for a method this UI cannot take; LibraryError when none works here.
    """
    if ui not in UI_NAMES:
        raise UsageError(f"sdlib cannot link a store into {ui!r}; it can into: "
                         f"{', '.join(UI_NAMES)}")  # fmt: skip
    if requested not in METHODS:
        raise UsageError(f"unknown method {requested!r}; choose one of: {', '.join(METHODS)}")
    if requested == "config" and ui not in _CONFIG_UIS:
        raise UsageError(
            f"{ui} has no config file for model folders: use a link method, or its launch flags"
        )
    if requested == "junction" and not windows:
        raise UsageError("junctions exist on Windows only; use --method symlink")
    if requested != "auto":
        if requested in (*_LINK_METHODS, "hardlink"):
            ok, reason = works(requested)
            if not ok:
                raise LibraryError(f"--method {requested} is not possible here: {reason}")
        return requested
    if ui == "comfyui" or (ui == "sdnext" and own_files == 0):
        return "config"
    reasons = []
    for method in ("junction", "symlink") if windows else ("symlink",):
        ok, reason = works(method)
        if ok:
            return method
        reasons.append(reason)
    raise LibraryError(f"no folder link is possible here ({'; '.join(reasons)})")


def plan_links(
    ui: str,
    root: str,
    store: str,
    present: Sequence[str],
    method: str,
    *,
    exists: Callable[[str], bool],
    outside: Callable[[str], bool],
) -> Plan:
    """Sub-folder links (``models/Lora/sdlib-store -> STORE/Lora``), making the UI folders
    that do not exist yet. ``exists(rel)``: a name (file, folder or link) is there;
    ``outside(rel)``: that existing UI folder resolves outside the root (not written into).
    """
    actions: list[Action] = []
    notes: list[str] = []
    made: set[str] = set()
    for spot in link_spots(ui, tuple(present)):
        if exists(spot.ui_folder) and outside(spot.ui_folder):
            notes.append(f"{spot.ui_folder} leads outside the root: {spot.store_folder} not linked")
            continue
        if exists(spot.rel):
            raise UsageError(f"{_join(root, spot.rel)} already exists: not replaced")
        parts = spot.ui_folder.split("/")
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[:i])
            if rel not in made and not exists(rel):
                actions.append(Action("mkdir", _join(root, rel)))
                made.add(rel)
        actions.append(
            Action(method, _join(root, spot.rel), os.path.join(store, spot.store_folder))
        )
    notes += _flag_notes(ui, store, present)
    return Plan(ui, method, tuple(actions), tuple(notes))


def _flag_notes(ui: str, store: str, present: Sequence[str]) -> list[str]:
    return [
        f"{ui} does not follow folder links for {folder}: add {flag} "
        f'"{os.path.join(store, folder)}" to its launch flags'
        for folder, flag in FLAG_ONLY.get(ui, ())
        if folder in present
    ]


def plan_hardlinks(
    ui: str,
    root: str,
    store: str,
    files: Mapping[str, Sequence[str]],
    *,
    exists: Callable[[str], bool],
    outside: Callable[[str], bool],
) -> Plan:
    """A real ``sdlib-store`` folder in each UI folder holding a hard link to every file the
    store has now (``files``: store folder -> paths relative to it, ``/``-separated). A
    snapshot: files added to the store later need ``sdlib unlink`` and ``sdlib link`` again.
    """
    base = plan_links(ui, root, store, tuple(files), "hardlink", exists=exists, outside=outside)
    actions: list[Action] = []
    for action in base.actions:
        if action.op == "mkdir":
            actions.append(action)
            continue
        actions.append(Action("mkdir", action.path))
        folder = os.path.basename(action.target)
        made: set[str] = set()
        for rel in files[folder]:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                sub = "/".join(parts[:i])
                if sub not in made:
                    actions.append(Action("mkdir", _join(action.path, sub)))
                    made.add(sub)
            actions.append(Action("hardlink", _join(action.path, rel), _join(action.target, rel)))
    notes = (*base.notes, "hard links are a snapshot: files added to the store later are not "
             "seen until you unlink and link again; deleting one here frees no space")  # fmt: skip
    return Plan(ui, "hardlink", tuple(actions), notes)


def plan_comfy_yaml(root: str, store: str, present: Sequence[str], before: str | None) -> Plan:
    """sdlib's section appended to ``<root>/extra_model_paths.yaml`` (``before``: its text,
    None if there is no file)."""
    keys: dict[str, list[str]] = {}
    for folder, key in COMFY_KEYS.items():
        if folder in present:
            keys.setdefault(key, []).append(folder)
    if not keys:
        raise UsageError(f"the store {store} has no kind folders to show ComfyUI")
    after = comfy_section.add_section(before or "", store, keys)
    path = os.path.join(root, "extra_model_paths.yaml")
    return Plan("comfyui", "config", (Action("yaml", path, before=before, after=after),))


def plan_sdnext_json(
    root: str, store: str, present: Sequence[str], before: str | None, own_files: int
) -> Plan:
    """SD.Next's folder keys in ``<root>/config.json`` set to the store's folders."""
    values = {key: os.path.join(store, f) for f, key in SDNEXT_KEYS.items() if f in present}
    if not values:
        raise UsageError(f"the store {store} has no kind folders SD.Next has a setting for")
    after, changes = sdnext_config.set_keys(before or "", values)
    notes = []
    if own_files:
        notes.append(f"SD.Next reads one folder per kind: while linked, it does not list the "
                     f"{own_files} model files in its own folders for these kinds")  # fmt: skip
    if "LyCORIS" in present:
        notes.append("SD.Next has no setting for a LyCORIS folder: keep LyCORIS files in Lora")
    path = os.path.join(root, "config.json")
    action = Action("json", path, before=before, after=after, changes=changes)
    return Plan("sdnext", "config", (action,), tuple(notes))
