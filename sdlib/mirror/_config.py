"""Where the mirror is and how to reach it: ``[mirror]`` plus the standard AWS variables.

Precedence follows the AWS SDKs, with ``[mirror]`` as the explicit client setting:
endpoint ``[mirror] endpoint_url`` > ``AWS_ENDPOINT_URL_S3`` > ``AWS_ENDPOINT_URL`` > the
profile's ``endpoint_url``; region ``[mirror] region`` > ``AWS_REGION`` >
``AWS_DEFAULT_REGION`` > the profile's > ``us-east-1``; credentials: a profile named in
``[mirror] profile``, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and
``AWS_SESSION_TOKEN``), else the ``AWS_PROFILE`` (or ``default``) profile of
``~/.aws/credentials`` and ``~/.aws/config``; none at all: anonymous (unsigned) requests.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from sdlib.config import Settings
from sdlib.errors import ConfigError

__all__ = ["Credentials", "MirrorConfig"]

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MirrorConfig:
    """One mirror's address and access, resolved from ``Settings`` and the environment."""

    #: ``s3://BUCKET/PREFIX`` or ``https://HOST/PREFIX/``.
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    publish: bool = False
    #: None: anonymous requests (a public-read bucket).
    credentials: Credentials | None = field(default=None, repr=False)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc if self.is_s3 else ""

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket (S3) or the URL's path (HTTP), without slashes
        at either end; "" for the bucket's root."""
        return urlsplit(self.url).path.strip("/")

    @property
    def allow_http(self) -> bool:
        """A plain ``http://`` endpoint (a LAN server, a test server) needs no flag."""
        return bool(self.endpoint_url and self.endpoint_url.startswith("http://"))

    def base_url(self) -> str:
        """Where keys are fetched over plain HTTP, ending in ``/``: the HTTP mirror's URL, or
        the bucket path-style on the endpoint (virtual-hosted on AWS itself)."""
        if not self.is_s3:
            return self.url.rstrip("/") + "/"
        prefix = f"{quote(self.prefix)}/" if self.prefix else ""
        if self.endpoint_url:
            return f"{self.endpoint_url}/{quote(self.bucket)}/{prefix}"
        region = self.region or DEFAULT_REGION
        return f"https://{self.bucket}.s3.{region}.amazonaws.com/{prefix}"

    def shown(self) -> str:
        """The URL for messages (never a credential)."""
        return self.url

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> MirrorConfig | None:
        """None when no mirror is configured; ConfigError for a malformed one."""
        env = os.environ if env is None else env
        ms = settings.mirror
        if not ms.url:
            return None
        url = ms.url
        if url.startswith("s3://"):
            parts = urlsplit(url)
            if not parts.netloc or parts.query or parts.fragment:
                raise ConfigError(f"mirror.url must be s3://BUCKET/PREFIX, not {url!r}")
            profile_name = ms.profile or env.get("AWS_PROFILE") or "default"
            profile = _profile(
                profile_name, env, explicit=bool(ms.profile or env.get("AWS_PROFILE"))
            )
            endpoint = (
                ms.endpoint_url
                or env.get("AWS_ENDPOINT_URL_S3")
                or env.get("AWS_ENDPOINT_URL")
                or profile.get("endpoint_url")
                or None
            )
            if endpoint:
                endpoint = endpoint.strip().rstrip("/")
                if not endpoint.startswith(("http://", "https://")):
                    raise ConfigError(f"the S3 endpoint must be an http(s) URL, not {endpoint!r}")
            region = (
                ms.region
                or env.get("AWS_REGION")
                or env.get("AWS_DEFAULT_REGION")
                or profile.get("region")
                or DEFAULT_REGION
            )
            creds = _credentials(env, profile, profile_first=bool(ms.profile))
            return cls(url=url.rstrip("/"), endpoint_url=endpoint, region=region,
                       profile=profile_name, publish=ms.publish, credentials=creds)  # fmt: skip
        parts = urlsplit(url)
        if not parts.netloc or "@" in parts.netloc:
            raise ConfigError(f"mirror.url must be an http(s) URL without credentials, not {url!r}")
        if ms.publish:
            raise ConfigError("mirror.publish needs an s3:// url: an HTTP mirror is read-only")
        return cls(url=url.rstrip("/") + "/")


def _credentials(
    env: Mapping[str, str], profile: Mapping[str, str], *, profile_first: bool
) -> Credentials | None:
    from_env = None
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        from_env = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                               env.get("AWS_SESSION_TOKEN") or None)  # fmt: skip
    from_profile = None
    if profile.get("aws_access_key_id") and profile.get("aws_secret_access_key"):
        from_profile = Credentials(profile["aws_access_key_id"], profile["aws_secret_access_key"],
                                   profile.get("aws_session_token") or None)  # fmt: skip
    if profile_first:
        return from_profile or from_env
    return from_env or from_profile


def _profile(name: str, env: Mapping[str, str], *, explicit: bool) -> dict[str, str]:
    """The named profile's keys from the shared credentials file and the config file
    (credentials win); ConfigError when a profile asked for by name exists in neither."""
    home = Path(env.get("HOME") or env.get("USERPROFILE") or os.path.expanduser("~"))
    creds_file = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    config_file = Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config")
    found = False
    out: dict[str, str] = {}
    config_section = name if name == "default" else f"profile {name}"
    for path, section in ((config_file, config_section), (creds_file, name)):
        parser = _read_ini(path)
        if parser is not None and parser.has_section(section):
            found = True
            out.update({k.lower(): v.strip() for k, v in parser.items(section)})
    if explicit and not found and name != "default":
        raise ConfigError(f"AWS profile {name!r} is in neither {creds_file} nor {config_file}")
    return out


def _read_ini(path: Path) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return parser
