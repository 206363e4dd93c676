"""The Hugging Face Hub, the second source: references, repo info, files, search, resolving.

    with HubClient.from_settings(load_settings()) as hub:
        for model in hub.search("sdxl", types=["lora"], sort="downloads", limit=10):
            print(model.id, model.downloads)
        repo = hub.repo("hf:stable-diffusion-v1-5/stable-diffusion-v1-5")
        target = hub.resolve("https://huggingface.co/stabilityai/sdxl-vae/blob/main/sdxl_vae.safetensors")
        target.url, target.sha256, target.size, target.commit   # what a verified download needs

sdlib speaks the Hub's REST API over its own HTTP client (``sdlib.http``: proxies, retries,
bounded bodies, the token sent to the configured endpoint only), not through
huggingface_hub. Everything that knows the Hub's paths, JSON shapes, URL forms and error
headers lives here:

* ``parse_hub_ref``, ``HubRef``: ``hf:ORG/REPO[@REV][/PATH]`` and every link the Hub's
  pages give, fetched through the configured endpoint (``_refs``);
* ``HubClient``: model info, recursive tree listings, Link-paged search, and ``resolve``,
  which turns a reference into a ``HubDownload`` (resolve URL pinned to the commit, name,
  size, sha256, commit, gated state) (``_client``);
* ``HubModel``, ``HubFile``, ``HubRepo``, ``HubDownload``: frozen records (``_models``);
* ``guess_file``: what a file likely is from its name, folder and the repo's tags, labelled
  a guess (``_guess``);
* ``hub_query``: sdlib's ``--type``/``--base``/``--sort`` words as Hub filters (``_search``);
* ``raise_for_hub``: the Hub's ``X-Error-Code`` answers as sdlib errors (``_http``);
* ``resolve_file``: a reference as the install path's ``sdlib.sources.protocol.RemoteFile``,
  with the bytes' place in the user's Hugging Face cache if they are there (``_files``).
"""

from __future__ import annotations

from sdlib.sources.hf._client import DEFAULT_ENDPOINT, HubClient, card_summary, pick
from sdlib.sources.hf._files import cached_blob, hub_cache_dir, remote_file, resolve_file
from sdlib.sources.hf._guess import (
    CANDIDATE_EXTENSIONS,
    DIFFUSERS_COMPONENTS,
    FileGuess,
    base_of_tags,
    guess_file,
    is_candidate,
)
from sdlib.sources.hf._http import HubTarget, raise_for_hub
from sdlib.sources.hf._models import HubDownload, HubFile, HubModel, HubRepo
from sdlib.sources.hf._refs import (
    HUB_HOSTS,
    HubRef,
    is_hub_ref,
    local_name,
    parse_hub_ref,
    repo_page_url,
    resolve_url,
)
from sdlib.sources.hf._search import BASE_REPOS, SORTS, TYPES, hub_query

__all__ = [
    "BASE_REPOS",
    "CANDIDATE_EXTENSIONS",
    "DEFAULT_ENDPOINT",
    "DIFFUSERS_COMPONENTS",
    "HUB_HOSTS",
    "SORTS",
    "TYPES",
    "FileGuess",
    "HubClient",
    "HubDownload",
    "HubFile",
    "HubModel",
    "HubRef",
    "HubRepo",
    "HubTarget",
    "base_of_tags",
    "cached_blob",
    "card_summary",
    "guess_file",
    "hub_cache_dir",
    "hub_query",
    "is_candidate",
    "is_hub_ref",
    "local_name",
    "parse_hub_ref",
    "pick",
    "raise_for_hub",
    "remote_file",
    "repo_page_url",
    "resolve_file",
    "resolve_url",
]
