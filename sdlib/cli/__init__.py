"""The ``sdlib`` command line: a click group whose subcommands load only when used.

Each subcommand lives in its own module; ``_COMMANDS`` maps a command name to
``module:attribute``. Nothing here imports torch or textual.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from typing import Any

import click

from sdlib._version import __version__

_COMMANDS: dict[str, str] = {
    "hash": "sdlib.cli.hash_cmd:hash_cmd",
    "inspect": "sdlib.cli.inspect_cmd:inspect_cmd",
    "convert": "sdlib.cli.convert_cmd:convert_cmd",
    "merge": "sdlib.cli.merge_cmd:merge_cmd",
    "search": "sdlib.cli.civitai_cmds:search_cmd",
    "show": "sdlib.cli.civitai_cmds:show_cmd",
    "config": "sdlib.cli.config_cmd:config_group",
    "demo-server": "sdlib.cli.demo_server_cmd:demo_server_cmd",
    "download": "sdlib.cli.download_cmd:download_cmd",
    "downloads": "sdlib.cli.downloads_cmd:downloads_cmd",
    "install": "sdlib.cli.install_cmd:install_cmd",
    "export": "sdlib.cli.export_cmd:export_cmd",
    "tui": "sdlib.cli.tui_cmd:tui_cmd",
    "scan": "sdlib.cli.library_cmds:scan_cmd",
    "identify": "sdlib.cli.library_cmds:identify_cmd",
    "organize": "sdlib.cli.organize_cmd:organize_cmd",
    "dedupe": "sdlib.cli.dedupe_cmd:dedupe_cmd",
    "updates": "sdlib.cli.library_cmds:updates_cmd",
    "verify": "sdlib.cli.verify_cmd:verify_cmd",
    "trash": "sdlib.cli.trash_cmd:trash_cmd",
    "whoami": "sdlib.cli.whoami_cmd:whoami_cmd",
    "store": "sdlib.cli.store_cmd:store_group",
    "link": "sdlib.cli.store_cmd:link_cmd",
    "unlink": "sdlib.cli.store_cmd:unlink_cmd",
    "mirror": "sdlib.cli.mirror_cmd:mirror_group",
}


class LazyGroup(click.Group):
    #: False when called with ``standalone_mode=False`` (``run``, tests): exceptions propagate.
    _last_resort = True

    def main(self, *args: Any, **kwargs: Any) -> Any:
        self._last_resort = kwargs.get("standalone_mode", True)
        if self._last_resort:
            _tolerant_streams()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; what no command handled becomes one line (never a traceback)."""
        if not self._last_resort:
            return super().invoke(ctx)
        from sdlib.errors import SdlibError

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SdlibError as exc:  # a command without @handle_errors
            from sdlib.formatting import terminal_safe

            click.echo(f"sdlib: error: {terminal_safe(str(exc), newlines=False)}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("sdlib: error: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            from sdlib.cli._crash import report_crash
            from sdlib.formatting import terminal_safe

            click.echo(terminal_safe(report_crash(exc), newlines=False), err=True)
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not built yet
            raise
        command: click.Command = getattr(module, attr)
        return command


def _tolerant_streams() -> None:
    """A file name that is not UTF-8 reaches Python with lone surrogates; printing one must
    show it escaped (``\\udcff``, also valid inside JSON strings), never crash the command."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def _available(name: str) -> bool:
    module_name = _COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="sdlib")
def main() -> None:
    """sdlib: find, download, check and organize Stable Diffusion models.

    \b
    Examples:
      sdlib search dreamshaper --type checkpoint --base sd1
      sdlib inspect model.safetensors --explain
      sdlib hash *.safetensors --json

    Exit codes: 0 ok, 1 failure, 2 usage, 3 unsafe file refused, 4 hash or size mismatch,
    5 not found, 6 login or access needed, 7 network failure, 130 interrupted. Commands
    on many files report every file and exit non-zero if any failed. An unexpected error
    prints one line and writes a crash report under the cache dir.
    """


def run(argv: list[str] | None = None) -> Any:
    """Run the CLI in-process (tests); returns what click returns."""
    return main.main(args=argv, prog_name="sdlib", standalone_mode=False)
