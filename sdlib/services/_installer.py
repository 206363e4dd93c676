"""The installer every face gets from :meth:`Context.installer`: sdlib's ``Installer``, which
also hands each finished install to ``record`` (the library index), whichever face ran it,
and asks ``fallback`` (CivArchive, ``sdlib.services.fallback``) when Civitai says a
reference is gone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sdlib.errors import SourceError
from sdlib.install import Installer, InstallResult
from sdlib.sources.protocol import ANY_FILE, FileChoice, RemoteFile

__all__ = ["RecordingInstaller"]


@dataclass
class RecordingInstaller(Installer):
    #: Called with every result ``install`` returns (downloaded or already present).
    record: Callable[[InstallResult], None] | None = None
    #: Asked with the reference, the file choice and Civitai's error when resolving fails:
    #: a file from elsewhere, or None to let the error stand.
    fallback: Callable[[str, FileChoice, SourceError], RemoteFile | None] | None = None

    def resolve(self, ref: str, choice: FileChoice = ANY_FILE) -> RemoteFile:
        try:
            return super().resolve(ref, choice)
        except SourceError as exc:
            found = self.fallback(ref, choice, exc) if self.fallback is not None else None
            if found is None:
                raise
            return found

    def install(self, ref: str, *args: Any, **kwargs: Any) -> InstallResult:
        result = super().install(ref, *args, **kwargs)
        if self.record is not None:
            self.record(result)
        return result
