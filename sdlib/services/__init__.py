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

from sdlib.services import (
    account,
    dedupe,
    downloads,
    files,
    library,
    manifests,
    paths,
    peek,
    refresh,
    remote,
    transform,
    trash,
    verify,
)
from sdlib.services._context import Context

__all__ = [
    "Context",
    "account",
    "dedupe",
    "downloads",
    "files",
    "library",
    "manifests",
    "paths",
    "peek",
    "refresh",
    "remote",
    "transform",
    "trash",
    "verify",
]
