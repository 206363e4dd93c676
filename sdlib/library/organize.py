"""``organize``: turn a scan's problems into a plan of file operations, then apply or undo it.

The plan moves misplaced models into the folder their content belongs in (with
``by_base``, into a per-base subfolder such as ``SDXL/``), renames files whose names clash
in the front end (the Civitai version id, else a short SHA256, goes into the stem) or that
Windows would refuse, fixes preview extensions, brings orphaned sidecars back to their
model, and resolves duplicates as asked (``keep``, ``hardlink``, ``delete``). Sidecars
always travel with their model and take its new stem. Paths already on disk or promised to
another file in the plan are never reused, so the plan cannot overwrite anything.

Applying and undoing go through the journal in :mod:`sdlib.library._journal`, which is
what makes a crash at any point recoverable.

The root is a wall (:mod:`sdlib.library.wall`): every file acted on, and every folder a
file goes to, must resolve inside the root; a link that leads outside is left alone and
reported. The plan carries the wall, and the journal checks it again before each step.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdlib.errors import UsageError
from sdlib.library._journal import Journal, Op, RunReport, apply_journal, locked, undo_journal
from sdlib.library._plan import DEDUPE, OrganizeOptions, Plan, find_journal, journal_dir, op_dict
from sdlib.library._rules import listing_rule, name_key
from sdlib.library._status import article, base_of, display, kind_of
from sdlib.library.placement import base_folder, choose_name, is_base_folder
from sdlib.library.scan import FileReport, ScanResult
from sdlib.library.sidecars import preview_mismatch
from sdlib.library.wall import Wall
from sdlib.names import safe_filename
from sdlib.taxonomy import Kind

__all__ = [
    "DEDUPE",
    "Journal",
    "OrganizeOptions",
    "Plan",
    "RunReport",
    "apply_journal",
    "find_journal",
    "journal_dir",
    "locked",
    "make_plan",
    "op_dict",
    "undo_journal",
]

#: Files organize leaves where they are (and says why).
_LEAVE = {
    "unsafe-pickle": "an unsafe pickle: delete it yourself rather than move it",
    "suspicious-pickle": "a suspicious pickle: check it with sdlib inspect first",
    "corrupt": "corrupt: re-download it",
    "unreadable": "unreadable (permissions)",
    "broken-link": "a broken symlink: remove it or fix its target",
    "link-outside-root": "a link that leads outside the root: sdlib never acts through it",
}


def make_plan(
    scan: ScanResult, options: OrganizeOptions, sha256_of: Callable[[str], str | None]
) -> Plan:
    return _Planner(scan, options, sha256_of).plan()


@dataclass
class _Target:
    report: FileReport
    folder: str  # layout folder string (for keying)
    folder_abs: str
    directory: str  # absolute, final
    name: str
    why: list[str]


class _Planner:
    def __init__(
        self, scan: ScanResult, options: OrganizeOptions, sha256_of: Callable[[str], str | None]
    ) -> None:
        self.scan = scan
        self.root = str(scan.root)
        self.layout = scan.layout
        self.options = options
        self.sha256_of = sha256_of
        #: The root plus the folders the webUI is configured to read elsewhere (ComfyUI's
        #: extra paths): files may go there, but only files spelled inside the root move.
        self.wall = Wall.for_layout(self.root, scan.layout)
        self.plan_ = Plan(self.root, scan.layout.name, options, wall=self.wall.roots,
                          index=str(scan.index_path))  # fmt: skip
        self.reports = {f.path: f for f in scan.files}
        #: Paths (case-folded) that exist or that the plan promised to a file.
        self.taken = {_fold(f.path) for f in scan.files}
        self.claims: dict[tuple[str, str], FileReport] = {}
        self.made_dirs: set[str] = set()
        self.groups = 0
        self.extra_sidecars: dict[str, list[str]] = {}
        self.removed: set[str] = set()

    # -- the plan -----------------------------------------------------------------------------

    def plan(self) -> Plan:
        models = [f for f in self.scan.files if f.role == "model"]
        for f in models:
            why = next((w for s, w in _LEAVE.items() if s in f.status), None)
            if not self._inside(f.path) and f.status != ["ok"]:
                self._note(
                    f, "left in place: outside the root (a shared folder); organize it there"
                )
            elif why:
                self._note(f, f"left in place: {why}")
            elif "misplaced" in f.status and f.target is None:
                self._note(f, f"left in place: {f.notes[0] if f.notes else 'no folder for it'}")
            elif "unsupported-extension" in f.status and not self._case_fix(f):
                self._note(f, f"left in place: {f.notes[-1] if f.notes else ''}")
        for f in self.scan.files:
            if "link-outside-root" in f.status:
                self._note(f, f"left alone: {_LEAVE['link-outside-root']}")
        if self.options.dedupe != "keep":
            self._dedupe([f for f in models if self._movable(f)])
        for f in models:  # files that stay whatever happens keep their names
            if not self._movable(f) and f.key and f.path not in self.removed:
                self.claims.setdefault(f.key, f)
        live = [
            f
            for f in models
            if self._movable(f) and f.path not in self.removed and not self._redundant(f, models)
        ]
        targets = [self._target(f) for f in live]
        staying = [t for t in targets if _join(t) == t.report.path]
        moving = [t for t in targets if _join(t) != t.report.path]
        for t in sorted(staying, key=lambda t: (t.report.rel.count("/"), t.report.rel)):
            if not self._claim(t):
                t.why.append("name clash")
                moving.append(t)
        for t in sorted(moving, key=lambda t: t.report.rel.casefold()):
            self._move_model(t)
        self._orphans()
        self._previews_in_place()
        return self.plan_

    def _redundant(self, f: FileReport, models: list[FileReport]) -> bool:
        """A misplaced copy of a model already in its right folder: moving it there would
        only list the same model twice, so it stays (``--dedupe delete`` removes it)."""
        if "misplaced" not in f.status or not f.sha256:
            return False
        twin = next(
            (o for o in models if o is not f and o.sha256 == f.sha256
             and "misplaced" not in o.status and o.path not in self.removed),
            None,
        )  # fmt: skip
        if twin is None:
            return False
        self._note(f, f"left in place: the same bytes are already in the right folder "
                      f"({twin.rel}); --dedupe delete removes this copy")  # fmt: skip
        return True

    def _movable(self, f: FileReport) -> bool:
        if any(s in f.status for s in _LEAVE) or os.path.islink(f.path):
            return False
        if not self._inside(f.path):
            return False  # a folder shared from elsewhere: organize that folder itself
        if f.model is not None:
            return False  # a checkpoint's own <stem>.vae.pt travels with it
        return not ("misplaced" in f.status and f.target is None)

    def _inside(self, path: str) -> bool:
        """Spelled inside the root and resolving inside it (no link leads out)."""
        return _inside(self.root, path) and self.wall.holds(path)

    def _note(self, f: FileReport, text: str) -> None:
        self.plan_.notes.append(f"{f.rel}: {text}")

    # -- where each model should be -----------------------------------------------------------

    def _target(self, f: FileReport) -> _Target:
        rel_dir = os.path.dirname(os.path.relpath(f.path, _abs(self.root, f.folder)))
        parts = [p for p in rel_dir.split(os.sep) if p and p != "."]
        folder, folder_abs, why = f.folder, _abs(self.root, f.folder), []
        kind, base = kind_of(f.kind), base_of(f.base)
        if "misplaced" in f.status and f.target:
            layout_folder = self.layout.folder_for(kind, base)
            assert layout_folder is not None
            folder, folder_abs = layout_folder, f.target
            why.append(f"content is {article(kind.value)}")
        if self.options.by_base and kind is not Kind.UNKNOWN and base_folder(base):
            while parts and is_base_folder(parts[0]):
                parts.pop(0)
            parts.insert(0, base_folder(base) or "")
            if os.path.join(folder_abs, *parts) != os.path.dirname(f.path):
                why.append(f"by base: {base.value}")
        name = os.path.basename(f.path)
        if "illegal-or-too-long-name" in f.status:
            name = safe_filename(unicodedata.normalize("NFC", name))
            why.append("unsafe name")
        if "unsupported-extension" in f.status and self._case_fix(f):
            stem, ext = os.path.splitext(name)
            name = stem + ext.lower()
            why.append("extension case")
        directory = os.path.normpath(os.path.join(folder_abs, *parts))
        return _Target(f, folder, folder_abs, directory, name, why)

    def _case_fix(self, f: FileReport) -> bool:
        stem, ext = os.path.splitext(os.path.basename(f.path))
        fixed = stem + ext.lower()
        rules = [r for r in self.layout.rules if f.folder in r.folders]
        return fixed != stem + ext and any(r.accepts_name(fixed) for r in rules)

    def _key(self, t: _Target, name: str) -> tuple[str, str] | None:
        rule = listing_rule(self.layout, t.folder, name, kind_of(t.report.kind))
        if rule is None or self.layout.any_kind:
            return None
        rel = os.path.relpath(os.path.join(t.directory, name), t.folder_abs)
        return name_key(rule, t.folder, rel)

    def _claim(self, t: _Target, name: str | None = None) -> bool:
        key = self._key(t, name or t.name)
        if key is None:
            return True
        holder = self.claims.get(key)
        if holder is not None and holder is not t.report and _differ(holder, t.report):
            return False
        self.claims[key] = t.report
        return True

    # -- moving a model and its sidecars ------------------------------------------------------

    def _move_model(self, t: _Target) -> None:
        f = t.report
        sidecars = f.sidecars + self.extra_sidecars.get(f.path, [])
        old_stem = os.path.splitext(os.path.basename(f.path))[0]
        row = f.row
        tags = tuple(
            str(x) for x in (row.civitai_version_id, (row.sha256 or "")[:8].lower() or None) if x
        ) + tuple(str(n) for n in range(2, 10))

        def reserved(path: Path) -> bool:
            name = path.name
            stem = os.path.splitext(name)[0]
            folded = _fold(str(path))
            if (folded in self.taken and folded != _fold(f.path)) or not self._claim_ok(t, name):
                return True
            for s in sidecars:
                dst = os.path.join(t.directory, stem + self._suffix(s, old_stem))
                if dst != s and (_fold(dst) in self.taken or os.path.lexists(dst)):
                    return True
            return False

        if not self.wall.holds(t.directory) or not all(self._inside(s) for s in sidecars):
            self._note(f, f"left in place: {display(self.root, t.directory)} leads outside "
                          "the root")  # fmt: skip
            return
        try:
            choice = choose_name(Path(t.directory), t.name, tags=tags, sha256=None,
                                 sha256_of=lambda _p: None, reserved=reserved)  # fmt: skip
        except UsageError:
            self._note(f, f"left in place: no free name in {display(self.root, t.directory)}")
            return
        dst = str(choice.path)
        if dst == f.path:
            return
        if choice.path.name != t.name:
            t.why.append(f"renamed to {choice.path.name}")
        self._claim(t, choice.path.name)
        self.taken.add(_fold(dst))
        self._mkdirs(t.directory)
        self.groups += 1
        group = self.groups
        self._op("move", f.path, dst=dst, sha256=row.sha256, group=group,
                 why="; ".join(t.why) or "move")  # fmt: skip
        new_stem = os.path.splitext(choice.path.name)[0]
        for s in sidecars:
            side_dst = os.path.join(t.directory, new_stem + self._suffix(s, old_stem))
            if side_dst == s:
                continue
            self.taken.add(_fold(side_dst))
            self._op("move", s, dst=side_dst, group=group, why=f"sidecar of {f.rel}")

    def _claim_ok(self, t: _Target, name: str) -> bool:
        key = self._key(t, name)
        holder = self.claims.get(key) if key else None
        return holder is None or holder is t.report or not _differ(holder, t.report)

    def _suffix(self, sidecar: str, stem: str) -> str:
        """What follows the model's stem in a sidecar's name, with a fixed preview type."""
        name = os.path.basename(sidecar)
        suffix = name[len(stem) :] if name.casefold().startswith(stem.casefold()) else name
        rep = self.reports.get(sidecar)
        kind = rep.row.true_ext if rep is not None else None
        if kind and kind.startswith(".") and preview_mismatch(name, kind):
            suffix = suffix[: suffix.rfind(".")] + kind
        return suffix

    def _mkdirs(self, directory: str) -> None:
        missing: list[str] = []
        d = directory
        while not os.path.isdir(d) and d not in self.made_dirs and os.path.dirname(d) != d:
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            self.made_dirs.add(d)
            self._op("mkdir", d, why="new folder")

    def _op(self, action: str, path: str, **fields: Any) -> None:
        st = os.stat(path) if action != "mkdir" else None
        if st is not None:
            fields.setdefault("size", st.st_size)
            fields.setdefault("mtime_ns", st.st_mtime_ns)
            fields.setdefault("mode", st.st_mode & 0o7777)
        self.plan_.ops.append(Op(action, path, **fields))

    # -- duplicates ---------------------------------------------------------------------------

    def _dedupe(self, models: list[FileReport]) -> None:
        groups: dict[str, list[FileReport]] = {}
        for f in models:
            if f.sha256 and "duplicate" in f.status:
                groups.setdefault(f.sha256, []).append(f)
        for sha, group in groups.items():
            if len(group) < 2:
                continue  # its twin is outside the root or left in place: nothing to merge
            keep = min(group, key=lambda f: ("misplaced" in f.status, not f.sidecars,
                                              f.rel.count("/"), f.rel))  # fmt: skip
            for dup in group:
                if dup is keep or (dup.row.dev, dup.row.ino) == (keep.row.dev, keep.row.ino):
                    continue
                if self.options.dedupe == "hardlink":
                    self._hardlink(dup, keep, sha)
                else:
                    self._delete(dup, keep, sha)

    def _hardlink(self, dup: FileReport, keep: FileReport, sha: str) -> None:
        if dup.row.dev != keep.row.dev:
            self._note(dup, f"kept: on another drive than {keep.rel}, so it cannot be a link")
            return
        self.groups += 1
        self._op("link", dup.path, keep=keep.path, sha256=sha, group=self.groups,
                 why=f"same bytes as {keep.rel}")  # fmt: skip

    def _delete(self, dup: FileReport, keep: FileReport, sha: str) -> None:
        stem = os.path.splitext(os.path.basename(dup.path))[0]
        keep_stem = os.path.splitext(os.path.basename(keep.path))[0]
        keep_dir = os.path.dirname(keep.path)
        moves, deletes = [], []
        for s in dup.sidecars:
            suffix = self._suffix(s, stem)
            there = os.path.join(keep_dir, keep_stem + suffix)
            if self._free(there):
                moves.append((s, there))
            elif os.path.isfile(there) and _file_sha(there) == _file_sha(s):
                deletes.append((s, there))
            elif _same_description(suffix, there, s) and self._free(there + ".bak"):
                # Another answer for the same version (other download counts, images, an
                # ImportedAt stamp): kept as the .bak of the one that stays, so nothing is
                # lost and undo puts it back.
                moves.append((s, there + ".bak"))
            else:
                self._note(dup, f"kept: its {suffix} differs from the one beside {keep.rel}")
                return
        self.groups += 1
        for s, there in moves:
            self.taken.add(_fold(there))
            self._op("move", s, dst=there, group=self.groups, why=f"sidecar of {keep.rel}")
            self.extra_sidecars.setdefault(keep.path, []).append(there)
        for s, there in deletes:
            self._op("delete", s, keep=there, sha256=_file_sha(s), group=self.groups,
                     why=f"same as {display(self.root, there)}")  # fmt: skip
        self._op("delete", dup.path, keep=keep.path, sha256=sha, group=self.groups,
                 why=f"duplicate of {keep.rel}")  # fmt: skip
        self.removed.add(dup.path)

    def _free(self, path: str) -> bool:
        return _fold(path) not in self.taken and not os.path.lexists(path)

    # -- sidecars on their own ----------------------------------------------------------------

    def _moving(self) -> set[str]:
        return {op.path for op in self.plan_.ops if op.action in ("move", "delete")}

    def _previews_in_place(self) -> None:
        moving = self._moving()
        for f in self.scan.files:
            if f.role != "sidecar" or f.path in moving or "wrong-preview-extension" not in f.status:
                continue
            if not self._inside(f.path):
                continue
            kind = f.row.true_ext or ""
            if not kind.startswith("."):
                self._note(f, "left as it is: " + "; ".join(f.notes))
                continue
            dst = os.path.splitext(f.path)[0] + kind
            if _fold(dst) in self.taken or os.path.lexists(dst):
                self._note(f, f"left as it is: {os.path.basename(dst)} exists")
                continue
            self.taken.add(_fold(dst))
            self.groups += 1
            self._op("move", f.path, dst=dst, group=self.groups, why="true preview type")

    def _orphans(self) -> None:
        moving = self._moving()
        final = {op.path: op.dst for op in self.plan_.ops if op.action == "move" and op.dst}
        models_by_stem: dict[str, list[str]] = {}
        for f in self.scan.files:
            if f.role == "model" and f.path not in self.removed:
                where = final.get(f.path, f.path)
                stem = os.path.splitext(os.path.basename(f.path))[0].casefold()
                models_by_stem.setdefault(stem, []).append(where)
        for f in self.scan.files:
            if "orphan-sidecar" not in f.status or f.path in moving:
                continue
            if not self._inside(f.path):
                continue
            name = os.path.basename(f.path)
            owners = {m for stem in _stems(name) for m in models_by_stem.get(stem.casefold(), [])}
            if len(owners) != 1:
                self._note(f, "left as it is: no single model it could belong to")
                continue
            owner = owners.pop()
            old_stem = next(s for s in _stems(name) if s.casefold() in models_by_stem)
            owner_stem = os.path.splitext(os.path.basename(owner))[0]
            dst = os.path.join(os.path.dirname(owner), owner_stem + self._suffix(f.path, old_stem))
            if not self.wall.holds(dst):
                self._note(f, "left as it is: its model's folder leads outside the root")
                continue
            if _fold(dst) in self.taken or os.path.lexists(dst):
                self._note(f, f"left as it is: {display(self.root, dst)} exists")
                continue
            self.taken.add(_fold(dst))
            self.groups += 1
            self._op("move", f.path, dst=dst, group=self.groups,
                     why=f"back beside {display(self.root, owner)}")  # fmt: skip


def _stems(name: str) -> list[str]:
    from sdlib.library.sidecars import sidecar_split

    return [stem for stem, _ in sidecar_split(name)]


def _inside(root: str, path: str) -> bool:
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:
        return False


def _join(t: _Target) -> str:
    return os.path.join(t.directory, t.name)


def _abs(root: str, folder: str) -> str:
    return os.path.normpath(os.path.join(root, folder))


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", os.path.normpath(path)).casefold()


def _differ(a: FileReport, b: FileReport) -> bool:
    if (a.row.dev, a.row.ino) == (b.row.dev, b.row.ino):
        return False
    return not (a.sha256 and a.sha256 == b.sha256)


def _same_description(suffix: str, kept: str, other: str) -> bool:
    """Two identity sidecars (``.civitai.info``, ``.cm-info.json``) of byte-identical
    models that describe the same version, ``other`` holding nothing ``kept`` lacks."""
    from sdlib.library.adopt import SIDECAR_SOURCES, same_description
    from sdlib.library.sidecars import read_json

    low = suffix.lower()
    if low not in SIDECAR_SOURCES or not os.path.isfile(kept):
        return False
    return same_description(low, read_json(Path(kept)), read_json(Path(other)))


def _file_sha(path: str) -> str:
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest().upper()
