"""Settings: defaults, then the TOML config file, then environment variables.

The file is ``$SDLIB_CONFIG`` or ``<user config dir>/sdlib/config.toml``.
Environment overrides: ``SDLIB_CIVITAI_URL``, ``CIVITAI_TOKEN``, ``SDLIB_CACHE_DIR``,
``SDLIB_DATA_DIR``; proxies come from the standard ``*_PROXY`` variables unless the file
sets ``[network] proxy``. The Hugging Face Hub is found as every HF tool finds it:
``SDLIB_HF_ENDPOINT`` or ``HF_ENDPOINT`` over ``[huggingface] endpoint``; its token is
``HF_TOKEN`` (or the older ``HUGGING_FACE_HUB_TOKEN``), else ``[huggingface] token``, else
the file ``hf auth login`` writes (``hub_token_path``). ``SDLIB_CIVARCHIVE_URL`` over
``[civarchive] base_url``. ``SDLIB_MIRROR_URL`` over ``[mirror] url``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sdlib.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CIVITAI_URL = "https://civitai.com"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
APP_NAME = "sdlib"


@dataclass(frozen=True)
class CivitaiSettings:
    base_url: str = DEFAULT_CIVITAI_URL
    token: str | None = None
    #: Show NSFW results and previews (Civitai defaults to SFW only).
    nsfw: bool = False


@dataclass(frozen=True)
class HuggingfaceSettings:
    #: The Hub, or a mirror speaking its API (HF_ENDPOINT). Pasted huggingface.co links are
    #: fetched from here too.
    endpoint: str = DEFAULT_HF_ENDPOINT
    #: A Hub access token (hf_...); only ever sent to ``endpoint``'s host.
    token: str | None = None


@dataclass(frozen=True)
class CivarchiveSettings:
    #: Look models gone from Civitai up on CivArchive (an unofficial archive) and download
    #: them from the mirrors it lists, verified against their SHA256.
    enabled: bool = True
    #: CivArchive's API. None: https://civarchive.com, asked only while ``[civitai] base_url``
    #: is civitai.com or civitai.red (it archives those; a demo or private server is not).
    base_url: str | None = None
    #: Seconds for each CivArchive request (no retries: it is a fallback, not the source).
    timeout: float = 5.0


@dataclass(frozen=True)
class NetworkSettings:
    #: http://, https://, socks5:// or socks5h:// (names resolved by the proxy). None: *_PROXY.
    proxy: str | None = None
    #: A PEM bundle to trust instead of the system's, e.g. a corporate proxy's CA.
    ca_bundle: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4
    #: Cap for exponential backoff between retries, seconds.
    backoff_max: float = 30.0


@dataclass(frozen=True)
class DownloadSettings:
    #: The most connections per file: a download starts with one and adds ranged ones only
    #: while each new one raises the total (``--connections N``: exactly N).
    connections: int = 4
    #: Files at least this large may be fetched over several connections.
    split_threshold_mib: int = 64
    #: Bytes per second, 0 for no limit.
    limit_rate: int = 0
    #: Seconds without a byte before a connection is considered stalled.
    stall_timeout: float = 60.0
    #: A download with no known size (none published, no Content-Length) stops past this.
    max_unknown_size_gib: int = 64


@dataclass(frozen=True)
class LibrarySettings:
    #: The webUI root (e.g. ~/stable-diffusion-webui); None to ask each time.
    root: str | None = None
    #: a1111, forge, reforge, sdnext, comfyui, stabilitymatrix, or auto.
    ui: str = "auto"
    #: Folder-name overrides per kind, e.g. {"lora": "models/Lora"}.
    folders: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreSettings:
    #: One model store several webUIs share (``sdlib store init DIR``); None: no store.
    path: str | None = None


@dataclass(frozen=True)
class MirrorSettings:
    """A studio mirror: content-addressed model files on S3-compatible storage or a plain
    HTTP server (``sdlib.mirror``). ``SDLIB_MIRROR_URL`` wins over ``url``; the S3 endpoint,
    region and credentials also come from the standard ``AWS_*`` variables and profiles."""

    #: ``s3://BUCKET/PREFIX`` or ``https://HOST/PREFIX/`` (read-only); None: no mirror.
    url: str | None = None
    #: The S3 API's address for a non-AWS server, e.g. ``http://nas.lan:8333``.
    endpoint_url: str | None = None
    region: str | None = None
    #: A profile in ``~/.aws/credentials`` / ``~/.aws/config`` (default: ``AWS_PROFILE``).
    profile: str | None = None
    #: Push verified upstream downloads to the mirror (needs an s3:// url and write access).
    publish: bool = False


#: The webUIs a ``[webui.NAME]`` table can describe (their refresh APIs differ).
WEBUI_KINDS = ("a1111", "forge", "reforge", "sdnext", "comfyui")


@dataclass(frozen=True)
class WebuiSettings:
    """A running webUI to tell about new files (``[webui.NAME]``); see ``sdlib.refresh``."""

    name: str
    #: Its address, e.g. http://127.0.0.1:7860 (credentials only ever go here).
    url: str
    #: a1111, forge, reforge, sdnext or comfyui (default: NAME, when it is one of those).
    ui: str = "a1111"
    #: HTTP Basic credentials: A1111's ``--api-auth user:pass``, SD.Next's ``--auth``.
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: Seconds for each refresh call (no retries: a UI that is not running is only noted).
    timeout: float = 2.0


@dataclass(frozen=True)
class Settings:
    civitai: CivitaiSettings = field(default_factory=CivitaiSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    library: LibrarySettings = field(default_factory=LibrarySettings)
    huggingface: HuggingfaceSettings = field(default_factory=HuggingfaceSettings)
    civarchive: CivarchiveSettings = field(default_factory=CivarchiveSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    mirror: MirrorSettings = field(default_factory=MirrorSettings)
    #: ``[webui.NAME]`` tables, in file order: running webUIs told to refresh after installs.
    webuis: tuple[WebuiSettings, ...] = ()
    cache_dir: Path = field(default_factory=lambda: _default_dir("cache"))
    data_dir: Path = field(default_factory=lambda: _default_dir("data"))
    config_path: Path | None = None


def _default_dir(kind: str) -> Path:
    env = os.environ.get(f"SDLIB_{kind.upper()}_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    if kind == "cache":
        return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    """``$SDLIB_CACHE_DIR`` or the platform's user cache dir (without reading the config)."""
    return _default_dir("cache")


def default_config_path() -> Path:
    env = os.environ.get("SDLIB_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


_SECTIONS: dict[str, type] = {
    "civitai": CivitaiSettings,
    "network": NetworkSettings,
    "download": DownloadSettings,
    "library": LibrarySettings,
    "huggingface": HuggingfaceSettings,
    "civarchive": CivarchiveSettings,
    "store": StoreSettings,
    "mirror": MirrorSettings,
}


def _section(cls: type, raw: Any, name: str, path: Path) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table", path=str(path))
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(
                f"unknown setting {name}.{key} (known: {', '.join(sorted(known))})",
                path=str(path),
            )
        values[key] = _typed(f"{name}.{key}", str(known[key].type), value, path)
    return cls(**values)


def _typed(key: str, annotation: str, value: Any, path: Path) -> Any:
    """``value`` if it has the type the setting's annotation names; else a ConfigError that
    names the key and the type (TOML says ``base_url = 5`` as readily as ``"5"``)."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{key} must be {expected}, not {_toml_type(value)}", path=str(path))

    if annotation == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if annotation in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        if annotation == "int":
            if not float(value).is_integer():
                raise bad("a whole number")
            return int(value)
        return float(value)
    if annotation.startswith("str"):  # str, str | None
        if not isinstance(value, str):
            raise bad('a string (in quotes: key = "value")')
        return value
    if annotation.startswith("Mapping[str, str]"):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad('a table of strings, e.g. { lora = "models/Lora" }')
        return value
    return value


def _toml_type(value: Any) -> str:
    """How TOML would name ``value``'s type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float" if math.isfinite(value) else f"{value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any) and apply environment overrides."""
    env = os.environ if env is None else env
    path = path or default_config_path()
    raw: dict[str, Any] = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config: {exc}", path=str(path)) from None
    settings = Settings(config_path=path)
    updates: dict[str, Any] = {}
    has_token = any(
        isinstance(raw.get(name), dict) and bool(raw[name].get("token"))
        for name in ("civitai", "huggingface")
    )
    if "webui" in raw:
        updates["webuis"] = _webuis(raw.pop("webui"), path)
        has_token = has_token or any(w.password for w in updates["webuis"])
    for name, cls in _SECTIONS.items():
        if name in raw:
            updates[name] = _section(cls, raw.pop(name), name, path)
    for key in ("cache_dir", "data_dir"):
        if key in raw:
            updates[key] = Path(_typed(key, "str", raw.pop(key), path)).expanduser()
    if raw:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(raw))}", path=str(path))
    settings = replace(settings, **updates)
    if has_token:
        _warn_if_shared(path)

    civitai = settings.civitai
    if env.get("SDLIB_CIVITAI_URL"):
        civitai = replace(civitai, base_url=env["SDLIB_CIVITAI_URL"])
    if env.get("CIVITAI_TOKEN"):
        civitai = replace(civitai, token=env["CIVITAI_TOKEN"])
    civitai = replace(civitai, base_url=civitai.base_url.rstrip("/"), token=civitai.token or None)
    if not civitai.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"civitai.base_url must be an http(s) URL, not {civitai.base_url!r}")
    return replace(settings, civitai=civitai, huggingface=_huggingface(settings.huggingface, env),
                   civarchive=_civarchive(settings.civarchive, env),
                   mirror=_mirror(settings.mirror, env))  # fmt: skip


def _mirror(mirror: MirrorSettings, env: Mapping[str, str]) -> MirrorSettings:
    url = (env.get("SDLIB_MIRROR_URL") or mirror.url or "").strip()
    if url and not url.startswith(("s3://", "http://", "https://")):
        raise ConfigError(f"mirror.url must be s3://BUCKET/PREFIX or an http(s) URL, not {url!r}")
    endpoint = (mirror.endpoint_url or "").strip().rstrip("/")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"mirror.endpoint_url must be an http(s) URL, not {endpoint!r}")
    return replace(mirror, url=url or None, endpoint_url=endpoint or None,
                   region=(mirror.region or "").strip() or None,
                   profile=(mirror.profile or "").strip() or None)  # fmt: skip


def _webuis(raw: Any, path: Path) -> tuple[WebuiSettings, ...]:
    """``[webui.NAME]`` tables: each needs ``url``; ``ui`` defaults to NAME when NAME is a
    webUI's name; credentials come as a pair."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(
            '[webui] holds one table per webUI: [webui.forge] url = "http://127.0.0.1:7860"',
            path=str(path),
        )
    out = []
    for name, table in raw.items():
        if "name" in table:
            raise ConfigError(f"unknown setting webui.{name}.name", path=str(path))
        if "url" not in table:
            raise ConfigError(f'webui.{name} needs a url, e.g. url = "http://127.0.0.1:7860"',
                              path=str(path))  # fmt: skip
        if "ui" not in table and name.lower() in WEBUI_KINDS:
            table = {**table, "ui": name.lower()}
        webui = replace(_section(WebuiSettings, {"name": name, **table}, f"webui.{name}", path),
                        name=name)  # fmt: skip
        out.append(_check_webui(webui, "ui" in table, path))
    return tuple(out)


def _check_webui(webui: WebuiSettings, has_ui: bool, path: Path) -> WebuiSettings:
    key = f"webui.{webui.name}"
    url = webui.url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or "@" in url.split("/")[2]:
        raise ConfigError(f"{key}.url must be an http(s) URL without credentials, not {url!r}",
                          path=str(path))  # fmt: skip
    if not has_ui:
        raise ConfigError(f"{key}: say which webUI it is: ui = one of {', '.join(WEBUI_KINDS)}",
                          path=str(path))  # fmt: skip
    ui = webui.ui.strip().lower()
    if ui not in WEBUI_KINDS:
        raise ConfigError(f"{key}.ui must be one of {', '.join(WEBUI_KINDS)}, not {webui.ui!r}",
                          path=str(path))  # fmt: skip
    if bool(webui.username) != bool(webui.password):
        raise ConfigError(f"{key}: username and password go together (HTTP Basic)",
                          path=str(path))  # fmt: skip
    if not math.isfinite(webui.timeout) or webui.timeout <= 0:
        raise ConfigError(f"{key}.timeout must be a positive number, not {webui.timeout}",
                          path=str(path))  # fmt: skip
    return replace(webui, url=url, ui=ui, username=webui.username or None,
                   password=webui.password or None)  # fmt: skip


def _civarchive(archive: CivarchiveSettings, env: Mapping[str, str]) -> CivarchiveSettings:
    url = (env.get("SDLIB_CIVARCHIVE_URL") or archive.base_url or "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"civarchive.base_url must be an http(s) URL, not {url!r}")
    if not math.isfinite(archive.timeout) or archive.timeout <= 0:
        raise ConfigError(f"civarchive.timeout must be a positive number, not {archive.timeout}")
    return replace(archive, base_url=url or None)


def _huggingface(hub: HuggingfaceSettings, env: Mapping[str, str]) -> HuggingfaceSettings:
    endpoint = env.get("SDLIB_HF_ENDPOINT") or env.get("HF_ENDPOINT") or hub.endpoint
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"huggingface.endpoint must be an http(s) URL, not {endpoint!r}")
    token = _clean(env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN")) or _clean(hub.token)
    if token is None:
        token = _clean(_read_small(hub_token_path(env)))
    return replace(hub, endpoint=endpoint, token=token)


def hub_token_path(env: Mapping[str, str] | None = None) -> Path:
    """Where ``hf auth login`` stores the token: ``$HF_TOKEN_PATH``, else ``$HF_HOME/token``,
    else ``$XDG_CACHE_HOME/huggingface/token`` or ``~/.cache/huggingface/token`` (as
    huggingface_hub's ``constants`` resolve them, on every OS)."""
    env = os.environ if env is None else env
    if env.get("HF_TOKEN_PATH"):
        return Path(env["HF_TOKEN_PATH"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "token"


def _read_small(path: Path) -> str | None:
    """A token file's text (at most 4 KiB read), or None if there is none to read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096)
    except OSError:
        return None


def _clean(token: str | None) -> str | None:
    """A token without the line breaks and spaces a file or a paste leaves; None if empty."""
    if not token:
        return None
    return token.replace("\r", "").replace("\n", "").strip() or None


_WARNED: set[str] = set()


def _warn_if_shared(path: Path) -> None:
    """One line on stderr (once per file and process) when a config holding a token can be
    read by the group or others: a token is a password to the user's Civitai or Hub account."""
    if os.name == "nt" or str(path) in _WARNED:
        return  # Windows has ACLs, not mode bits
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        _WARNED.add(str(path))
        sys.stderr.write(
            f"sdlib: warning: {path} holds a token and is readable by others "
            f"(mode {mode & 0o777:o}); run: chmod 600 {path}\n"
        )


def mask_token(token: str | None) -> str | None:
    """Show enough of a token to recognise it, never enough to use it."""
    if not token:
        return None
    if len(token) <= 8:
        return "*" * len(token)
    return f"{token[:4]}…{token[-2:]}"


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_token(path: Path, token: str | None) -> None:
    """Set (or with None, remove) ``[civitai] token`` in the config file, keeping the rest.

    The file is rewritten with 0600 permissions; comments and other settings survive.
    """
    if token is not None and (not token or any(c.isspace() or ord(c) < 32 for c in token)):
        raise ConfigError("a token cannot be empty or contain spaces or control characters")
    from sdlib.config_edit import save_values

    save_values(path, {"civitai": {"token": token}})
