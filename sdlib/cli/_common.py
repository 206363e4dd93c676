"""Shared CLI plumbing: one error formatter, JSON output, rich consoles, the service context
with retry notices, and tables that become one record per line through a pipe."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from sdlib.errors import SdlibError
from sdlib.formatting import human_size, terminal_safe

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "cli_context", "console", "echo_err", "emit_json", "fail", "handle_errors", "human_size",
    "json_option", "retry_notice",
]  # fmt: skip

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
    click.echo(f"sdlib: error: {terminal_safe(message, newlines=False)}", err=True)
    sys.exit(code)


def echo_err(line: str) -> None:
    """One line to stderr, terminal-safe: it often holds a file name or a server message."""
    click.echo(terminal_safe(line, newlines=False), err=True)


def emit_json(data: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def console(stderr: bool = False) -> Any:
    """A rich Console (imported lazily: rich costs ~50 ms) that prints text terminal-safe.

    Every text segment passes through :func:`sdlib.formatting.terminal_safe` on its way out,
    so a model name, description or file name cannot move the cursor, clear the screen,
    retitle the window or reorder what is shown; rich's own control segments (progress
    redraws) pass as they are. ``--json`` does not come through here and stays exact.
    """
    return _safe_console_class()(stderr=stderr, highlight=False, soft_wrap=True)


@functools.cache
def _safe_console_class() -> Any:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        def render_str(self, text: str, **kwargs: Any) -> Any:
            # Every str rich renders (print arguments, table cells...) comes through here:
            # whole sequences go before rich drops BEL or styles and wrapping split them up.
            return super().render_str(terminal_safe(text), **kwargs)

        def render(self, renderable: Any, options: Any = None) -> Any:
            for segment in super().render(renderable, options):
                text = segment.text
                if segment.control or (text.isascii() and text.isprintable()) or text == "\n":
                    yield segment
                else:
                    yield Segment(terminal_safe(text), segment.style, segment.control)

    return SafeConsole


def retry_notice(notice: Any) -> None:
    """One stderr line per HTTP retry, before its wait (``127.0.0.1:9 refused; retry 1 of 4
    in 1 s``): an unreachable server is said at once, not after the back-off is spent."""
    echo_err(f"sdlib: {notice}")


def cli_context(settings: Any = None) -> Any:
    """The service context for one command (settings from the config file when None), its
    HTTP retries announced on stderr."""
    from sdlib.services import Context

    return Context(settings, on_retry=retry_notice)
