"""Where a model file belongs, and under which name: one implementation for download,
install and organize.

A ``Destination`` is either a webUI root with its layout (files go to the folder for
their kind and base) or a plain folder (``--to DIR``). Names never replace a different
file: a clash gets the version id (then the file id) added to the stem.

Safety comes before classification: :func:`refuse_unsafe` takes the pickle verdict of a new
file, and deletes an unsafe one, before anything else reads it, so no later step (a
classifier bug, a full disk) can leave an unsafe file placed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sdlib.errors import FormatError, UnsafeFileError, UsageError
from sdlib.library.layouts import Layout, resolve_layout
from sdlib.names import safe_filename, with_suffix_tag
from sdlib.taxonomy import Base, Kind

#: Kinds a front end loads from the same place and users treat as one family.
_FAMILIES: tuple[frozenset[Kind], ...] = (
    frozenset({Kind.LORA, Kind.LYCORIS}),
    frozenset({Kind.CHECKPOINT, Kind.UNET}),
)


def same_family(a: Kind, b: Kind) -> bool:
    return a is b or any(a in f and b in f for f in _FAMILIES)


#: Subfolder per base for ``--by-base``, named as ComfyUI-Manager's catalogue names them.
BASE_FOLDERS: dict[Base, str] = {
    Base.SD1: "SD1.5", Base.SD2: "SD2", Base.SDXL: "SDXL", Base.SDXL_REFINER: "SDXL",
    Base.SD3: "SD3", Base.FLUX: "FLUX1", Base.FLUX2: "FLUX2", Base.PIXART: "PixArt",
    Base.CASCADE: "Cascade", Base.SVD: "SVD",
}  # fmt: skip
#: Folder names that already sort by base (ours and common ones users made), lower-case.
_BASE_NAMES = {n.lower() for n in BASE_FOLDERS.values()} | {
    "sd1", "sd15", "sd 1.5", "sd-1.5", "sd_1.5", "sdxl 1.0", "flux", "flux.1", "pony",
}  # fmt: skip


def base_folder(base: Base) -> str | None:
    """The ``--by-base`` subfolder for ``base`` (None when the base is unknown)."""
    return BASE_FOLDERS.get(base)


def is_base_folder(name: str) -> bool:
    return name.lower() in _BASE_NAMES


@dataclass(frozen=True)
class Destination:
    """A webUI root plus its layout, or a plain folder that takes every kind."""

    root: Path
    layout: Layout | None = None

    @classmethod
    def for_ui(cls, root: str | os.PathLike[str], ui: str = "auto") -> Destination:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise UsageError(f"webUI root {path} is not a folder")
        return cls(path, resolve_layout(ui, path))

    @classmethod
    def folder(cls, path: str | os.PathLike[str]) -> Destination:
        return cls(Path(path).expanduser())

    def folder_for(self, kind: Kind, base: Base = Base.UNKNOWN) -> Path:
        if self.layout is None:
            return self.root
        rel = self.layout.folder_for(kind, base)
        if rel is None:
            raise UsageError(
                f"{self.layout.title} has no folder for {kind.value} files; use --to DIR"
            )
        return self.root / rel

    def describe(self) -> str:
        return f"{self.layout.name} at {self.root}" if self.layout else str(self.root)


@dataclass(frozen=True)
class NameChoice:
    path: Path
    #: True when an identical file (same SHA256) already sits at ``path``.
    identical: bool


def choose_name(
    folder: Path,
    name: str,
    *,
    tags: tuple[str, ...],
    sha256: str | None,
    sha256_of: Callable[[Path], str | None],
    reserved: Callable[[Path], bool] = lambda _p: False,
) -> NameChoice:
    """A path in ``folder`` for ``name`` that replaces no different file.

    Tries ``name``, then ``name`` with each tag (version id, file id) added to the stem. An
    existing file with the same SHA256 is reported as identical: nothing to download.
    ``sha256_of`` hashes an existing file (cached by the caller). ``reserved`` says a free
    path is nevertheless taken (planned for another file, or its sidecars would collide).
    """
    candidates = [safe_filename(name)] + [with_suffix_tag(safe_filename(name), t) for t in tags]
    for candidate in candidates:
        path = folder / candidate
        if reserved(path):
            continue
        if not os.path.lexists(path):
            return NameChoice(path, identical=False)
        if path.is_file() and sha256 and (sha256_of(path) or "").upper() == sha256.upper():
            return NameChoice(path, identical=True)
    raise UsageError(
        f"{folder} already holds different files named like {name}; move them or use --to DIR"
    )


def refuse_unsafe(path: Path) -> None:
    """Judge a newly written file's pickles first; delete it and raise UnsafeFileError when
    it would run code when loaded.

    Safetensors and GGUF hold no pickles. Anything else a loader might unpickle is scanned
    (symbolically: nothing runs, nothing is classified). A file the scanner cannot judge
    because the scanner itself failed is deleted too: unjudged is not safe.
    """
    from sdlib.files.pickles import scan_file
    from sdlib.files.sniff import SNIFF_BYTES, sniff_bytes
    from sdlib.taxonomy import Container

    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return  # nothing there to judge (the caller reports it)
    if sniff_bytes(head, size) in (Container.SAFETENSORS, Container.GGUF):
        return
    try:
        scan = scan_file(path)
    except FormatError:
        return  # not a pickle at all: no loader would unpickle it
    except Exception as exc:  # a scanner bug must not leave an unjudged pickle in place
        _delete(path)
        raise UnsafeFileError(
            f"{path.name} could not be checked for unsafe pickles "
            f"({type(exc).__name__}); it was deleted rather than kept unchecked",
            path=str(path),
        ) from None
    if str(scan.verdict) == "unsafe":
        _delete(path)
        raise UnsafeFileError(
            f"{path.name} is a pickle that would run code when loaded; it was deleted",
            path=str(path),
            findings=[f"{f.module}.{f.name}" for f in scan.findings],
        )


def _delete(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
