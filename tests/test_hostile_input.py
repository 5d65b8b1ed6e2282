"""Hostile input over HTTP: deep JSON, NUL and lone surrogates, malformed HTTP, slow and greedy
clients, far-off schedules. Each gets a clear JSON error with the right status, and changes
nothing, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gateway.appkeys import DB, IDENTITY
from gateway.clock import ManualClock
from gateway.http.pages import prefers_html
from gateway.http.server import LINGER_SECONDS
from gateway.settings import Settings
from tests.conftest import Gateway, started_gateway
from tests.serve import ServeProcess

DEEP = b"[" * 100_000


async def _unchanged(gateway: Gateway) -> tuple[Any, ...]:
    """What a refused request must leave alone: posts, the log, apps, codes and tokens."""
    async with gateway.app[DB].read() as txn:
        counts = [await txn.fetchone(f"SELECT COUNT(*) AS n FROM {table}")
                  for table in ("oauth_apps", "oauth_codes", "oauth_tokens", "tokens", "media")]
    return await gateway.snapshot(), await gateway.log_size(), [dict(c or {}) for c in counts]


async def _send(gateway: Gateway, method: str, path: str, *, user: str | None = None,
                **kwargs: Any) -> tuple[int, Any]:
    """One request; the status and the body, which must be JSON."""
    headers = dict(kwargs.pop("headers", {}))
    if user is not None:
        headers["Authorization"] = f"Bearer {gateway.tokens[user]}"
    resp = await gateway.client.request(method, path, headers=headers, **kwargs)
    assert resp.content_type == "application/json", (resp.status, await resp.text())
    return resp.status, await resp.json()


# -- 1. deeply nested JSON -----------------------------------------------------------------


async def _app_token(gateway: Gateway, user: str, account: str) -> str:
    return str(await gateway.app[IDENTITY].create(user=user, account=account))


async def test_deep_json_is_refused_on_every_surface(gateway: Gateway) -> None:
    """100,000 ``[`` is a 400 in each surface's own error format, token or not, and nothing changes."""
    app_token = await _app_token(gateway, "alice", "direct")
    before = await _unchanged(gateway)
    json_type = {"Content-Type": "application/json"}
    native = [("POST", "/v1/posts", "alice"), ("PATCH", "/v1/posts/1", "alice"),
              ("POST", "/v1/posts/1/reject", "bob")]
    for method, path, user in native:
        status, body = await _send(gateway, method, path, user=user, data=DEEP, headers=json_type)
        assert (status, body["error"]) == (400, "invalid_json"), (path, body)
        assert "64" in body["message"], body
    for path in ("/api/v1/apps", "/api/v1/statuses"):
        status, body = await _send(gateway, "POST", path, data=DEEP,
                                   headers={**json_type, "Authorization": f"Bearer {app_token}"})
        assert status == 400 and body["error"].startswith("Error while parsing request body"), (path, body)
        assert "64" in body["error"], body
    for path in ("/oauth/token", "/oauth/revoke"):
        status, body = await _send(gateway, "POST", path, data=DEEP, headers=json_type)
        assert (status, body["error"]) == (400, "invalid_request"), (path, body)
        assert "64" in body["error_description"], body
    status, body = await _send(gateway, "POST", "/xrpc/com.atproto.server.createSession", data=DEEP,
                               headers=json_type)
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert "64" in body["message"], body
    assert await _unchanged(gateway) == before


async def test_nesting_up_to_the_bound_is_read(gateway: Gateway) -> None:
    """64 levels are parsed (and then judged on their content); 65 are refused before parsing."""
    def nested(levels: int) -> bytes:
        # The object itself is one level: the text is wrapped in levels - 1 arrays.
        return b'{"account": "direct", "text": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    status, body = await _send(gateway, "POST", "/v1/posts", user="alice", data=nested(64),
                               headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (422, "validation_failed"), body
    assert [f["field"] for f in body["fields"]] == ["text"], body
    status, body = await _send(gateway, "POST", "/v1/posts", user="alice", data=nested(65),
                               headers={"Content-Type": "application/json"})
    assert (status, body["error"]) == (400, "invalid_json"), body


# JSON in UTF-16: "∀" is the bytes 00 22 there, which a count of bytes takes for a quote.
HIDDEN_DEEP = ('{"account": "direct", "text": "hi", "x": ["\u2200", ' + "[" * 5000 + '"y"' + "]" * 5000
               + "]}").encode("utf-16-le")


async def test_json_that_is_not_utf8_is_refused_on_every_surface(gateway: Gateway) -> None:
    """JSON sent as UTF-16 (or any other encoding than UTF-8) is a 400 in each surface's words,
    not a 500: before, UTF-16 slipped past the nesting count and the parser recursed until it
    crashed, on the unauthenticated OAuth endpoints too. A UTF-8 body with a byte-order mark
    is read."""
    app_token = await _app_token(gateway, "alice", "direct")
    before = await _unchanged(gateway)
    json_type = {"Content-Type": "application/json"}
    status, body = await _send(gateway, "POST", "/v1/posts", user="alice", data=HIDDEN_DEEP, headers=json_type)
    assert (status, body["error"]) == (400, "invalid_json"), body
    for path in ("/api/v1/apps", "/api/v1/statuses"):
        status, body = await _send(gateway, "POST", path, data=HIDDEN_DEEP,
                                   headers={**json_type, "Authorization": f"Bearer {app_token}"})
        assert status == 400 and body["error"].startswith("Error while parsing request body"), (path, body)
    status, body = await _send(gateway, "POST", "/oauth/token", data=HIDDEN_DEEP, headers=json_type)
    assert (status, body["error"]) == (400, "invalid_request"), body
    status, body = await _send(gateway, "POST", "/xrpc/com.atproto.server.createSession", data=HIDDEN_DEEP,
                               headers=json_type)
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert await _unchanged(gateway) == before
    status, body = await _send(gateway, "POST", "/v1/posts", user="alice", headers=json_type,
                               data="\ufeff".encode() + json.dumps({"account": "direct", "text": "hi"}).encode())
    assert status == 201, body
    status, body = await _send(gateway, "POST", "/v1/posts", user="alice", headers=json_type,
                               data=json.dumps({"account": "direct", "text": "hi"}).encode("utf-16"))
    assert (status, body["error"]) == (400, "invalid_json") and "UTF-8" in body["message"], body


LONG = "9" * 5000


@pytest.mark.parametrize("path", [
    f"/log/tile/{LONG}/000", f"/log/tile/0/000.p/{LONG}", "/log/tile/0/" + "x001/" * 1500 + "000",
    f"/log/tile/entries/{'x001/' * 8}000",
])
async def test_numbers_too_long_to_read_are_no_tile(gateway: Gateway, path: str) -> None:
    """A tile path with thousands of digits is a 404, as any tile that is not there (before, a 500:
    Python refuses to read more than 4,300 digits)."""
    status, body = await _send(gateway, "GET", path)
    assert status == 404, body


async def test_a_mastodon_limit_of_thousands_of_digits_is_read_as_rails_reads_it(gateway: Gateway) -> None:
    """``limit`` of 5,000 digits is the most a page holds; a negative one is Mastodon's 400
    (before, both were a 500: Python refuses to read more than 4,300 digits)."""
    app = {"Authorization": f"Bearer {await _app_token(gateway, 'alice', 'direct')}"}
    async with gateway.client.get(f"/api/v1/scheduled_statuses?limit={LONG}", headers=app) as answer:
        assert answer.status == 200, await answer.text()
    status, body = await _send(gateway, "GET", f"/api/v1/timelines/home?limit=-{LONG}", headers=app)
    assert status == 400, body


# -- 2. NUL characters and lone surrogates ----------------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b", "\udfff"])
async def test_text_that_cannot_be_stored_is_refused(gateway: Gateway, bad: str) -> None:
    """NUL and lone surrogates in a body or a query are a 422 naming the field, on both databases."""
    held = await gateway.submit("alice", "cosigned", "Waiting for bob")
    before = await _unchanged(gateway)
    # json= writes them as \u escapes, as any client does.
    status, body = await _send(gateway, "POST", "/v1/posts", user="alice", json={"account": "direct", "text": bad})
    assert (status, body["error"]) == (422, "validation_failed"), body
    assert [f["field"] for f in body["fields"]] == ["text"], body
    status, body = await _send(gateway, "POST", f"/v1/posts/{held['id']}/reject", user="bob",
                               json={"version": 1, "reason": bad})
    assert (status, [f["field"] for f in body["fields"]]) == (422, ["reason"]), body
    status, body = await _send(gateway, "POST", "/v1/posts", user="alice",
                               json={"account": "direct", "text": "fine", "extra": {bad: "key"}})
    assert (status, body["error"]) == (422, "validation_failed"), body
    apps = {"client_name": bad, "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"}
    sent: list[dict[str, Any]] = [{"json": apps}]
    if "\x00" in bad:
        # A query string, a urlencoded form and a multipart one are UTF-8: they can carry NUL,
        # and an undecodable byte in them is read as U+FFFD.
        form = aiohttp.FormData()
        for name, value in apps.items():
            form.add_field(name, value, content_type="text/plain")
        sent += [{"data": apps}, {"data": form}]
        status, body = await _send(gateway, "GET", "/v1/posts", user="alice", params={"before": "1" + bad})
        assert (status, body["error"], body["field"]) == (422, "validation_failed", "before"), body
    for how in sent:
        status, body = await _send(gateway, "POST", "/api/v1/apps", **how)
        assert status == 422 and body["error"].startswith("Validation failed: "), (how, body)
        assert "client_name" in body["error"], body
    status, body = await _send(gateway, "POST", "/xrpc/com.atproto.server.createSession",
                               json={"identifier": bad, "password": "x"})
    assert (status, body["error"]) == (400, "InvalidRequest") and "identifier" in body["message"], body
    assert await _unchanged(gateway) == before


async def test_oauth_credentials_that_are_not_text(gateway: Gateway) -> None:
    """A lone surrogate as an app's secret, a code or a token is a 400 invalid_request, not a 500."""
    status, app = await _send(gateway, "POST", "/api/v1/apps",
                              json={"client_name": "Tool", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    assert status == 200, app
    before = await _unchanged(gateway)
    good = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
    for path, params in (
        ("/oauth/token", {**good, "grant_type": "authorization_code", "code": "\ud800",
                          "redirect_uri": "urn:ietf:wg:oauth:2.0:oob"}),
        ("/oauth/token", {**good, "client_secret": "\udc80", "grant_type": "authorization_code", "code": "x"}),
        ("/oauth/token", {**good, "client_id": "a\x00b", "grant_type": "authorization_code", "code": "x"}),
        ("/oauth/revoke", {**good, "token": "\ud800"}),
        ("/oauth/revoke", {**good, "client_secret": "\ud800", "token": "x"}),
    ):
        status, body = await _send(gateway, "POST", path, json=params)
        assert (status, body["error"]) == (400, "invalid_request"), (path, params, body)
    assert await _unchanged(gateway) == before


async def _raw_exchange(host: str, port: int, data: bytes, *,
                        source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Send bytes on a fresh connection and read the answer until the server closes it."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return _parse_answer(raw)


def _parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    assert raw, "the server closed the connection without an answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def test_bearer_tokens_that_are_not_text(gateway: Gateway) -> None:
    """Undecodable bytes in a bearer token are a 401 on every surface, not a 500."""
    assert gateway.client.server.host is not None and gateway.client.port is not None
    before = await _unchanged(gateway)
    for path, wanted in (
        ("/v1/accounts", {"error": "unauthenticated"}),
        ("/api/v1/accounts/verify_credentials", {"error": "The access token is invalid"}),
        ("/xrpc/com.atproto.server.getSession", {"error": "AuthenticationRequired"}),
    ):
        status, headers, body = await _raw_exchange(
            gateway.client.server.host, gateway.client.port,
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
            + b"Authorization: Bearer byl_\xed\xa0\x80\xff\r\n\r\n",
        )
        assert status == 401, (path, body)
        assert headers["content-type"].startswith("application/json"), headers
        answer = json.loads(body)
        assert {k: answer[k] for k in wanted} == wanted, (path, answer)
    assert await _unchanged(gateway) == before


# -- 5. publish_at bounds, and list filters --------------------------------------------------


async def test_publish_at_far_ahead_is_refused(gateway: Gateway) -> None:
    """A publish_at past the one-year horizon is a 422 naming publish_at and the latest time."""
    token = await _app_token(gateway, "alice", "direct")
    before = await _unchanged(gateway)
    for when in ("9999-12-31T23:59:59Z", (gateway.clock.now() + timedelta(days=366)).isoformat()):
        status, body = await _send(gateway, "POST", "/v1/posts", user="alice",
                                   json={"account": "direct", "text": "Far off", "publish_at": when})
        assert (status, body["error"], body["field"]) == (422, "validation_failed", "publish_at"), body
        assert "365 days" in body["message"] and body["latest"] == "2027-01-01T12:00:00.000000Z", body
    status, body = await _send(gateway, "POST", "/api/v1/statuses", headers={"Authorization": f"Bearer {token}"},
                               json={"status": "Far off", "scheduled_at": "9999-12-31T23:59:59Z"})
    assert status == 422 and "365 days" in body["error"] and "publish_at" in body["error"], body
    assert await _unchanged(gateway) == before
    post = await gateway.submit("alice", "direct", "Just in time",
                                publish_at=(gateway.clock.now() + timedelta(days=365)).isoformat())
    assert (post["state"], post["publish_at"]) == ("scheduled", "2027-01-01T12:00:00.000000Z")


async def test_publish_at_inside_the_cooling_off_window_is_refused(gateway: Gateway) -> None:
    """On the delayed account (10m), publish_at sooner than the delay allows is a 422 naming the earliest time."""
    token = await _app_token(gateway, "bob", "delayed")
    before = await _unchanged(gateway)
    soon = (gateway.clock.now() + timedelta(minutes=6)).isoformat()
    status, body = await _send(gateway, "POST", "/v1/posts", user="bob",
                               json={"account": "delayed", "text": "Too soon", "publish_at": soon})
    assert (status, body["error"], body["field"]) == (422, "validation_failed", "publish_at"), body
    assert body["earliest"] == "2026-01-01T12:10:00.000000Z" and "2026-01-01T12:10:00.000000Z" in body["message"], body
    status, body = await _send(gateway, "POST", "/api/v1/statuses", headers={"Authorization": f"Bearer {token}"},
                               json={"status": "Too soon", "scheduled_at": soon})
    assert status == 422 and "2026-01-01T12:10:00.000000Z" in body["error"], body
    assert await _unchanged(gateway) == before
    post = await gateway.submit("bob", "delayed", "On time",
                                publish_at=(gateway.clock.now() + timedelta(minutes=10)).isoformat())
    assert (post["state"], post["publish_at"]) == ("scheduled", "2026-01-01T12:10:00.000000Z")
    # A time a moment older than the earliest (a minute's leeway) is taken for the earliest.
    post = await gateway.submit("bob", "delayed", "A moment old",
                                publish_at=(gateway.clock.now() + timedelta(minutes=9, seconds=1)).isoformat())
    assert (post["state"], post["publish_at"]) == ("scheduled", "2026-01-01T12:10:00.000000Z")


@pytest.mark.parametrize(("query", "field"), [
    ("before=abc", "before"), ("before=", "before"), ("before=-1", "before"), ("before=1.5", "before"),
    ("limit=ten", "limit"), ("limit=0", "limit"), ("limit=201", "limit"),
])
async def test_list_parameters_are_checked(gateway: Gateway, query: str, field: str) -> None:
    """A before that is not a post id, or a bad limit, is a 422 naming it."""
    status, body = await _send(gateway, "GET", f"/v1/posts?{query}", user="alice")
    assert (status, body["error"], body["field"]) == (422, "validation_failed", field), body


# -- 6. what a 409 offers --------------------------------------------------------------------


async def test_conflicts_offer_only_what_a_caller_can_ask_for(gateway: Gateway) -> None:
    """A 409's ``allowed`` lists API actions only: never claim, rehold, redecide, release or expire."""
    scheduled = await gateway.submit("bob", "delayed", "A delayed thought")
    status, body = await _send(gateway, "POST", f"/v1/posts/{scheduled['id']}/approve", user="bob",
                               json={"version": 1})
    assert (status, body["state"], body["allowed"]) == (409, "scheduled", ["cancel", "edit"]), body
    held = await gateway.submit("alice", "cosigned", "Needs two")
    status, body = await _send(gateway, "POST", f"/v1/posts/{held['id']}/retry", user="alice")
    assert (status, body["state"], body["allowed"]) == (409, "held", ["approve", "cancel", "edit", "reject"]), body


# -- 3 and 4. the server itself: malformed HTTP, slow and greedy clients ---------------------


def _served(db_url: str, policy_dir: Path, clock: ManualClock, **extra: Any) -> started_gateway:
    """A gateway served by the same runner as `byline serve` (gateway.http.server)."""
    return started_gateway(db_url, policy_dir, clock, **extra)


_MALFORMED: list[tuple[bytes, int, str]] = [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431, "8190"),
    (b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method"),
    (b"POST /v1/posts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400,
     "Content-Length"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "8190"),
]


def _check_malformed_answer(answer: tuple[int, dict[str, str], bytes], status: int, word: str) -> None:
    got, headers, body = answer
    assert got == status, (got, body)
    assert headers["content-type"].startswith("application/json"), headers
    decoded = json.loads(body)
    assert decoded["error"] == "bad_request" and word in decoded["message"], decoded
    assert b"aaaaaaaa" not in body, "the answer must not echo the request"


async def test_malformed_http_is_answered_in_json(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """What aiohttp's own parser refuses comes back as JSON with its status, not text/plain."""
    async with _served(db_url, policy_dir, clock) as gw:
        assert gw.client.server.host is not None and gw.client.port is not None
        for request, status, word in _MALFORMED:
            _check_malformed_answer(await _raw_exchange(gw.client.server.host, gw.client.port, request),
                                    status, word)
        status, body = await gw.call(None, "GET", "/healthz")
        assert (status, body) == (200, {"status": "ok"})


@pytest.mark.parametrize("target", [
    "http://[bad/api/v1/streaming/user?access_token={token}",  # not a URL: yarl's refusal names it
    "/api/v1/streaming/user?access_token={token}\x01",  # a control character in the query
])
async def test_malformed_requests_do_not_repeat_a_token(
    db_url: str, policy_dir: Path, clock: ManualClock, target: str,
) -> None:
    """A request target the parser refuses is not repeated in the answer or the log: the
    streaming API takes its token in the query (``access_token``), as Mastodon's does."""
    async with _served(db_url, policy_dir, clock) as gw:
        assert gw.client.server.host is not None and gw.client.port is not None
        token = gw.tokens["alice"]
        request = f"GET {target.format(token=token)} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1")
        with capture_logs() as logged:
            status, _, body = await _raw_exchange(gw.client.server.host, gw.client.port, request)
        assert (status, json.loads(body)["error"]) == (400, "bad_request"), body
        assert token not in body.decode(), body
        assert logged and token not in repr(logged), logged


async def _trickle(port: int, head: bytes, *, every: float, most: int, drop: bytes = b"x") -> tuple[bytes, float]:
    """Send ``head``, then ``drop`` every ``every`` s until the server answers and closes.

    Read a chunk at a time: a read to the end cut off by the wait (the answer in, the close not
    yet) would lose what it had read, which a busy machine made happen now and then."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks: list[bytes] = []
    try:
        writer.write(head)
        await writer.drain()
        for _ in range(most):
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every)
            except TimeoutError:
                if chunks:
                    continue  # answered: waiting for the close, sending nothing more
                try:
                    writer.write(drop)
                    await writer.drain()
                except ConnectionError:
                    chunks.append(await reader.read())
                    break
                continue
            if not chunk:
                break  # closed
            chunks.append(chunk)
    finally:
        writer.close()
    return b"".join(chunks), loop.time() - started


async def test_slow_clients_are_cut_off(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """A request not received within BYLINE_REQUEST_READ_SECONDS is answered 408 and closed;
    a prompt client on the same server is served."""
    async with _served(db_url, policy_dir, clock, request_read_seconds=1) as gw:
        assert gw.client.port is not None
        before = await _unchanged(gw)
        body_head = (f"POST /v1/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.tokens['alice']}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
        header_head = b"GET /v1/accounts HTTP/1.1\r\nHost: x\r\nX-Slow: "
        for head, drop in ((body_head, b"x"), (header_head, b"x"), (b"", b"")):
            answer, took = await _trickle(gw.client.port, head, every=0.25, most=24, drop=drop)
            assert took < 3, f"still open after {took:.1f} s"
            status, headers, body = _parse_answer(answer)
            assert status == 408 and headers["content-type"].startswith("application/json"), answer
            assert json.loads(body)["error"] == "request_timeout", body
        assert await _unchanged(gw) == before
        post = await gw.submit("alice", "direct", "Prompt")
        assert post["state"] == "scheduled"


async def test_connections_per_address_are_bounded(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """Past BYLINE_CONNECTIONS_PER_ADDRESS open connections from one address, the next is refused
    with a 429; another address, and the same one once a connection closes, are served."""
    async with _served(db_url, policy_dir, clock, connections_per_address=2, request_read_seconds=30) as gw:
        assert gw.client.port is not None
        port = gw.client.port
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.2)  # the server has taken both
        status, headers, body = await _raw_exchange("127.0.0.1", port, b"")
        assert (status, json.loads(body)["error"]) == (429, "too_many_requests"), body
        assert headers["content-type"].startswith("application/json"), headers
        healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, _, body = await _raw_exchange("127.0.0.1", port, healthz, source="127.0.0.2")
        assert status == 200, body
        _, writer = held.pop()
        writer.close()
        await asyncio.sleep(0.2)
        status, _, body = await _raw_exchange("127.0.0.1", port, healthz)
        assert status == 200, body
        for _, writer in held:
            writer.close()


FIREFOX_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
"""What a browser's Accept says when a person opens an address."""


@contextlib.asynccontextmanager
async def _at_its_limit(db_url: str, policy_dir: Path, clock: ManualClock) -> AsyncIterator[int]:
    """A gateway letting an address open two connections, with two open from here: its port,
    where the next connection is over the limit."""
    async with _served(db_url, policy_dir, clock, connections_per_address=2, request_read_seconds=30) as gw:
        assert gw.client.port is not None
        port = gw.client.port
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.2)  # the server has taken both
        try:
            yield port
        finally:
            for _, writer in held:
                writer.close()


async def test_a_browser_over_the_connection_limit_is_shown_a_page(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """The connection past an address's limit, from a person's browser opening a page, is
    answered with the pages' error page (429, Retry-After, the pages' headers), not raw JSON;
    an API client's still gets JSON, with Retry-After too. Before: JSON to both, no Retry-After."""
    async with _at_its_limit(db_url, policy_dir, clock) as port:
        opened = f"GET /queue HTTP/1.1\r\nHost: x\r\nAccept: {FIREFOX_ACCEPT}\r\n\r\n".encode()
        status, headers, body = await _raw_exchange("127.0.0.1", port, opened)
        assert (status, headers["retry-after"]) == (429, "5"), body
        assert headers["content-type"] == "text/html; charset=utf-8", headers
        assert headers["content-security-policy"].startswith("default-src 'none'"), headers
        page = body.decode()
        assert "<h1>Too many connections</h1>" in page, page
        assert ('<p class="error" role="alert">this address already has 2 connections open; close one, '
                "or reuse it</p>") in page, page
        for accept in ("", "Accept: */*\r\n", "Accept: application/json\r\n"):
            asked = f"GET /v1/posts HTTP/1.1\r\nHost: x\r\n{accept}\r\n".encode()
            status, headers, body = await _raw_exchange("127.0.0.1", port, asked)
            assert (status, headers["retry-after"]) == (429, "5"), (accept, body)
            assert headers["content-type"].startswith("application/json"), (accept, headers)
            assert json.loads(body) == {"error": "too_many_requests", "message": (
                "this address already has 2 connections open; close one, or reuse it")}


async def test_a_connection_over_the_limit_is_not_held_by_a_body_that_never_comes(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """The connection past an address's limit that sends a request's head and then its body a
    byte at a time (or not at all) is answered 429 and closed within the linger, as one that
    sends nothing is: not held uncounted for as long as aiohttp lingers over an unread body
    (10 s), which let one address keep open five times the connections it could before."""
    async with _at_its_limit(db_url, policy_dir, clock) as port:
        head = (b"POST /v1/posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n")
        for drop in (b"x", b""):
            answer, took = await _trickle(port, head, every=0.25, most=60, drop=drop)
            assert took < 2 * LINGER_SECONDS, f"still open after {took:.1f} s"
            status, headers, body = _parse_answer(answer)
            assert (status, headers["retry-after"]) == (429, "5"), answer
            assert json.loads(body)["error"] == "too_many_requests", body


@pytest.mark.parametrize(("accept", "html"), [
    (FIREFOX_ACCEPT, True),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
     "application/signed-exchange;v=b3;q=0.7", True),  # Chromium's
    ("application/json, text/html;q=0.5", False),
    ("text/html;q=0.5, application/json;q=0.9", False),
    ("text/html;q=0.9, application/*;q=0.5", True),
    ("*/*", False),
    ("", False),
    ("application/json", False),
    ("text/*", True),
    ("text/html;q=2, */*;q=0.1", False),  # no weight as RFC 9110 writes one: nothing
])
def test_what_a_browser_accepts_is_told_from_an_api_clients(accept: str, html: bool) -> None:
    """An Accept header ranks an HTML page above JSON as a browser's does, weights and wildcards
    read as RFC 9110 reads them; a tie (``*/*``, no header) goes to JSON."""
    assert prefers_html(accept) is html


async def test_byline_serve_answers_malformed_and_slow_requests_in_json(
    tmp_path: Path, db_url: str, policy_dir: Path,
) -> None:
    """The real `byline serve` answers malformed HTTP and slow clients as the tests' server does."""
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policy_dir, log_key_autocreate="true",
                         request_read_seconds="1", connections_per_address="8")
    token = serve.token("alice")
    await serve.start()
    try:
        assert serve.port is not None
        for request, status, word in _MALFORMED:
            _check_malformed_answer(await _raw_exchange("127.0.0.1", serve.port, request), status, word)
        body_head = (f"POST /v1/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
        for head in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", body_head):
            answer, took = await _trickle(serve.port, head, every=0.25, most=24)
            assert took < 3 and _parse_answer(answer)[0] == 408, (took, answer)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session, \
                session.post(f"{serve.base}/v1/posts", json={"account": "direct", "text": "Prompt"}) as resp:
            assert resp.status == 201, await resp.text()
    finally:
        output = serve.stop()
    assert "Traceback" not in output, output


def test_limits_are_settings() -> None:
    """Both limits are BYLINE_ settings with sensible defaults; 0 connections means no limit."""
    fields = Settings.model_fields
    assert (fields["request_read_seconds"].default, fields["connections_per_address"].default) == (60.0, 64)
    assert Settings(connections_per_address=0, _env_file=None).connections_per_address == 0  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Settings(request_read_seconds=0, _env_file=None)  # type: ignore[call-arg]
