"""``sdlib demo-server``: a local Civitai stand-in, to try every command offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sdlib.cli._common import emit_json, handle_errors, json_option

_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1 << 20, "mib": 1 << 20,
          "mb": 10**6, "g": 1 << 30, "gib": 1 << 30, "gb": 10**9}  # fmt: skip


def _parse_size(text: str) -> int:
    from sdlib.errors import UsageError

    raw = text.strip().lower().replace(" ", "")
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits) :]
    try:
        value = float(digits) * _UNITS[unit]
    except (ValueError, KeyError):
        raise UsageError(f"not a size: {text!r} (e.g. 1GiB, 500M, 1048576)") from None
    if value < 1024:
        # Smaller, and the safetensors header alone would not fit (the demo Hub's copy has
        # the same floor).
        raise UsageError("the large file must be at least 1 KiB")
    return int(value)


@click.command("demo-server")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="API port (0: any free port).",
)
@click.option(
    "--storage-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port of the file-storage host downloads redirect to (default: any).",
)
@click.option(
    "--hub-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the Hugging Face Hub stand-in (default: --port + 1; 0: any free port).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--files-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to generate the demo model files (default: <cache>/demo-server).",
)
@click.option(
    "--large-file",
    "large",
    metavar="SIZE",
    help="Also serve a generated file of SIZE (e.g. 1GiB) for download benchmarks "
    "(model 999001, version 999002).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="Start with a fault on, e.g. '429:times=2', '503:match=/api/v1/models', "
    "'drop:after_bytes=100000' (repeatable).",
)
@click.option(
    "--rate",
    type=click.IntRange(min=0),
    default=0,
    help="Cap each file transfer at this many bytes/s (0: no cap).",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not log requests to stderr.")
@json_option
@handle_errors
def demo_server_cmd(
    port: int,
    storage_port: int,
    hub_port: int | None,
    host: str,
    files_dir: Path | None,
    large: str | None,
    faults: tuple[str, ...],
    rate: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Serve a Civitai-compatible API with demo models, offline, until Ctrl-C.

    Point sdlib at it with the SDLIB_CIVITAI_URL, HF_ENDPOINT and SDLIB_CIVARCHIVE_URL lines
    it prints (a Hugging Face Hub stand-in with gated and renamed repos, and a CivArchive
    stand-in for models gone from Civitai). Tokens it accepts:
    demo-token (logged in) and demo-early-access (logged in, with early access).
    Faults can be switched at run time: GET /__admin/fault?kind=429&times=2,
    /__admin/reset, /__admin/log, /__admin/rate?bytes_per_second=N.

    \b
    Examples:
      sdlib demo-server
      export SDLIB_CIVITAI_URL=http://127.0.0.1:8765
      sdlib search dream; sdlib show 4384@128713
      sdlib demo-server --port 0 --large-file 1GiB --rate 50000000
    """  # fmt: skip
    from sdlib.demo.server import FAULT_KINDS, DemoServer, parse_fault
    from sdlib.errors import UsageError

    if files_dir is None:
        from sdlib.config import load_settings

        files_dir = load_settings().cache_dir / "demo-server"
    size = _parse_size(large) if large else None
    fault_args = []
    for spec in faults:
        kwargs = parse_fault(spec) if ":" in spec or spec in FAULT_KINDS else {"kind": spec}
        if kwargs["kind"] not in FAULT_KINDS:
            raise UsageError(f"--fault {spec!r}: unknown kind (one of: {', '.join(FAULT_KINDS)})")
        fault_args.append(kwargs)
    log = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    click.echo("Preparing demo files in " + str(files_dir) + " ...", err=True)
    try:
        server = DemoServer(
            files_dir,
            host=host,
            port=port,
            storage_port=storage_port,
            large_size=size,
            log_requests=log,
            hub_port=hub_port if hub_port is not None else (port + 1 if 0 < port < 65535 else 0),
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    for kwargs in fault_args:
        try:
            server.add_fault(kwargs.pop("kind"), **kwargs)
        except (ValueError, TypeError) as exc:
            server.stop()
            raise UsageError(f"--fault: {exc}") from None
    server.rate_limit = rate or None
    if as_json:
        env = {"SDLIB_CIVITAI_URL": server.url, "HF_ENDPOINT": server.hub_url,
               "SDLIB_CIVARCHIVE_URL": server.civarchive_url}  # fmt: skip
        emit_json({"url": server.url, "storage_url": server.storage_url,
                   "hub_url": server.hub_url, "hub_cdn_url": server.hub.cdn_url,
                   "env": env})  # fmt: skip
    else:
        click.echo(f"SDLIB_CIVITAI_URL={server.url}")
        click.echo(f"HF_ENDPOINT={server.hub_url}")
        click.echo(f"SDLIB_CIVARCHIVE_URL={server.civarchive_url}")
        click.echo(
            f"\nsdlib demo server: API {server.url}, storage {server.storage_url}\n"
            f"Use it from another shell:\n"
            f"  export SDLIB_CIVITAI_URL={server.url}\n"
            f"  sdlib search dream && sdlib show 4384@128713\n"
            f"Hugging Face Hub: {server.hub_url} (CDN {server.hub.cdn_url})\n"
            f"  export HF_ENDPOINT={server.hub_url}\n"
            f"  sdlib search --source hf lcm && sdlib show hf:stabilityai/sdxl-vae\n"
            f"  Hub tokens: hf_demo_token (granted gated repos), hf_demo_pending (not approved)\n"
            f"CivArchive: {server.civarchive_url} (models gone from Civitai)\n"
            f"  export SDLIB_CIVARCHIVE_URL={server.civarchive_url}\n"
            f"  sdlib download 7701@7702 --root DIR   (taken down; from a mirror)\n"
            f"Tokens: demo-token (logged in), demo-early-access (early access too)\n"
            f"Faults: curl '{server.url}/__admin/fault?kind=429&times=2' (reset: /__admin/reset)\n"
            f"Ctrl-C to stop.",
            err=True,
        )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
