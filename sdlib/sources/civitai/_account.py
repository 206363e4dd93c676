"""Who a Civitai API key belongs to: ``GET /api/v1/me`` (401 without a valid key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2

from sdlib.errors import BadResponse
from sdlib.sources.civitai._http import get_json

__all__ = ["CivitaiAccount", "fetch_account"]


@dataclass(frozen=True)
class CivitaiAccount:
    """The account behind a key, as ``/api/v1/me`` describes it (fields may be missing)."""

    id: int | None
    username: str | None
    #: The membership tier (None for a free account).
    tier: str | None
    status: str | None

    @classmethod
    def from_json(cls, data: Any, url: str | None = None) -> CivitaiAccount:
        if not isinstance(data, dict):
            raise BadResponse("Civitai's /api/v1/me answered something other than an object",
                              url=url)  # fmt: skip

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        raw_id = data.get("id")
        ident = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        return cls(ident, text("username"), text("tier"), text("status"))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "tier": self.tier,
                "status": self.status}  # fmt: skip


def fetch_account(client: httpx2.Client, base_url: str = "https://civitai.com") -> CivitaiAccount:
    """The account the client's token belongs to; ``AuthRequired`` (exit 6) when the server
    rejects the token or none is sent."""
    url = f"{base_url.rstrip('/')}/api/v1/me"
    return CivitaiAccount.from_json(get_json(client, url), url)
