"""Shared CLI plumbing: one error formatter, JSON output, rich consoles, progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sdlib.errors import SdlibError

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def handle_errors(func: F) -> F:
    """Turn SdlibError into one line on stderr and its exit code; Ctrl-C into 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SdlibError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            sys.stderr.close()  # e.g. `sdlib search x | head`: not an error worth a traceback
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    """Print ``sdlib: error: message`` to stderr and exit with ``code``."""
    click.echo(f"sdlib: error: {message}", err=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    """A rich Console (imported lazily: rich costs ~50 ms)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def human_size(n: int | float | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
