"""``sdlib config``: show the effective settings, store the Civitai token, print the path."""

from __future__ import annotations

import os
from typing import Any

import click

from sdlib.cli._common import emit_json, handle_errors, json_option


@click.group("config")
def config_group() -> None:
    """Show settings and store the Civitai API token.

    Settings come from the config file (see `sdlib config path`), then environment
    variables: SDLIB_CONFIG (file location), SDLIB_CIVITAI_URL, CIVITAI_TOKEN, the standard
    HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY, SDLIB_CACHE_DIR and SDLIB_DATA_DIR.

    \b
    Examples:
      sdlib config show
      sdlib config set-token          # prompts without echo
      sdlib config path
    """  # fmt: skip


def _effective() -> dict[str, Any]:
    from dataclasses import asdict

    from sdlib.config import load_settings, mask_token
    from sdlib.http import USER_AGENT

    settings = load_settings()
    env_token = os.environ.get("CIVITAI_TOKEN")
    source = None
    if settings.civitai.token:
        source = "environment (CIVITAI_TOKEN)" if env_token else "config file"
    civitai = asdict(settings.civitai)
    civitai["token"] = mask_token(settings.civitai.token)
    civitai["token_source"] = source
    if os.environ.get("SDLIB_CIVITAI_URL"):
        civitai["base_url_source"] = "environment (SDLIB_CIVITAI_URL)"
    network = asdict(settings.network)
    network["user_agent"] = USER_AGENT
    if settings.network.proxy is None:
        names = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        env = {k: _mask_url(v) for k, v in os.environ.items() if k.lower() in names and v}
        network["proxy_from_environment"] = env or None
    else:
        network["proxy"] = _mask_url(settings.network.proxy)
    path = settings.config_path
    return {
        "config_path": str(path) if path else None,
        "config_exists": bool(path and path.is_file()),
        "civitai": civitai,
        "network": network,
        "download": asdict(settings.download),
        "library": {**asdict(settings.library), "folders": dict(settings.library.folders)},
        "cache_dir": str(settings.cache_dir),
        "data_dir": str(settings.data_dir),
    }


def _mask_url(url: str) -> str:
    """Hide a password in ``scheme://user:pass@host``."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


@config_group.command("show")
@json_option
@handle_errors
def show_cmd(as_json: bool) -> None:
    """Print the effective settings (the token masked).

    \b
    Example:
      sdlib config show --json
    """  # fmt: skip
    data = _effective()
    if as_json:
        emit_json(data)
        return
    click.echo(f"# {data['config_path']}" + ("" if data["config_exists"] else " (not created yet)"))
    for section in ("civitai", "network", "download", "library"):
        click.echo(f"[{section}]")
        for key, value in data[section].items():
            click.echo(f"{key} = {_show_value(value)}")
        click.echo()
    click.echo(f"cache_dir = {data['cache_dir']}")
    click.echo(f"data_dir = {data['data_dir']}")


def _show_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "{}"
    return str(value)


@config_group.command("set-token")
@click.argument("token", required=False)
@click.option("--remove", is_flag=True, help="Remove the stored token instead.")
@json_option
@handle_errors
def set_token_cmd(token: str | None, remove: bool, as_json: bool) -> None:
    """Store the Civitai API token in the config file (readable only by you).

    Without TOKEN, asks for it without echoing. Create a key at
    https://civitai.com/user/account (API Keys). CIVITAI_TOKEN, when set, still wins.

    \b
    Examples:
      sdlib config set-token
      sdlib config set-token --remove
    """  # fmt: skip
    from sdlib.config import default_config_path, mask_token, save_token
    from sdlib.errors import UsageError

    path = default_config_path()
    if remove:
        if token:
            raise UsageError("give either a TOKEN or --remove, not both")
        save_token(path, None)
        if as_json:
            emit_json({"path": str(path), "token": None})
        else:
            click.echo(f"Token removed from {path}")
        return
    if token is None:
        token = click.prompt("Civitai API token", hide_input=True, err=True).strip()
    token = token.strip()
    if not token:
        raise UsageError("the token is empty")
    save_token(path, token)
    if as_json:
        emit_json({"path": str(path), "token": mask_token(token)})
        return
    click.echo(f"Token {mask_token(token)} saved to {path} (permissions 0600)")
    if os.environ.get("CIVITAI_TOKEN"):
        click.echo("note: CIVITAI_TOKEN is set in the environment and overrides it", err=True)


@config_group.command("path")
@json_option
@handle_errors
def path_cmd(as_json: bool) -> None:
    """Print where the config file is (or would be).

    \b
    Example:
      sdlib config path
    """  # fmt: skip
    from sdlib.config import default_config_path

    path = default_config_path()
    if as_json:
        emit_json({"path": str(path), "exists": path.is_file()})
    else:
        click.echo(str(path))
