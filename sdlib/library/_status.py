"""What is wrong with each file of a scan, and why, in words a user can act on.

Statuses (a file can have several; ``ok`` alone means none of the others):

==========================  ===========================================================
ok                          nothing to fix
misplaced                   its content is a kind the front end loads from another folder
duplicate                   the same SHA256 exists elsewhere (hard links do not count)
name-clash                  a different file the front end keys the same (LoRA stems...)
unsafe-pickle               a pickle that would run code when loaded
suspicious-pickle           a pickle that imports something unusual
unknown                     readable, but not a model sdlib recognises
corrupt                     truncated or malformed (the reader says how)
unreadable                  sdlib may not or cannot read it (permissions, a FIFO or device,
                            a link loop, an error sdlib hit on it)
unsupported-extension       in the right folder, but the front end will not list the name
orphan-sidecar              a ``.civitai.info``, ``.json`` or preview with no model
wrong-preview-extension     e.g. JPEG bytes in ``.preview.png``, a video named ``.png``
illegal-or-too-long-name    a name Windows refuses or too long for sidecars and paths
broken-link                 a symlink whose target is missing (dangling), inside the root
                            or outside it
link-outside-root           a link (file or folder) that resolves outside the root: what
                            it leads to is read and listed (the webUI loads it), but
                            nothing is moved, renamed or deleted through it
==========================  ===========================================================
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sdlib.files.opening import UNREADABLE_PREFIXES, printable
from sdlib.library._rules import Rules, name_key
from sdlib.library._walk import Entry
from sdlib.library.index import FileRow
from sdlib.library.layouts import Layout
from sdlib.library.sidecars import (
    IMAGE_EXTENSIONS,
    STRONG_SIDECAR_SUFFIXES,
    is_preview_name,
    preview_mismatch,
    sidecar_split,
)
from sdlib.names import MAX_NAME_BYTES, RESERVED_SUFFIXES, is_reserved, safe_filename
from sdlib.taxonomy import Base, Kind

STATUSES = (
    "ok", "misplaced", "duplicate", "name-clash", "unsafe-pickle", "suspicious-pickle",
    "unknown", "corrupt", "unreadable", "unsupported-extension", "orphan-sidecar",
    "wrong-preview-extension", "illegal-or-too-long-name", "broken-link", "link-outside-root",
)  # fmt: skip

_VAE_SUFFIXES = (".vae.pt", ".vae.ckpt", ".vae.safetensors")
#: JSON files Hugging Face layouts put beside weights: configs, not sidecars.
_HF_JSON = frozenset({
    "config.json", "generation_config.json", "model_index.json", "preprocessor_config.json",
    "scheduler_config.json", "special_tokens_map.json", "tokenizer.json",
    "tokenizer_config.json", "vocab.json", "added_tokens.json",
})  # fmt: skip


def _hf_file(name: str) -> bool:
    low = name.lower()
    return low in _HF_JSON or low.endswith(".index.json")


@dataclass
class FileReport:
    """One file of a scan: what it is, where it belongs, what is wrong with it."""

    id: int | None
    path: str
    rel: str
    folder: str
    role: str
    size: int | None
    row: FileRow
    status: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Sidecars: the model they belong to. Models: their sidecars (and ``<stem>.vae.pt``).
    model: str | None = None
    sidecars: list[str] = field(default_factory=list)
    #: Misplaced models: the folder their content belongs in (absolute).
    target: str | None = None
    #: The front-end list and key it is known by, e.g. ("lora", "add_detail").
    key: tuple[str, str] | None = None
    keyed_by: str | None = None
    #: Other files (paths) with the same SHA256.
    duplicates: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        return self.row.kind

    @property
    def base(self) -> str | None:
        return self.row.base

    @property
    def sha256(self) -> str | None:
        return self.row.sha256

    def to_dict(self) -> dict[str, Any]:
        r = self.row
        civitai = None
        if r.civitai_version_id is not None:
            civitai = {
                "model_id": r.civitai_model_id, "version_id": r.civitai_version_id,
                "file_id": r.civitai_file_id, "model_name": r.civitai_model_name,
                "version_name": r.civitai_version_name, "base_model": r.civitai_base_model,
                "matched_by": r.matched_by,
            }  # fmt: skip
        model_fields = self.role == "model"
        return {
            "id": self.id, "path": self.path, "rel": self.rel, "role": self.role,
            "folder": self.folder, "size": self.size,
            "kind": r.kind if model_fields else None,
            "base": r.base if model_fields else None,
            "variant": r.variant if model_fields else None,
            "container": r.container if model_fields else None,
            "precision": r.precision if model_fields else None,
            "quantization": r.quantization if model_fields else None,
            "safety": r.safety, "sha256": r.sha256,
            "status": list(self.status), "notes": list(self.notes),
            "identified": r.identify_state, "civitai": civitai,
            "model": self.model, "sidecars": list(self.sidecars),
            "target": self.target, "duplicates": list(self.duplicates),
            "preview_type": r.true_ext if self.role == "sidecar" else None,
            "verification": _json(r.verification),
        }  # fmt: skip


def _json(text: str | None) -> Any:
    """A JSON column's value (None when empty or unreadable)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def display(root: str, path: str) -> str:
    """``path`` relative to ``root`` when inside it (forward slashes), else as it is."""
    prefix = root.rstrip(os.sep) + os.sep
    if path.startswith(prefix):  # the common case, without relpath's cost
        rel = path[len(prefix) :]
    else:
        rel = os.path.relpath(path, root) if _inside(root, path) else path
    return rel.replace(os.sep, "/")


def _inside(root: str, path: str) -> bool:
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:  # different drives
        return False


#: Names every OS keeps as they are (ASCII: NFC already; no character Windows forbids; no
#: dot or space at either end; short enough): ``safe_filename`` would leave them unchanged.
_PLAIN_NAME = re.compile(
    rf"[A-Za-z0-9][A-Za-z0-9 _.,+=@#&!'()\[\]{{}}~-]{{0,{MAX_NAME_BYTES - 2}}}[A-Za-z0-9_)\]}}-]"
)


def name_problem(name: str) -> str | None:
    """Why a file name is unsafe to keep (Windows rules, room for sidecars), or None."""
    plain = _PLAIN_NAME.fullmatch(name) and not name.lower().endswith(RESERVED_SUFFIXES)
    if plain and not is_reserved(name):  # the common case, without safe_filename's passes
        return None
    if printable(name) != name:
        return "the name's bytes are not UTF-8 (shown as \\x escapes); Windows cannot hold it"
    nfc = unicodedata.normalize("NFC", name)
    if safe_filename(nfc) == nfc:
        return None
    if len(nfc.encode()) > MAX_NAME_BYTES:
        return (
            f"the name is {len(nfc.encode())} bytes; above {MAX_NAME_BYTES} there is no room "
            "for sidecar suffixes and Windows paths break"
        )
    if is_reserved(nfc):
        return "Windows reserves this name (CON, NUL, COM1...)"
    if nfc != nfc.rstrip(". "):
        return "the name ends with a dot or a space, which Windows drops"
    if nfc.startswith("."):
        return "the name starts with a dot (hidden on Linux and macOS)"
    return 'the name has characters Windows forbids (< > : " / \\ | ? * or control characters)'


def build_reports(
    root: str, layout: Layout, entries: list[Entry], rows: dict[str, FileRow]
) -> list[FileReport]:
    reports = {
        e.path: FileReport(
            id=rows[e.path].id, path=e.path, rel=display(root, e.path),
            folder=e.folder, role=e.role, size=e.st.st_size if e.st else None, row=rows[e.path],
        )
        for e in entries
        if e.path in rows
    }  # fmt: skip
    by_path = {e.path: e for e in entries if e.path in reports}
    rules = Rules(layout)
    _attach_sidecars(root, layout, by_path, reports)
    for path, rep in reports.items():
        e = by_path[path]
        if e.role == "link" and e.outside and _store_link(path) and not os.path.isfile(path):
            # `sdlib link` showed the shared store here: its files are the webUI's models.
            if os.path.isdir(path):
                rep.notes.append(f"the shared model store {_link_target(path)} (sdlib link): "
                                 "its files are listed through it, never changed")  # fmt: skip
            else:  # the store moved, or its drive is not mounted
                rep.status.append("broken-link")
                rep.notes.append(f"a link to the shared model store {_link_target(path)}, "
                                 "which is missing: `sdlib unlink` removes it")  # fmt: skip
            continue
        if e.role == "link" and e.outside and not os.path.exists(path):
            # Dangling, not just elsewhere: what it named outside the root is gone.
            rep.status.append("broken-link")
            rep.notes.append(f"a dangling link to {_link_target(path)}, outside the root, "
                             "which does not exist: remove it or fix its target")  # fmt: skip
            continue
        if e.role == "link" and e.outside:
            rep.status.append("link-outside-root")
            rep.notes.append(
                f"a link to {_link_target(path)}, outside the root: listed, never changed"
            )
            continue
        if e.outside and e.is_link:
            rep.status.append("link-outside-root")
            rep.notes.append(
                f"a link to {_link_target(path)}, outside the root: listed, never changed"
            )
        if e.role == "link":
            rep.status.append("broken-link")
            target = _link_target(path)
            rep.notes.append(f"a symlink to {target}, which does not exist")
            continue
        problem = name_problem(e.name)
        if rep.role == "model":
            _model_status(root, rules, e, rep)
        elif rep.role == "sidecar":
            _sidecar_status(root, layout, e, rep)
        if problem:
            rep.status.append("illegal-or-too-long-name")
            rep.notes.append(problem)
    _duplicates(root, reports.values())
    _clashes(root, rules, reports.values(), by_path)
    for rep in reports.values():
        if not rep.status:
            rep.status.append("ok")
    return sorted(reports.values(), key=lambda r: (r.role != "model", r.rel.casefold()))


#: The sub-folder link ``sdlib link`` makes (sdlib.store.folders.LINK_NAME, ...-<Folder>).
_STORE_LINK = "sdlib-store"


def _store_link(path: str) -> bool:
    """A link named as ``sdlib link`` names them (``sdlib-store``, ``sdlib-store-<Folder>``)."""
    name = os.path.basename(path)
    return name == _STORE_LINK or name.startswith(_STORE_LINK + "-")


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "a missing file"


def _attach_sidecars(
    root: str, layout: Layout, entries: dict[str, Entry], reports: dict[str, FileReport]
) -> None:
    """Link sidecars to their models; report orphans; drop lone placeholders."""
    weak: list[str] = []
    by_dir: dict[str, dict[str, str]] = {}
    models_by_stem: dict[str, list[str]] = {}
    for path, e in entries.items():
        if e.role in ("model", "link"):
            stem = os.path.splitext(e.name)[0]
            by_dir.setdefault(e.directory, {})[stem] = path
            models_by_stem.setdefault(stem.casefold(), []).append(path)
    folded_by_dir = {d: {s.casefold(): p for s, p in st.items()} for d, st in by_dir.items()}
    for path, e in entries.items():
        stems = by_dir.get(e.directory, {})
        folded = folded_by_dir.get(e.directory, {})
        if e.role == "model" and e.name.lower().endswith(_VAE_SUFFIXES):
            owner = stems.get(e.name[: e.name.lower().rindex(".vae.")])
            # A1111's per-checkpoint VAE: it belongs with a checkpoint, not with a LoRA.
            owner_kind = reports[owner].row.kind if owner else None
            if owner and owner != path and owner_kind in ("checkpoint", "unet"):
                reports[path].model = owner
                reports[owner].sidecars.append(path)
            continue
        if e.role != "sidecar":
            continue
        splits = sidecar_split(e.name)
        owner = next((stems[s] for s, _ in splits if s in stems), None)
        owner = owner or next(
            (folded[s.casefold()] for s, _ in splits if s.casefold() in folded), None
        )
        rep = reports[path]
        if owner is not None:
            rep.model = owner
            reports[owner].sidecars.append(path)
            continue
        if not any(suffix in STRONG_SIDECAR_SUFFIXES for _, suffix in splits) or _hf_file(e.name):
            weak.append(path)  # a lone .txt, .yaml or HF config: a placeholder or a config
            continue
        kinds = {r.kind for r in layout.rules if e.folder in r.folders}
        if Kind.EMBEDDING in kinds and e.name.lower().endswith(IMAGE_EXTENSIONS):
            continue  # A1111 reads images in the embeddings folder as embeddings
        rep.status.append("orphan-sidecar")
        stem = splits[0][0] if splits else e.name
        elsewhere = [p for s, _ in splits for p in models_by_stem.get(s.casefold(), [])]
        note = f"no model named {stem}.* beside it"
        if elsewhere:
            note += f"; its model may be {display(root, elsewhere[0])}"
        rep.notes.append(note)
    for path in weak:
        del reports[path]
        del entries[path]


def _model_status(root: str, rules: Rules, e: Entry, rep: FileReport) -> None:
    layout = rules.layout
    r = rep.row
    if r.problem:
        if r.problem == "permission denied":
            rep.status.append("unreadable")
            rep.notes.append("sdlib may not read this file (permission denied)")
        elif r.problem.startswith(UNREADABLE_PREFIXES):
            rep.status.append("unreadable")
            rep.notes.append(r.problem)
        else:
            rep.status.append("corrupt")
            rep.notes.append(r.problem)
        return
    if r.safety == "unsafe":
        rep.status.append("unsafe-pickle")
        rep.notes.append("a pickle that would run code when loaded: do not load it")
    elif r.safety == "suspicious":
        rep.status.append("suspicious-pickle")
        rep.notes.append("a pickle that imports unusual globals (sdlib inspect shows which)")
    kind = kind_of(r.kind)
    base = base_of(r.base)
    if kind is Kind.UNKNOWN:
        rep.status.append("unknown")
        rep.notes.append(f"not a model sdlib recognises ({r.container} container)")
    if layout.any_kind:
        return
    if kind is Kind.UNKNOWN:
        if not rules.listing(e.folder, e.name):
            rep.status.append("unsupported-extension")
            rep.notes.append(f"{layout.title} does not list {_ext(e.name)} files here")
        return
    here = rules.here(e.folder, kind, base)
    what = f"{kind.value}" + (f" ({base.value})" if base is not Base.UNKNOWN else "")
    if not here:
        target = layout.folder_for(kind, base)
        rep.status.append("misplaced")
        if target is None:
            rep.notes.append(f"content is {article(what)}; {layout.title} has no folder for those")
        else:
            rep.target = os.path.normpath(os.path.join(root, target))
            rep.notes.append(
                f"content is {article(what)}; it belongs in {display(root, rep.target)}"
            )
        return
    if rules.accepts(e.folder, kind, base, e.name):
        return
    rep.status.append("unsupported-extension")
    ext = _ext(e.name)
    lowered = e.name[: len(e.name) - len(ext)] + ext.lower()
    if lowered != e.name and any(x.accepts_name(lowered) for x in here):
        rep.notes.append(
            f"{layout.title} compares extensions case-sensitively: rename to {ext.lower()}"
        )
        return
    accepted = ", ".join(sorted({x_ext for x in here for x_ext in x.extensions}))
    rep.notes.append(f"{layout.title} lists only {accepted} {kind.value} files here, not this one")


def _sidecar_status(root: str, layout: Layout, e: Entry, rep: FileReport) -> None:
    if not is_preview_name(e.name) or rep.row.true_ext is None:
        return
    why = preview_mismatch(e.name, rep.row.true_ext)
    if why:
        rep.status.append("wrong-preview-extension")
        rep.notes.append(why)


def _duplicates(root: str, reports: Iterable[FileReport]) -> None:
    groups: dict[str, list[FileReport]] = {}
    for rep in reports:
        if rep.role == "model" and rep.sha256:
            groups.setdefault(rep.sha256, []).append(rep)
    for group in groups.values():
        inodes = {(g.row.dev, g.row.ino) for g in group}
        if len(inodes) < 2:
            continue
        for rep in group:
            others = [g for g in group if (g.row.dev, g.row.ino) != (rep.row.dev, rep.row.ino)]
            rep.duplicates = [g.path for g in others]
            rep.status.append("duplicate")
            names = ", ".join(g.rel for g in others[:3]) + (" ..." if len(others) > 3 else "")
            rep.notes.append(f"same SHA256 as {names}")


def _clashes(
    root: str, rules: Rules, reports: Iterable[FileReport], entries: dict[str, Entry]
) -> None:
    layout = rules.layout
    keyed: dict[tuple[str, str], list[FileReport]] = {}
    for rep in reports:
        if rep.role != "model" or rep.row.problem or layout.any_kind:
            continue
        e = entries[rep.path]
        rule = rules.listing_rule(e.folder, e.name, kind_of(rep.row.kind))
        if rule is None:
            continue
        rep.key = name_key(rule, e.folder, e.rel)
        rep.keyed_by = rule.keyed_by.value
        keyed.setdefault(rep.key, []).append(rep)
    how = {"stem": "file stem", "name": "file name", "relpath": "path in its folder"}
    for (listing, key), group in keyed.items():
        for rep in group:
            others = [g for g in group if _different(g, rep)]
            if not others:
                continue
            rep.status.append("name-clash")
            names = ", ".join(g.rel for g in others[:3])
            rep.notes.append(
                f"{layout.title} knows {listing.split(':')[0]} files by "
                f"{how[rep.keyed_by or 'stem']}: '{key}' is also {names}"
            )


def _different(a: FileReport, b: FileReport) -> bool:
    if a is b or (a.row.dev, a.row.ino) == (b.row.dev, b.row.ino):
        return False
    if a.sha256 and b.sha256:
        return a.sha256 != b.sha256
    return True


def _ext(name: str) -> str:
    return os.path.splitext(name)[1]


def kind_of(value: str | None) -> Kind:
    try:
        return Kind(value or "unknown")
    except ValueError:
        return Kind.UNKNOWN


def base_of(value: str | None) -> Base:
    try:
        return Base(value or "unknown")
    except ValueError:
        return Base.UNKNOWN


def article(word: str) -> str:
    vowel = word[:1] in "aeiou" and not word.startswith(("unet", "uni"))
    return f"{'an' if vowel else 'a'} {word}"
