"""The last resort: an exception nothing else handled becomes one line and a crash report.

A traceback is never the user interface. The report (full traceback, sdlib and Python
versions, platform, argv) goes to ``<cache dir>/crash-reports/``; the user sees
``sdlib: internal error: <Type>: <message> (report: <path>)`` and exit code 1.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from pathlib import Path

from sdlib._version import __version__

__all__ = ["crash_dir", "report_crash"]


def crash_dir() -> Path:
    """``crash-reports`` in the configured cache dir (the default one if the config is bad)."""
    try:
        from sdlib.config import load_settings

        cache = load_settings().cache_dir
    except Exception:  # the crash may be the config itself
        from sdlib.config import default_cache_dir

        cache = default_cache_dir()
    return cache / "crash-reports"


def report_crash(exc: BaseException) -> str:
    """Write a crash report for ``exc``; the one line to print (without a trailing newline)."""
    message = " ".join(str(exc).split())[:300]
    headline = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    try:
        where = _write(exc)
    except Exception as write_error:  # a read-only cache must not hide the crash
        note = f"no report written: {' '.join(str(write_error).split())[:120]}"
    else:
        note = f"report: {where}"
    return f"sdlib: internal error: {headline} ({note})"


def _write(exc: BaseException) -> Path:
    folder = crash_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = folder / f"crash-{stamp}-{os.getpid()}.txt"
    text = "".join(
        [
            f"sdlib {__version__}\n",
            f"python {sys.version.split()[0]} ({platform.python_implementation()})\n",
            f"platform {platform.platform()}\n",
            f"argv {sys.argv!r}\n",
            f"time {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n\n",
            *traceback.format_exception(type(exc), exc, exc.__traceback__),
        ]
    )
    path.write_text(text, encoding="utf-8", errors="backslashreplace")
    return path
