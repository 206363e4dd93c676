"""What the Library screen says about a file: the filter test, and the lines of the
table and the detail pane (pure: file reports in, text out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.widgets import Select

from sdlib.formatting import terminal_safe, tilde

if TYPE_CHECKING:
    from sdlib.hashing import FileHashes
    from sdlib.library.scan import FileReport

#: The status filter's "anything but ok" entry.
PROBLEMS = "problems"


def report_matches(f: FileReport, text: str, kind: Any, base: Any, status: Any) -> bool:
    """Does ``f`` pass the filter row (text in name/Civitai name; kind; base; status)?"""
    if kind is not Select.NULL and f.kind != kind:
        return False
    if base is not Select.NULL and f.base != base:
        return False
    if status is not Select.NULL:
        if status == PROBLEMS:
            if f.status == ["ok"]:
                return False
        elif status not in f.status:
            return False
    if text:
        hay = f"{f.rel} {f.row.civitai_model_name or ''}".lower()
        return all(word in hay for word in text.lower().split())
    return True


def short_name(f: FileReport) -> str:
    """The path inside its model folder (the folder is what ``kind`` says)."""
    prefix = f.folder.rstrip("/") + "/"
    rel = f.rel[len(prefix) :] if f.folder and f.rel.startswith(prefix) else f.rel
    return terminal_safe(rel, newlines=False)  # a file name: never raw to the terminal


def civitai_text(f: FileReport) -> str:
    r = f.row
    if r.civitai_model_name:
        return f"{r.civitai_model_name} {r.civitai_version_name or ''}".strip()
    return {"unidentified": "not on Civitai"}.get(r.identify_state or "", "—")


def status_lines(f: FileReport) -> str:
    lines = [f"status: {', '.join(f.status)}"] + [f"  {n}" for n in f.notes]
    if f.target:
        lines.append(f"  belongs in: {tilde(f.target)}")
    lines += [f"  same file: {tilde(d)}" for d in f.duplicates]
    return terminal_safe("\n".join(lines))


def civitai_line(f: FileReport) -> str:
    r = f.row
    if r.civitai_version_id is not None:
        civ = (
            f"Civitai: {r.civitai_model_name} / {r.civitai_version_name} "
            f"(model {r.civitai_model_id}, version {r.civitai_version_id}, file "
            f"{r.civitai_file_id}) · {r.civitai_base_model or '?'} · by {r.matched_by}"
        )
    elif r.identify_state == "unidentified":
        civ = "Civitai: not found by hash (a private, deleted or local model)"
    else:
        civ = "Civitai: not identified yet (i: identify)"
    return terminal_safe(civ)


def hashes_text(hashes: FileHashes | None, sha256: str | None) -> str:
    """All six hashes once computed, else the recorded SHA256 (or that there is none)."""
    if hashes is not None:
        h = hashes
        return (
            f"SHA256 {h.sha256}\nAutoV1 {h.autov1 or '-'} · AutoV2 {h.autov2} · "
            f"AutoV3 {h.autov3 or '-'} · CRC32 {h.crc32}\nBLAKE3 {h.blake3}"
        )
    return (f"SHA256 {sha256}" if sha256 else "hashes: not computed yet") + " (v: verify)"
