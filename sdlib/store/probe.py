"""What a directory supports, found by trying it (as huggingface_hub's
``are_symlinks_supported`` does) instead of guessing from the OS.

Each probe makes a link under a temporary hidden name in the directory itself, checks that it
leads where it should, and removes it. Windows symlinks need admin rights or Developer Mode;
junctions do not exist elsewhere; FAT32/exFAT take no links at all; hard links stop at the
volume boundary (reference shared-store.md 3.2).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from dataclasses import dataclass

from sdlib.store.links import make_link, remove_link

__all__ = ["Probe", "probe"]


@dataclass(frozen=True)
class Probe:
    method: str
    ok: bool
    #: Why not, in words (empty when ok).
    reason: str = ""


def _temp(directory: str) -> str:
    return os.path.join(directory, f".sdlib-probe-{os.getpid()}-{secrets.token_hex(4)}")


def probe(method: str, directory: str, store_folder: str) -> Probe:
    """Whether ``method`` can show ``store_folder`` inside ``directory`` (both existing)."""
    if method == "junction" and sys.platform != "win32":
        return Probe(method, False, "junctions exist on Windows only")
    if method == "hardlink":
        return _hardlink(directory, store_folder)
    name = _temp(directory)
    try:
        make_link(method, store_folder, name)
    except OSError as exc:
        return Probe(method, False, f"cannot make a {method} in {directory}: {exc.strerror or exc}")
    try:
        if not os.path.samefile(name, store_folder):
            return Probe(method, False, f"a {method} in {directory} does not lead to the store")
        os.listdir(name)  # a junction to a network share is made but fails here (WinError 4392)
    except OSError as exc:
        return Probe(method, False, f"a {method} in {directory} cannot be read through: {exc}")
    finally:
        with contextlib.suppress(OSError):
            remove_link(name)
    return Probe(method, True)


def _hardlink(directory: str, store_folder: str) -> Probe:
    source = _temp(store_folder)
    name = _temp(directory)
    try:
        with open(source, "xb"):
            pass
        os.link(source, name)
    except OSError as exc:
        why = f"cannot hard-link from the store into {directory}: {exc.strerror or exc}"
        return Probe("hardlink", False, why)
    finally:
        for path in (name, source):
            with contextlib.suppress(OSError):
                os.unlink(path)
    return Probe("hardlink", True)
