"""sdlib: a local model library manager and downloader for Stable Diffusion front ends.

Importing ``sdlib`` is cheap: the public names below load their modules on first use
(PEP 562), and nothing imports torch or textual until a command needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sdlib._version import __version__

if TYPE_CHECKING:
    from sdlib.errors import SdlibError
    from sdlib.hashing import FileHashes, hash_file
    from sdlib.inspect import InspectReport, inspect_file

__all__ = ["FileHashes", "InspectReport", "SdlibError", "__version__", "hash_file", "inspect_file"]

_LAZY = {
    "FileHashes": "sdlib.hashing",
    "hash_file": "sdlib.hashing",
    "inspect_file": "sdlib.inspect",
    "InspectReport": "sdlib.inspect",
    "SdlibError": "sdlib.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sdlib' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
