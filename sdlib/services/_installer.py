"""The installer every face gets from :meth:`Context.installer`: sdlib's ``Installer``, which
also hands each finished install to ``record`` (the library index), whichever face ran it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sdlib.install import Installer, InstallResult

__all__ = ["RecordingInstaller"]


@dataclass
class RecordingInstaller(Installer):
    #: Called with every result ``install`` returns (downloaded or already present).
    record: Callable[[InstallResult], None] | None = None

    def install(self, ref: str, *args: Any, **kwargs: Any) -> InstallResult:
        result = super().install(ref, *args, **kwargs)
        if self.record is not None:
            self.record(result)
        return result
