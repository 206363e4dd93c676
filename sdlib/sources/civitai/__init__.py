"""Civitai, the first source: its API v1, its records, its references and its errors.

    with CivitaiClient.from_settings(load_settings()) as civitai:
        for model in civitai.search("dreamshaper", types=["Checkpoint"], limit=20):
            print(model.id, model.name)
        version = civitai.version(128713)
        target = civitai.resolve_download(version, format="SafeTensor")

Everything that knows Civitai's REST paths, JSON shapes, URL and AIR forms, image CDN or
error bodies lives here, over the injected client from ``sdlib.http``:

* ``CivitaiClient``: search, models, versions, by-hash lookups, download targets
  (``_client``);
* ``CivitaiModel``, ``CivitaiVersion``, ``CivitaiFile``, ``CivitaiImage``, ``SearchPage``,
  ``DownloadTarget``: tolerant, frozen records of its answers (``_models``, ``_fields``);
* ``parse_ref``: ids, ``model@version``, site and API URLs, AIR URNs (``_refs``);
* ``get_json`` / ``raise_for_status``: statuses and error bodies as sdlib errors, the
  mapper callers hand to the download engine for Civitai downloads (``_http``);
* ``fetch_preview`` / ``preview_url``: a preview, sized by the CDN, read with a cap
  (``_previews``);
* ``resolve_file``: a reference and a file choice as the install path's
  ``sdlib.sources.protocol.RemoteFile`` (``_files``);
* ``CivitaiLookup``: Civitai as the library's ``sdlib.lookup.Lookup`` (identity by hash,
  models for update checks, previews), cached per server and paced (``_lookup``, with the
  record-to-facts functions in ``_facts``).
"""

from __future__ import annotations

from sdlib.sources.civitai._account import CivitaiAccount, fetch_account
from sdlib.sources.civitai._choice import DownloadTarget, choose_file
from sdlib.sources.civitai._client import PERIODS, SORTS, CivitaiClient
from sdlib.sources.civitai._fields import RecommendedSettings
from sdlib.sources.civitai._files import remote_file, resolve_file
from sdlib.sources.civitai._http import MAX_JSON, get_json, parse_json, raise_for_status
from sdlib.sources.civitai._lookup import CivitaiLookup, RateLimiter
from sdlib.sources.civitai._models import (
    CivitaiFile,
    CivitaiImage,
    CivitaiModel,
    CivitaiVersion,
    SearchPage,
)
from sdlib.sources.civitai._previews import (
    MAX_PREVIEW_BYTES,
    PREVIEW_WIDTH,
    fetch_preview,
    preview_url,
)
from sdlib.sources.civitai._refs import CIVITAI_HOSTS, CivitaiRef, download_url, parse_ref

__all__ = [
    "CIVITAI_HOSTS",
    "MAX_JSON",
    "MAX_PREVIEW_BYTES",
    "PERIODS",
    "PREVIEW_WIDTH",
    "SORTS",
    "CivitaiAccount",
    "CivitaiClient",
    "CivitaiFile",
    "CivitaiImage",
    "CivitaiLookup",
    "CivitaiModel",
    "CivitaiRef",
    "CivitaiVersion",
    "DownloadTarget",
    "RateLimiter",
    "RecommendedSettings",
    "SearchPage",
    "choose_file",
    "download_url",
    "fetch_account",
    "fetch_preview",
    "get_json",
    "parse_json",
    "parse_ref",
    "preview_url",
    "raise_for_status",
    "remote_file",
    "resolve_file",
]
