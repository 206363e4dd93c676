"""Making a webUI's refresh calls: best effort, one short try each, one line of outcome.

The caller hands in the ``httpx2`` client (the service context's webUI client: no retries,
no Civitai or Hub token). Each call uses the webUI's own timeout and its HTTP Basic
credentials, given per request so that they go to that webUI's URL and nowhere else; a
redirect is not followed (it could lead the credentials elsewhere). Bodies are never read:
the status says all.

A connection refused or timed out means the webUI is not running (or not there): the
remaining calls to it are skipped. A read timeout means the call was sent but not answered
in time: A1111's refresh calls wait for a running generation to finish (they take its queue
lock), so the webUI will usually refresh when it is done; the rest are skipped too. 401/403
and 404 are per call (``refresh-loras`` needs no ``--api`` and no login, the others do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

    from sdlib.config import WebuiSettings
    from sdlib.refresh.endpoints import Call, RefreshPlan

__all__ = ["STATUSES", "CallResult", "WebuiRefresh", "call_webui"]

#: What became of one call.
STATUSES = ("ok", "not-running", "timeout", "unauthorized", "not-found", "failed")


@dataclass(frozen=True)
class CallResult:
    call: Call
    #: One of ``STATUSES``.
    status: str
    #: The HTTP status, when the webUI answered.
    http_status: int | None = None
    #: A few words on what went wrong ("" when ok).
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.call.method, "path": self.call.path, "lists": self.call.lists,
            "status": self.status, "http_status": self.http_status, "detail": self.detail,
        }  # fmt: skip


@dataclass(frozen=True)
class WebuiRefresh:
    """What one configured webUI was asked and how it answered."""

    name: str
    ui: str
    url: str
    #: One per call made, in order; calls after a connection failure are not made.
    results: tuple[CallResult, ...] = ()
    #: Calls planned but not made (the webUI was found not running or busy before them).
    skipped: tuple[Call, ...] = ()
    #: Changes no call covers, in words (ComfyUI: "nothing to call: ...").
    caveats: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every planned call made and answered 2xx (a plan with none is ok too)."""
        return not self.skipped and all(r.status == "ok" for r in self.results)

    @property
    def refreshed(self) -> tuple[str, ...]:
        """The lists the webUI confirmed it rescanned."""
        return tuple(r.call.lists for r in self.results if r.status == "ok")

    def line(self) -> str:
        """One line for a terminal or a notification: what happened, and the fix if any."""
        parts: list[str] = []
        if self.refreshed:
            parts.append(f"refreshed {', '.join(self.refreshed)}")
        for r in self.results:
            if r.status != "ok":
                parts.append(r.detail)
        missed = [r.call for r in self.results if r.status == "not-running"] + list(self.skipped)
        if missed:
            parts.append(f"{', '.join(c.lists for c in missed)} not refreshed")
        parts += self.caveats
        return f"webui {self.name} ({self.url}): " + ("; ".join(parts) or "nothing to refresh")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "ui": self.ui, "url": self.url, "ok": self.ok,
            "calls": [r.to_dict() for r in self.results],
            "skipped": [c.path for c in self.skipped], "caveats": list(self.caveats),
        }  # fmt: skip


def call_webui(client: httpx2.Client, webui: WebuiSettings, plan: RefreshPlan) -> WebuiRefresh:
    """Make ``plan``'s calls to ``webui`` (never raises for anything the webUI does)."""
    import httpx2  # here: importing sdlib.services must not load the HTTP stack

    auth = httpx2.BasicAuth(webui.username, webui.password or "") if webui.username else None
    timeout = httpx2.Timeout(webui.timeout)
    results: list[CallResult] = []
    for i, call in enumerate(plan.calls):
        result = _one(client, webui.url + call.path, call, auth, timeout, webui)
        results.append(result)
        if result.status in ("not-running", "timeout"):
            skipped = plan.calls[i + 1 :]
            return WebuiRefresh(webui.name, webui.ui, webui.url, tuple(results),
                                skipped, plan.caveats)  # fmt: skip
    return WebuiRefresh(webui.name, webui.ui, webui.url, tuple(results), (), plan.caveats)


def _one(
    client: httpx2.Client, url: str, call: Call, auth: httpx2.BasicAuth | None,
    timeout: httpx2.Timeout, webui: WebuiSettings,
) -> CallResult:  # fmt: skip
    import httpx2

    seconds = f"{webui.timeout:g} s"
    try:
        with client.stream(call.method, url, auth=auth, timeout=timeout,
                           follow_redirects=False) as response:  # fmt: skip
            status = response.status_code
    except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
        why = "no answer" if isinstance(exc, httpx2.ConnectTimeout) else _refused(exc)
        return CallResult(call, "not-running", None, f"not running ({why})")
    except httpx2.TimeoutException:
        return CallResult(call, "timeout", None,
                          f"{_name(call)} sent, no answer within {seconds} (busy generating? "
                          "it refreshes when the generation ends)")  # fmt: skip
    except httpx2.HTTPError as exc:
        return CallResult(call, "failed", None, f"{_name(call)} failed: {type(exc).__name__}")
    if 200 <= status < 300:
        return CallResult(call, "ok", status)
    if status in (401, 403):
        fix = (f"check [webui.{webui.name}] username and password" if webui.username
               else f"set [webui.{webui.name}] username and password")  # fmt: skip
        return CallResult(call, "unauthorized", status,
                          f"{_name(call)} answered {status} (login needed: {fix})")  # fmt: skip
    if status == 404:
        return CallResult(
            call, "not-found", status, f"{_name(call)} answered 404 ({_why_404(call, webui.ui)})"
        )
    return CallResult(call, "failed", status, f"{_name(call)} answered HTTP {status}")


def _name(call: Call) -> str:
    return call.path.split("?")[0].rsplit("/", 1)[-1] or call.path


def _why_404(call: Call, ui: str) -> str:
    if ui == "sdnext":
        return "an SD.Next without this route?"
    if call.path.startswith("/controlnet/"):
        return "the sd-webui-controlnet extension is not installed?"
    if call.path.endswith("refresh-loras"):
        return "its built-in Lora extension is off?"
    if call.path.endswith("refresh-embeddings"):
        return "started without --api, or older than A1111 1.8?"
    return "started without --api?"


def _refused(exc: httpx2.HTTPError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "host not found"
    return "unreachable"
