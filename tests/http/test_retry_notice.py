"""Every HTTP retry is announced before its wait: ``on_retry`` in the client, one stderr line in
the CLI, so an unreachable server is said at once instead of after the whole back-off."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from typing import Any

import httpx2
import pytest

from sdlib.config import NetworkSettings, Settings
from sdlib.http import RetryNotice, RetryTransport, build_client


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(handler: Any, notices: list[RetryNotice], retries: int = 3) -> httpx2.Client:
    settings = replace(Settings(), network=NetworkSettings(retries=retries, backoff_max=30))
    return build_client(
        settings, httpx2.MockTransport(handler), sleep=lambda _s: None, on_retry=notices.append
    )


def test_a_refused_connection_is_announced_per_retry() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    notices: list[RetryNotice] = []
    with _client(refuse, notices) as http, pytest.raises(httpx2.ConnectError):
        http.get("http://127.0.0.1:9/api/v1/models")
    assert [(n.host, n.reason, n.attempt, n.of) for n in notices] == [
        ("127.0.0.1:9", "refused", 1, 3),
        ("127.0.0.1:9", "refused", 2, 3),
        ("127.0.0.1:9", "refused", 3, 3),
    ]
    # 1 s, 2 s, 4 s with at most 10 % jitter
    for notice, base in zip(notices, (1, 2, 4), strict=True):
        assert base <= notice.delay <= base * 1.1
    assert str(notices[1]).startswith("127.0.0.1:9 refused; retry 2 of 3 in 2 s")


def test_a_busy_server_names_its_status_and_retry_after() -> None:
    answers = iter([503, 429, 200])

    def busy(request: httpx2.Request) -> httpx2.Response:
        status = next(answers)
        return httpx2.Response(status, headers={"Retry-After": "7"} if status == 429 else {})

    notices: list[RetryNotice] = []
    with _client(busy, notices) as http:
        assert http.get("https://civitai.com/api/v1/models").status_code == 200
    assert [(n.host, n.reason, n.attempt) for n in notices] == [
        ("civitai.com", "answered HTTP 503", 1),
        ("civitai.com", "answered HTTP 429", 2),
    ]
    assert notices[1].delay == 7  # Retry-After, not the exponential wait


def test_a_failing_callback_never_breaks_the_request() -> None:
    calls = []

    def flaky(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(503 if len(calls) == 1 else 200)

    def broken(_notice: RetryNotice) -> None:
        raise RuntimeError("a display that failed")

    transport = RetryTransport(httpx2.MockTransport(flaky), sleep=lambda _s: None, on_retry=broken)
    with httpx2.Client(transport=transport) as http:
        assert http.get("http://example.invalid/").status_code == 200


@pytest.mark.slow
def test_cli_says_an_unreachable_server_at_once(run_cli: Any) -> None:
    """``sdlib search`` against a closed port: a line per retry on stderr, then exit 7; the
    first line comes long before the back-off is over (it was silent for 16 s)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    out = run_cli("search", "x", env={"SDLIB_CIVITAI_URL": url})
    assert out.returncode == 7, out.stderr
    lines = out.stderr.splitlines()
    host = url.removeprefix("http://")
    assert lines[:2] == [
        f"sdlib: {host} refused; retry 1 of 2 in 0 s",
        f"sdlib: {host} refused; retry 2 of 2 in 0 s",
    ]
    assert lines[2].startswith("sdlib: error: cannot connect to 127.0.0.1")
    assert out.stdout == ""
    assert time.monotonic() - began < 30
