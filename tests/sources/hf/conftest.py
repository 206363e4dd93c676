"""Settings and clients pointing at the demo server's Hugging Face Hub."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from sdlib.config import HuggingfaceSettings, Settings
from sdlib.demo.server import DemoServer
from sdlib.sources.hf import HubClient

MakeHub = Callable[..., HubClient]


@pytest.fixture
def hub_settings(civitai: DemoServer, civitai_settings: Settings) -> Settings:
    """The session's demo server as the Hub (no token), tiny retry sleeps."""
    return replace(civitai_settings, huggingface=HuggingfaceSettings(endpoint=civitai.hub_url))


@pytest.fixture
def make_hub(hub_settings: Settings) -> Iterator[MakeHub]:
    """``make_hub(token=None, civitai_token=None)``: a HubClient over sdlib's own HTTP
    client, for the demo Hub."""
    clients: list[HubClient] = []

    def make(token: str | None = None, civitai_token: str | None = None) -> HubClient:
        settings = replace(
            hub_settings,
            huggingface=replace(hub_settings.huggingface, token=token),
            civitai=replace(hub_settings.civitai, token=civitai_token),
        )
        client = HubClient.from_settings(settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
