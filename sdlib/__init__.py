"""sdlib: a local model library manager and downloader for Stable Diffusion front ends.

Importing ``sdlib`` is cheap: the public names below load their modules on first use
(PEP 562), and nothing imports torch or textual until a command needs it.

    import sdlib

    with sdlib.Context() as ctx:                  # settings from the config file
        for model in sdlib.search(ctx, "detail", types=("LORA",), limit=3):
            print(model.id, model.name)
        done = sdlib.install(ctx, "4384", root="~/stable-diffusion-webui", ui="a1111")
        print(done.path, done.kind)
        for f in sdlib.scan(ctx, "~/stable-diffusion-webui", ui="a1111").models:
            print(f.rel, f.kind, f.status)

Every operation takes the :class:`Context` first and returns a typed result; failures raise
:class:`SdlibError` (its ``exit_code`` is what the CLI would exit with).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from sdlib._version import __version__

if TYPE_CHECKING:
    from sdlib.config import Settings, load_settings
    from sdlib.download import UnfinishedDownload
    from sdlib.errors import SdlibError
    from sdlib.hashing import FileHashes, hash_file
    from sdlib.inspect import InspectReport, inspect_file
    from sdlib.install import FileChoice, InstallResult
    from sdlib.library.scan import FileReport, ScanResult
    from sdlib.services import Context
    from sdlib.services.account import whoami
    from sdlib.services.dedupe import dedupe_apply, dedupe_plan, dedupe_undo
    from sdlib.services.downloads import forget_download, resume_download, unfinished_downloads
    from sdlib.services.files import hash_path, inspect_path
    from sdlib.services.identify import IdentifyReport, identify_paths
    from sdlib.services.library import (
        check_updates,
        identify,
        organize_apply,
        organize_plan,
        organize_undo,
        scan,
        verify,
    )
    from sdlib.services.manifests import (
        export_library,
        install_manifest,
        load_manifest,
        write_export,
    )
    from sdlib.services.peek import RemoteInspection, RemoteTarget, inspect_remote
    from sdlib.services.refresh import WebuiRefresh, refresh_webuis
    from sdlib.services.remote import install, resolve, search, show
    from sdlib.services.seen import seen_by
    from sdlib.services.store import init_store, link_store, store_status, unlink_store
    from sdlib.services.transform import convert, merge
    from sdlib.services.trash import trash_paths
    from sdlib.services.verify import verify_paths
    from sdlib.sources.protocol import RemoteFile
    from sdlib.transform.convert import ConvertResult
    from sdlib.transform.merge import MergeResult

__all__ = [
    "Context",
    "ConvertResult",
    "FileChoice",
    "FileHashes",
    "FileReport",
    "IdentifyReport",
    "InspectReport",
    "InstallResult",
    "MergeResult",
    "RemoteFile",
    "RemoteInspection",
    "RemoteTarget",
    "ScanResult",
    "SdlibError",
    "Settings",
    "UnfinishedDownload",
    "WebuiRefresh",
    "__version__",
    "check_updates",
    "convert",
    "dedupe_apply",
    "dedupe_plan",
    "dedupe_undo",
    "export_library",
    "forget_download",
    "hash_file",
    "hash_path",
    "identify",
    "identify_paths",
    "init_store",
    "inspect_file",
    "inspect_path",
    "inspect_remote",
    "install",
    "install_manifest",
    "link_store",
    "load_manifest",
    "load_settings",
    "merge",
    "organize_apply",
    "organize_plan",
    "organize_undo",
    "refresh_webuis",
    "resolve",
    "resume_download",
    "scan",
    "search",
    "seen_by",
    "show",
    "store_status",
    "trash_paths",
    "unfinished_downloads",
    "unlink_store",
    "verify",
    "verify_paths",
    "whoami",
    "write_export",
]

_LAZY = {
    "Context": "sdlib.services",
    "ConvertResult": "sdlib.transform.convert",
    "FileChoice": "sdlib.install",
    "FileHashes": "sdlib.hashing",
    "FileReport": "sdlib.library.scan",
    "IdentifyReport": "sdlib.services.identify",
    "InspectReport": "sdlib.inspect",
    "InstallResult": "sdlib.install",
    "MergeResult": "sdlib.transform.merge",
    "RemoteFile": "sdlib.sources.protocol",
    "RemoteInspection": "sdlib.services.peek",
    "RemoteTarget": "sdlib.services.peek",
    "ScanResult": "sdlib.library.scan",
    "SdlibError": "sdlib.errors",
    "Settings": "sdlib.config",
    "UnfinishedDownload": "sdlib.download",
    "WebuiRefresh": "sdlib.services.refresh",
    "check_updates": "sdlib.services.library",
    "convert": "sdlib.services.transform",
    "dedupe_apply": "sdlib.services.dedupe",
    "dedupe_plan": "sdlib.services.dedupe",
    "dedupe_undo": "sdlib.services.dedupe",
    "forget_download": "sdlib.services.downloads",
    "export_library": "sdlib.services.manifests",
    "hash_file": "sdlib.hashing",
    "hash_path": "sdlib.services.files",
    "trash_paths": "sdlib.services.trash",
    "verify_paths": "sdlib.services.verify",
    "whoami": "sdlib.services.account",
    "inspect_path": "sdlib.services.files",
    "install_manifest": "sdlib.services.manifests",
    "load_manifest": "sdlib.services.manifests",
    "write_export": "sdlib.services.manifests",
    "identify": "sdlib.services.library",
    "identify_paths": "sdlib.services.identify",
    "inspect_file": "sdlib.inspect",
    "inspect_remote": "sdlib.services.peek",
    "install": "sdlib.services.remote",
    "load_settings": "sdlib.config",
    "merge": "sdlib.services.transform",
    "organize_apply": "sdlib.services.library",
    "organize_plan": "sdlib.services.library",
    "organize_undo": "sdlib.services.library",
    "refresh_webuis": "sdlib.services.refresh",
    "resolve": "sdlib.services.remote",
    "resume_download": "sdlib.services.downloads",
    "scan": "sdlib.services.library",
    "search": "sdlib.services.remote",
    "seen_by": "sdlib.services.seen",
    "show": "sdlib.services.remote",
    "unfinished_downloads": "sdlib.services.downloads",
    "init_store": "sdlib.services.store",
    "link_store": "sdlib.services.store",
    "store_status": "sdlib.services.store",
    "unlink_store": "sdlib.services.store",
    "verify": "sdlib.services.library",
}


#: Public functions named like a submodule of sdlib (``sdlib/install.py``).
_OVER_SUBMODULES = frozenset({"install"})


class _Package(types.ModuleType):
    """sdlib's module type: importing a submodule makes the import system set it as an
    attribute of the package, which would replace the public function of the same name
    (``sdlib.install`` became the module after the first install). Those stay functions;
    the submodules stay importable by their full name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OVER_SUBMODULES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sdlib' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
