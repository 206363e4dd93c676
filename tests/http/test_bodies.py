"""Capped streaming reads and bounded JSON parsing (``sdlib.http``).

Expected values: the stdlib's own ``json.loads``/``gzip``/``zlib`` on bytes built here, and
the real recorded Civitai answers in shared/reference/samples.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator

import httpx2
import pytest

from sdlib.errors import BadResponse
from sdlib.http import (
    HEAD,
    MAX_DEPTH,
    HostileJSON,
    challenge_of,
    loads_bounded,
    read_capped,
)
from tests.support.hostile import Answer, HostileServer, endless, gzip_bomb
from tests.support.paths import SAMPLES


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


def _read(server: HostileServer, path: str, limit: int) -> tuple[bytes, bool]:
    with httpx2.Client() as client, client.stream("GET", server.url + path) as response:
        return read_capped(response, limit)


# --- JSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["civitai-model.json", "civitai-model-version.json",
                                  "civitai-images.json"])  # fmt: skip
def test_real_answers_parse_as_the_stdlib_does(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()
    assert loads_bounded(raw) == json.loads(raw)


def test_seeds_beyond_int64_still_parse() -> None:
    # Real seeds exceed int64 (reference 3.4): 20 digits, or a float in exponent form.
    data = loads_bounded(b'{"seed": 12859270413054550000, "s2": 1.2859270413054550e19}')
    assert data == {"seed": 12859270413054550000, "s2": 1.285927041305455e19}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested more than"),
        ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "nested more than"),
        ("9" * 5000, "an integer of 5000 digits"),
        ("-" + "1" * 33, "an integer of 33 digits"),
        ("1e308", "out of range"),
        ("1e999", "out of range"),
        ("[NaN]", "NaN"),
        ('{"x": Infinity}', "Infinity"),
        ("0." + "1" * 100, "written with"),
    ],
)
def test_hostile_json_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(HostileJSON, match=reason):
        loads_bounded(text.encode())


def test_limits_are_inclusive() -> None:
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_bounded(deep) == json.loads(deep)
    assert loads_bounded("9" * 32) == int("9" * 32)
    assert loads_bounded("1e21") == 1e21


def test_malformed_json_is_still_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_bounded(b'{"a": ')


# --- capped reads ---------------------------------------------------------------------------


def test_a_body_within_the_cap_is_read_whole(server: HostileServer) -> None:
    server.route("/ok", Answer(200, b"x" * 1000))
    assert _read(server, "/ok", 1000) == (b"x" * 1000, False)


@pytest.mark.parametrize("declared", [True, False])
def test_a_long_body_stops_at_the_cap(server: HostileServer, declared: bool) -> None:
    total = 64 << 20
    server.route("/big", Answer(200, endless(b"<html>" + b"y" * 65530, total),
                                length=total if declared else None))  # fmt: skip
    head, over = _read(server, "/big", 1 << 20)
    assert over
    if not declared:  # read to the cap: the head is kept to tell what it was
        assert head.startswith(b"<html>") and len(head) == HEAD
    assert server.sent["/big"] < 32 << 20  # the server could not push it all


def test_gzip_and_deflate_are_decoded(server: HostileServer) -> None:
    text = json.dumps({"k": list(range(5000))}).encode()
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    variants = {
        "gzip": gzip.compress(text),
        "deflate": zlib.compress(text),  # zlib-wrapped, as the RFC says
        "deflate-raw": raw_deflate.compress(text) + raw_deflate.flush(),  # as IIS sends it
    }
    for name, body in variants.items():
        encoding = name.split("-")[0]
        server.route(f"/{name}", Answer(200, body, {"Content-Encoding": encoding}))
        assert _read(server, f"/{name}", 1 << 20) == (text, False), name
        assert _read(server, f"/{name}", 100)[1], name  # over a small cap


def test_a_gzip_bomb_is_inflated_only_to_the_cap(server: HostileServer) -> None:
    server.route("/bomb", Answer(200, gzip_bomb(256 << 20), {"Content-Encoding": "gzip"}))
    head, over = _read(server, "/bomb", 4 << 20)
    assert over and head == bytes(HEAD)


def test_a_broken_gzip_body_is_a_bad_response(server: HostileServer) -> None:
    server.route("/bad", Answer(200, b"\x1f\x8b not gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(BadResponse, match="not valid gzip"):
        _read(server, "/bad", 1 << 20)


# --- challenge pages --------------------------------------------------------------------------


def _response(status: int, body: bytes, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, content=body, headers=headers)


def test_challenge_pages_are_recognised() -> None:
    page = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"
    html = {"content-type": "text/html; charset=UTF-8"}
    assert challenge_of(_response(403, page, **html), page) == "Cloudflare"
    assert challenge_of(_response(503, b"", **{"cf-mitigated": "challenge"}), b"") == "Cloudflare"
    guard = b"<html><title>DDoS-Guard</title></html>"
    assert challenge_of(_response(403, guard, **html), guard) == "DDoS-Guard"
    # Not challenges: JSON errors, an ordinary HTML page, a JSON body quoting the words.
    assert challenge_of(_response(403, b'{"error":"Forbidden"}'), b'{"error":"Forbidden"}') is None
    plain = b"<html><body>Sign in to Civitai</body></html>"
    assert challenge_of(_response(200, plain, **html), plain) is None
    quoted = b'{"description": "Just a moment... please"}'
    assert challenge_of(_response(200, quoted, **{"content-type": "application/json"}),
                        quoted) is None  # fmt: skip


def test_a_declared_long_error_page_is_still_recognised(server: HostileServer) -> None:
    page = b"<html><head><title>Just a moment...</title></head>" + b" " * (1 << 20) + b"</html>"
    server.route("/wall", Answer(403, page, {"Content-Type": "text/html"}))
    with httpx2.Client() as client, client.stream("GET", server.url + "/wall") as response:
        head, over = read_capped(response, 64 << 10)
        assert over and len(head) == 64 << 10
        assert challenge_of(response, head) == "Cloudflare"
