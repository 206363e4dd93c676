"""Run ``python -m sdlib ...`` in a subprocess, isolated from the developer's own setup.

Every test's environment already points sdlib's config, cache and data dirs at a temporary
folder (the autouse fixtures in ``tests/conftest.py``); ``isolated_env`` builds the same kind of
environment explicitly, for a test that wants its own dirs or runs outside a test function.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.paths import REPO

__all__ = ["DROPPED_ENV", "isolated_env", "private_dirs", "run_sdlib", "sdlib_argv"]

#: Variables that would let a test see the developer's tokens, Civitai or Hub URL, config, proxies
#: (and one that only slows the subprocesses down).
DROPPED_ENV = (
    "CIVITAI_TOKEN", "SDLIB_CIVITAI_URL", "SDLIB_CONFIG", "SDLIB_CACHE_DIR", "SDLIB_DATA_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
    "all_proxy", "no_proxy",
    # The Hugging Face Hub's endpoint and token (a developer's `hf auth login` lives in HF_HOME).
    "HF_ENDPOINT", "SDLIB_HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH",
    "HF_HOME",
    "SDLIB_CIVARCHIVE_URL",
    # The studio mirror and the S3 settings it reads (a developer's own AWS account).
    "SDLIB_MIRROR_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
    "AWS_DEFAULT_REGION",
    # Not a secret: with it set, every `python -m sdlib` the tests start compiles sdlib from
    # source again (about a tenth of a short command's CPU); without it they share __pycache__.
    "PYTHONDONTWRITEBYTECODE",
)  # fmt: skip


def private_dirs(base: Path) -> dict[str, str]:
    """sdlib's config file, cache and data dirs under ``base``; the XDG dirs too, so nothing
    that falls back to platformdirs (or send2trash) lands in the developer's home."""
    return {
        "SDLIB_CONFIG": str(base / "config" / "config.toml"),
        "SDLIB_CACHE_DIR": str(base / "cache"),
        "SDLIB_DATA_DIR": str(base / "data"),
        "XDG_CONFIG_HOME": str(base / "xdg-config"),
        "XDG_CACHE_HOME": str(base / "xdg-cache"),
        "XDG_DATA_HOME": str(base / "xdg-data"),
        # Never the developer's ~/.aws profiles.
        "AWS_CONFIG_FILE": str(base / "aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(base / "aws" / "credentials"),
    }


def isolated_env(base: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` without token, proxies or sdlib settings, with ``private_dirs(base)``,
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(private_dirs(base))
    env.update(extra)
    return env


def sdlib_argv(*args: str | os.PathLike[str]) -> list[str]:
    """The command line of ``python -m sdlib ARGS`` (for ``Popen``: a test that kills it)."""
    return [sys.executable, "-m", "sdlib", *map(os.fspath, args)]


def run_sdlib(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    encoding: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m sdlib ARGS`` with output captured as text.

    ``env`` defaults to this process's environment, which inside a test is already isolated;
    ``cwd`` to the repository root.
    """
    return subprocess.run(
        sdlib_argv(*args),
        env=dict(os.environ if env is None else env),
        input=input,
        capture_output=True,
        text=True,
        encoding=encoding,
        timeout=timeout,
        cwd=REPO if cwd is None else cwd,
    )
