"""The store on disk: making it, recognising a Stability Matrix ``Models`` folder, counting
what it holds. Counting never follows a link (a store holds files, not links to elsewhere)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sdlib.errors import LibraryError, UsageError
from sdlib.store.folders import STORE_FOLDERS

__all__ = [
    "FolderCount", "adoptable", "count_folder", "init_tree", "model_files", "present",
    "sized_files",
]  # fmt: skip

#: Extensions of model files (the same as the library's scan, kept here to stay independent).
MODEL_SUFFIXES = (
    ".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft", ".gguf",
)  # fmt: skip
_TEMP = (".part", ".sdlib-tmp", ".sdlib-part", ".tmp", ".downloading")


@dataclass(frozen=True)
class FolderCount:
    folder: str
    files: int
    bytes: int


def present(store: Path) -> tuple[str, ...]:
    """The store's kind folders that exist, in store order."""
    return tuple(f for f in STORE_FOLDERS if (store / f).is_dir())


def adoptable(path: Path) -> Path | None:
    """``path`` if it is a Stability Matrix ``Models`` folder, or its ``Models`` if ``path``
    is Stability Matrix's data folder; else None."""
    for candidate in (path, path / "Models"):
        if (candidate / "StableDiffusion").is_dir():
            return candidate
    return None


def init_tree(path: Path, adopt: bool) -> tuple[Path, tuple[str, ...]]:
    """(store folder, kind folders made). Adopting makes nothing: the folder is used as is."""
    path = Path(os.path.abspath(path.expanduser()))
    if adopt:
        found = adoptable(path)
        if found is None:
            raise UsageError(
                f"{path} is not a Stability Matrix Models folder (no StableDiffusion folder in it)"
            )
        return found, ()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder")
    made: list[str] = []
    try:
        path.mkdir(parents=True, exist_ok=True)
        for folder in STORE_FOLDERS:
            target = path / folder
            if not target.exists():
                target.mkdir()
                made.append(folder)
    except OSError as exc:
        raise LibraryError(
            f"cannot make the store: {exc.strerror or exc}", path=str(path)
        ) from None
    return path, tuple(made)


def model_files(folder: Path) -> list[str]:
    """Model files under ``folder`` (``/``-separated, relative), hidden folders and temporary
    files skipped, links not followed."""
    out: list[str] = []
    stack = [folder]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            elif e.is_file(follow_symlinks=False) and _is_model(e.name):
                out.append(Path(e.path).relative_to(folder).as_posix())
    return sorted(out)


def _is_model(name: str) -> bool:
    low = name.lower()
    return low.endswith(MODEL_SUFFIXES) and not low.endswith(_TEMP)


def sized_files(folder: Path) -> list[tuple[str, int]]:
    """(path relative to ``folder``, size) of each of its model files (see ``model_files``);
    a file gone meanwhile is left out."""
    out = []
    for rel in model_files(folder):
        try:
            out.append((rel, os.lstat(folder / rel).st_size))
        except OSError:
            continue
    return out


def count_folder(store: Path, folder: str) -> FolderCount:
    files = sized_files(store / folder)
    return FolderCount(folder, len(files), sum(size for _, size in files))
