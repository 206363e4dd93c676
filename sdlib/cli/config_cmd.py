"""``sdlib config``: show the effective settings, get or set one, store the Civitai token,
print the path."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from sdlib.cli._common import emit_json, handle_errors, json_option


@click.group("config")
def config_group() -> None:
    """Show, get and set settings, and store the Civitai API token.

    Settings come from the config file (see `sdlib config path`), then environment
    variables: SDLIB_CONFIG (file location), SDLIB_CIVITAI_URL, CIVITAI_TOKEN, the standard
    HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY, SDLIB_CACHE_DIR and SDLIB_DATA_DIR.

    \b
    Examples:
      sdlib config show
      sdlib config set folders.lora models/Lora/civitai
      sdlib config get civitai.base_url
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
        "huggingface": {
            "endpoint": settings.huggingface.endpoint,
            "token": mask_token(settings.huggingface.token),
            "token_source": _source("huggingface.token", path)
            if settings.huggingface.token
            else None,
        },
        # Running webUIs told to refresh ([webui.NAME]); a password is never shown.
        "webui": {
            w.name: {
                "url": w.url,
                "ui": w.ui,
                "username": w.username,
                "password": "***" if w.password else None,
                "timeout": w.timeout,
            }
            for w in settings.webuis
        },
        # The studio mirror ([mirror]); its S3 credentials are never shown.
        "mirror": {
            **asdict(settings.mirror),
            "url_source": "environment (SDLIB_MIRROR_URL)"
            if os.environ.get("SDLIB_MIRROR_URL")
            else None,
        },
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
    for section in ("civitai", "network", "download", "library", "huggingface"):
        click.echo(f"[{section}]")
        for key, value in data[section].items():
            click.echo(f"{key} = {_show_value(value)}")
        click.echo()
    for name, webui in data["webui"].items():
        click.echo(f"[webui.{name}]")
        for key, value in webui.items():
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


@config_group.command("get")
@click.argument("key")
@json_option
@handle_errors
def get_cmd(key: str, as_json: bool) -> None:
    """Print one setting's effective value (the config file's, or the environment's).

    KEY is dotted as in config.example.toml: civitai.base_url, network.retries,
    library.root, folders.lora... An unset setting prints nothing (exit 0).

    \b
    Examples:
      sdlib config get civitai.base_url
      sdlib config get folders.lora --json
    """  # fmt: skip
    from sdlib.config import load_settings, mask_token
    from sdlib.config_edit import get_setting

    settings = load_settings()
    setting, value = get_setting(settings, key)
    if setting.name == "civitai.token":
        value = mask_token(settings.civitai.token)
    elif setting.name == "huggingface.token":
        value = mask_token(settings.huggingface.token)
    source = _source(setting.name, settings.config_path)
    if as_json:
        emit_json({"key": setting.name, "value": value, "source": source})
    elif value is not None:
        click.echo(_show_value(value))


_ENV = {
    "civitai.base_url": "SDLIB_CIVITAI_URL",
    "civitai.token": "CIVITAI_TOKEN",
    "huggingface.endpoint": "HF_ENDPOINT",
    "huggingface.token": "HF_TOKEN",
}
#: Every variable that sets these, in the order they are read (sdlib's own name for the
#: Hub's endpoint first; huggingface_hub's older token variable after HF_TOKEN).
_ENV_READ: dict[str, tuple[str, ...]] = {
    "huggingface.endpoint": ("SDLIB_HF_ENDPOINT", "HF_ENDPOINT"),
    "huggingface.token": ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
}


def _source(name: str, path: Any) -> str:
    """Where the effective value comes from: the environment, the config file or a default."""
    from sdlib.config_edit import in_file

    for variable in _ENV_READ.get(name, (_ENV.get(name, ""),)):
        if os.environ.get(variable):
            return f"environment ({variable})"
    if name == "huggingface.token" and not in_file(path, name):
        from sdlib.config import hub_token_path

        return f"hf auth login ({hub_token_path()})"
    return "config file" if in_file(path, name) else "default"


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@json_option
@handle_errors
def set_cmd(key: str, value: str, as_json: bool) -> None:
    """Set one setting in the config file, keeping its comments and everything else.

    KEY is dotted as in config.example.toml (civitai.base_url, network.retries,
    download.connections, library.root, library.ui, folders.lora...); VALUE is checked
    as the config file is when loaded: a wrong type is exit 2 with one line, and the file
    is left as it was. An empty VALUE removes a setting that may be unset (library.root,
    network.proxy...). The token has its own command: sdlib config set-token.

    \b
    Examples:
      sdlib config set library.root ~/stable-diffusion-webui
      sdlib config set folders.lora models/Lora/civitai
      sdlib config set network.retries 2 --json
    """  # fmt: skip
    from sdlib.config import default_config_path, load_settings
    from sdlib.config_edit import get_setting, save_setting

    path = default_config_path()
    setting, _ = save_setting(path, key, value)
    stored = get_setting(load_settings(path, env={}), setting.name)[1]  # the file's, not env's
    if as_json:
        emit_json({"key": setting.name, "value": stored, "path": str(path)})
        return
    click.echo(f"{setting.name} = {_show_value(stored)} saved to {path}")
    env = _ENV.get(setting.name)
    if env and os.environ.get(env):
        click.echo(f"note: {env} is set in the environment and overrides it", err=True)


@config_group.command("set-token")
@click.argument("token", required=False)
@click.option("--remove", is_flag=True, help="Remove the stored token instead.")
@json_option
@handle_errors
def set_token_cmd(token: str | None, remove: bool, as_json: bool) -> None:
    """Store the Civitai API token in the config file (readable only by you).

    Without TOKEN, asks for it without echoing (or reads one line from a pipe). Create a key at
    https://civitai.com/user/account (API Keys). CIVITAI_TOKEN, when set, still wins.

    \b
    Examples:
      sdlib config set-token
      pass show civitai | sdlib config set-token
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
    if token is None and not sys.stdin.isatty():
        # `echo KEY | sdlib config set-token`: getpass would warn that it cannot hide input
        # it was never going to show.
        token = sys.stdin.readline()
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
