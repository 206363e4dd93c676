"""File-name rules that hold on every OS our users run (Windows first).

Pure functions: no IO. Used wherever a name comes from outside (a server's
Content-Disposition, a Civitai file name, a manifest) before it touches the disk.
"""

from __future__ import annotations

import re
import unicodedata

#: Characters Windows forbids in names, plus both separators.
#: Lone surrogates are bytes of a name that were not UTF-8 (surrogateescape): no file name
#: on Windows, in a sidecar or on Civitai can hold them. C1 controls (the 8-bit CSI 0x9b...)
#: and bidi overrides/isolates would act on a terminal or disguise the name's extension.
_ILLEGAL = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]')
#: Device names Windows reserves, with or without an extension (CON, CON.pt, com1.txt...).
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
#: Keep names well below the 255-byte limit of ext4/NTFS, leaving room for ".part" etc.
MAX_NAME_BYTES = 200
#: Endings of sdlib's own temporary files (download part files, move and sidecar temps). A
#: final name never ends so: a model named ``x.safetensors.part`` would be adopted as the
#: part file of a later ``x.safetensors`` download and overwritten.
RESERVED_SUFFIXES = (".part", ".sdlib-part", ".sdlib-tmp", ".tmp", ".downloading")


def is_reserved(name: str) -> bool:
    return name.split(".")[0].strip().upper() in _RESERVED


def safe_filename(name: str, fallback: str = "download") -> str:
    """A name that is safe to create in a folder: one path component, portable, bounded.

    Strips directories (``../../x`` -> ``x``), control and Windows-illegal characters,
    leading dots, trailing dots and spaces; renames reserved device names; drops endings
    reserved for sdlib's temporary files (``x.safetensors.part`` -> ``x.safetensors``); caps
    the length in UTF-8 bytes while keeping the extension.
    """
    name = unicodedata.normalize("NFC", name)
    # Only the last component of anything path-like; both separators count.
    name = re.split(r"[/\\]", name)[-1]
    name = _ILLEGAL.sub("_", name)
    name = name.strip().lstrip(".").rstrip(". ")
    while name.lower().endswith(RESERVED_SUFFIXES):
        name = name[: name.rindex(".")].rstrip(". ")
    if not name or set(name) <= {"_", "."}:
        name = fallback
    if is_reserved(name):
        name = "_" + name
    return _cap(name)


def _cap(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = name, ""
    room = MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
    stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(". ")
    return f"{stem}.{ext}" if ext else stem


def with_suffix_tag(name: str, tag: str) -> str:
    """``model.safetensors`` + ``128713`` -> ``model_128713.safetensors`` (still capped)."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        return safe_filename(f"{name}_{tag}")
    return safe_filename(f"{stem}_{tag}.{ext}")


def content_disposition_filename(header: str | None) -> str | None:
    """The file name from a Content-Disposition header (RFC 6266 ``filename*`` first)."""
    if not header:
        return None
    from urllib.parse import unquote

    m = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", header, re.IGNORECASE)
    if m:
        charset = m.group(1) or "utf-8"
        try:
            return unquote(m.group(2).strip().strip('"'), encoding=charset, errors="replace")
        except LookupError:
            return unquote(m.group(2).strip().strip('"'))
    m = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', header, re.IGNORECASE)
    if m:
        return re.sub(r"\\(.)", r"\1", m.group(1))
    m = re.search(r"filename\s*=\s*([^;]+)", header, re.IGNORECASE)
    return m.group(1).strip() if m else None
