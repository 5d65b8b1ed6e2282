"""The HTTP client the Mastodon, X and Bluesky adapters share: what an account's adapter needs to start."""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters._http import MAX_ANSWER_BYTES, redact
from adapters.base import AdapterConfig, AdapterError
from adapters.bluesky import BlueskyAdapter
from adapters.mastodon import MastodonAdapter
from adapters.x import XAdapter

OPTIONS = {
    "mastodon": {"instance": "https://social.example"},
    "x": {"api": "https://api.x.example"},
    "bluesky": {"pds": "https://pds.example"},
}
ADAPTERS = {"mastodon": MastodonAdapter, "x": XAdapter, "bluesky": BlueskyAdapter}


@pytest.mark.parametrize("platform", ["mastodon", "x", "bluesky"])
async def test_an_adapter_needs_the_shared_session_and_a_secret(platform: str) -> None:
    """Without the gateway's session, or without a resolved token, an adapter refuses to start
    and says which; with both it starts, and its repr shows no token."""
    adapter = ADAPTERS[platform]
    options = OPTIONS[platform]
    with pytest.raises(ValueError, match=f"^{platform}: the adapter needs the gateway's shared session$"):
        adapter(AdapterConfig(account="brand", handle="brand", secret="tok-secret", options=options))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match=f"^{platform}: no access token was resolved for this account$"):
            adapter(AdapterConfig(account="brand", handle="brand", options=options, session=session))
        made = adapter(AdapterConfig(account="brand", handle="brand", secret="tok-secret", options=options,
                                     session=session))
        assert made.platform == platform and "tok-secret" not in repr(made)


SECRET = "tok_SUPERSECRET_0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"a {SECRET} b {SECRET}", "a [redacted] b [redacted]"),
        ("you sent tok_SUPERS…", "you sent [redacted]…"),  # cut, then an ellipsis
        ("you sent tok_SUPERSECRET_01", "you sent [redacted]"),  # cut at the end
        ("tok_S… and tok_SUPER…", "[redacted]… and [redacted]…"),
        ("a token is fine…", "a token is fine…"),  # no beginning of the secret
        ("tok…", "tok…"),  # too short to say
    ],
)
def test_redact_takes_a_secret_whole_or_cut(text: str, shown: str) -> None:
    """A secret is redacted wherever it is, and its beginning where a cut ended the text."""
    assert redact(text, SECRET) == shown


async def _endless(request: web.Request) -> web.StreamResponse:
    """An instance whose answer never ends (no length said): JSON-looking bytes, more than any
    answer Byline reads whole, then it stops only because the client hung up."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"id": "1", "note": "')
    chunk = b"x" * (1 << 20)
    with contextlib.suppress(ConnectionError):
        for _ in range(MAX_ANSWER_BYTES // len(chunk) + 8):
            await response.write(chunk)
    return response


async def _said_too_long(request: web.Request) -> web.Response:
    """An instance that says, before any byte, that its answer is too long to read."""
    return web.Response(body=b"x" * (MAX_ANSWER_BYTES + 1), content_type="application/json")


@pytest.mark.parametrize("handler", [_endless, _said_too_long], ids=["endless", "said-too-long"])
async def test_an_answer_too_long_is_refused_not_read_into_memory(handler: Any) -> None:
    """A hostile instance's answer past ``MAX_ANSWER_BYTES`` ends the call with a retryable
    adapter error (whether the request was carried out is unknown) instead of filling the
    gateway's memory; the token is not in what it says."""
    app = web.Application()
    app.router.add_get("/api/v1/accounts/verify_credentials", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            adapter = MastodonAdapter(AdapterConfig(
                account="brand", handle="brand", secret="mtok-HUGE-0123456789",
                options={"instance": str(server.make_url("")).rstrip("/")}, session=session,
            ))
            with pytest.raises(AdapterError) as raised:
                await adapter.verify_credentials()
    finally:
        await server.close()
    assert raised.value.retryable
    assert f"more than {MAX_ANSWER_BYTES} bytes" in str(raised.value)
    assert "mtok-HUGE" not in str(raised.value)
