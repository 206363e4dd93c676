"""The service layer: one context built from ``Settings`` and one function per operation.

The CLI and the TUI parse input, call these, and render what comes back; a script does the
same without either. Progress and cancellation go in as callbacks and events, never as rich
or Textual objects. Below this layer: sources (Civitai), the download engine, the library
(folders, index, organize), transforms (convert, merge) and the file readers.

    from sdlib.services import Context, library, remote

    with Context() as ctx:                      # settings from the config file
        for model in remote.search(ctx, "detail", types=("LORA",), limit=5):
            print(model.id, model.name)
        result = library.scan(ctx, "~/stable-diffusion-webui")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sdlib.services._context import Context

if TYPE_CHECKING:
    from sdlib.services import (
        account,
        dedupe,
        downloads,
        files,
        identify,
        library,
        manifests,
        mirror,
        paths,
        peek,
        refresh,
        remote,
        seen,
        transform,
        trash,
        verify,
    )

__all__ = [
    "Context",
    "account",
    "dedupe",
    "downloads",
    "files",
    "identify",
    "library",
    "manifests",
    "mirror",
    "paths",
    "peek",
    "refresh",
    "remote",
    "seen",
    "transform",
    "trash",
    "verify",
]


def __getattr__(name: str) -> Any:
    """The operation modules load on first use: a command pays only for its own."""
    if name in __all__:
        return importlib.import_module(f"sdlib.services.{name}")
    raise AttributeError(f"module 'sdlib.services' has no attribute {name!r}")
