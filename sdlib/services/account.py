"""Who sdlib talks to Civitai as (``sdlib whoami``): the token checked against the source.

Civitai treats a missing or wrong key as anonymous everywhere except a few endpoints, so a
typo in a key shows only when a download that needs a login fails. ``/api/v1/me`` answers
401 to anything but a valid key: that is the check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdlib.services._context import Context
    from sdlib.sources.civitai import CivitaiAccount

__all__ = ["Identity", "whoami"]

#: What each state can reach, said the same way by every face.
REACH = {
    "signed-in": (
        "search, model pages and public downloads",
        "downloads that need a login",
        "early-access versions the account has bought",
    ),
    "anonymous": ("search, model pages and public downloads",),
    "rejected": ("search, model pages and public downloads (as anonymous)",),
}


@dataclass(frozen=True)
class Identity:
    base_url: str
    #: signed-in, anonymous (no token) or rejected (the source refused the token).
    state: str
    #: The token masked (``abcd…yz``), and where it came from.
    token: str | None
    token_source: str | None
    account: CivitaiAccount | None = None
    #: The source's reason when it rejected the token.
    reason: str | None = None

    @property
    def can_reach(self) -> tuple[str, ...]:
        return REACH[self.state]

    def headline(self) -> str:
        """Whose the token is, as every face says it (``demo on https://civitai.com``); the
        account's name is the server's text: make it terminal-safe before showing it."""
        if self.state == "signed-in" and self.account is not None:
            name = self.account.username or f"user {self.account.id}"
            tier = f", {self.account.tier} tier" if self.account.tier else ""
            return f"{name} on {self.base_url}{tier}"
        if self.state == "anonymous":
            return f"no token: anonymous on {self.base_url}"
        return f"token rejected by {self.base_url}: anonymous"

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url, "state": self.state, "token": self.token,
            "token_source": self.token_source,
            "account": self.account.to_dict() if self.account else None,
            "reason": self.reason, "can_reach": list(self.can_reach),
        }  # fmt: skip


def whoami(ctx: Context) -> Identity:
    """Check the configured token against Civitai (``/api/v1/me``); with no token, check the
    source answers at all. Network failures raise (exit 7); a rejected token does not."""
    from sdlib.config import mask_token
    from sdlib.errors import AuthRequired
    from sdlib.sources.civitai import fetch_account

    settings = ctx.settings
    base = settings.civitai.base_url
    token = settings.civitai.token
    source = None
    if token:
        source = "environment (CIVITAI_TOKEN)" if os.environ.get("CIVITAI_TOKEN") else "config file"
    masked = mask_token(token)
    if not token:
        next(iter(ctx.civitai.search(limit=1)), None)  # does the source answer at all?
        return Identity(base, "anonymous", None, None)
    try:
        account = fetch_account(ctx.http, base)
    except AuthRequired as exc:
        return Identity(base, "rejected", masked, source, reason=exc.message)
    return Identity(base, "signed-in", masked, source, account)
