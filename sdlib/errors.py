"""Every error sdlib raises on purpose.

Code above ``sources/`` never sees a foreign exception (httpx2, sqlite3, json...): each is
translated once, where it happens, into one of these. The CLI maps them to a one-line
message and an exit code; the TUI to a notification.

    SdlibError                      exit 1
    ├── UsageError                  exit 2  (a bad argument, reference or option)
    ├── ConfigError                 exit 2
    ├── FormatError                 exit 1  (a file is not what it claims, or is corrupt)
    ├── NonFiniteError              exit 1  (convert/merge output would hold NaN or Inf)
    ├── UnsafeFileError             exit 3  (a pickle that would run code)
    ├── SourceError                 exit 7  (a remote catalogue failed)
    │   ├── NotFound                exit 5
    │   ├── AuthRequired            exit 6
    │   ├── AccessDenied            exit 6  (early access, private, no permission)
    │   ├── Gone                    exit 5  (archived / taken down)
    │   ├── RateLimited             exit 7
    │   └── BadResponse             exit 7  (HTML where JSON was due, a malformed body)
    ├── DownloadError               exit 7
    │   ├── HashMismatch            exit 4
    │   └── DiskFull                exit 1
    ├── LibraryError                exit 1
    ├── ManifestError               exit 2
    └── Interrupted                 exit 130
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AccessDenied",
    "AuthRequired",
    "BadResponse",
    "ConfigError",
    "DiskFull",
    "DownloadError",
    "FormatError",
    "Gone",
    "HashMismatch",
    "Interrupted",
    "LibraryError",
    "ManifestError",
    "NonFiniteError",
    "NotFound",
    "RateLimited",
    "SdlibError",
    "SourceError",
    "UnsafeFileError",
    "UsageError",
]


class SdlibError(Exception):
    """Base of every error sdlib raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        if self.path and self.path not in self.message:
            return f"{self.path}: {self.message}"
        return self.message


class UsageError(SdlibError):
    """A bad command-line argument, model reference or option combination."""

    exit_code = 2


class ConfigError(SdlibError):
    """The configuration file or an environment override is invalid."""

    exit_code = 2


class FormatError(SdlibError):
    """A file is corrupt, truncated or not the container it claims to be."""

    exit_code = 1


class NonFiniteError(SdlibError):
    """A converted or merged model would hold NaN or Inf weights; ``tensors`` names them."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None, tensors: Sequence[str] = ()):
        super().__init__(message, path=path)
        self.tensors = tuple(tensors)


class UnsafeFileError(SdlibError):
    """A pickle whose scan found code execution; it is never loaded."""

    exit_code = 3

    def __init__(
        self, message: str, *, path: str | None = None, findings: Sequence[str] = ()
    ) -> None:
        super().__init__(message, path=path)
        self.findings = tuple(findings)


class SourceError(SdlibError):
    """A remote catalogue (Civitai) failed after retries, or answered nonsense."""

    exit_code = 7

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class NotFound(SourceError):
    exit_code = 5


class Gone(SourceError):
    """The model or version was archived or taken down (HTTP 410)."""

    exit_code = 5


class AuthRequired(SourceError):
    """The request needs a logged-in user: set CIVITAI_TOKEN or `sdlib config set-token`."""

    exit_code = 6


class AccessDenied(SourceError):
    """The user is known but may not access this (early access, private model)."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        early_access_ends: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.early_access_ends = early_access_ends


class RateLimited(SourceError):
    exit_code = 7

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class BadResponse(SourceError):
    """The server answered something that is not the JSON (or file) it should be."""

    exit_code = 7


class DownloadError(SdlibError):
    exit_code = 7


class HashMismatch(DownloadError):
    """Size or a hash of downloaded bytes differs from what the source published."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.expected = expected
        self.actual = actual


class DiskFull(DownloadError):
    exit_code = 1


class LibraryError(SdlibError):
    exit_code = 1


class ManifestError(SdlibError):
    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message, path=path)
        self.line = line

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        return f"{where}: {self.message}" if where else self.message


class Interrupted(SdlibError):
    exit_code = 130
