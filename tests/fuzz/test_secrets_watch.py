"""The session's secret watch (tests/fuzz/secrets_watch.py) can fail: each leak it must catch, caught.

Each test runs in a watch of its own (``SECRETS.isolated()``), so the leaks made here on purpose
are judged here and never reach the session's check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import gateway.app
from gateway.appkeys import IDENTITY, SETTINGS
from gateway.clock import ManualClock
from gateway.policy.credentials import CredentialRules
from gateway.services import platforms
from tests.conftest import SECRETS, TEST_POLICIES, make_policy_dir, make_settings
from tests.fuzz.secrets_watch import Watch


async def _echo(request: web.Request) -> web.Response:
    """A handler that must never exist: it shows the caller's Authorization and X-Echo headers."""
    return web.json_response({"you sent": request.headers.get("Authorization"), "echo": request.headers.get("X-Echo")})


@pytest.fixture
async def leaky(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], web.Application, Watch]]:
    """A gateway with an echoing route added, watched on its own."""
    with SECRETS.isolated() as watch:
        app = gateway.app.make_app(make_settings(f"sqlite:///{tmp_path / 'b.db'}", make_policy_dir(tmp_path,
                                                                                              TEST_POLICIES)),
                                   clock=ManualClock(), run_publisher=False)
        app.router.add_get("/echo", _echo)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            yield client, app, watch
        finally:
            await client.close()


def _kinds(watch: Watch) -> list[tuple[str, str]]:
    return sorted({(leak.kind, leak.where.split(":")[0]) for leak in watch.leaks()})


def test_every_hook_found_what_it_watches() -> None:
    """Every place a secret is made or read was found in the code (a rename would blind the watch)."""
    assert SECRETS.missing == []


async def test_an_echoed_authorization_header_is_caught(leaky: Any) -> None:
    """A token sent to a handler that shows it back is a leak; the same token used as it should be is not."""
    client, app, watch = leaky
    token = await app[IDENTITY].create(user="alice")
    headers = {"Authorization": f"Bearer {token}"}
    async with client.get("/v1/accounts", headers=headers) as ok:
        assert ok.status == 200
    assert watch.leaks() == []
    async with client.get("/echo", headers=headers) as shown:
        assert shown.status == 200
    assert _kinds(watch) == [("token", "the answer 200 to GET /echo")]
    assert token not in str(watch.leaks()), "the report must not show the secret itself"


async def test_deliveries_pass_once_and_only_where_they_are_made(leaky: Any) -> None:
    """An app's client secret and an XRPC session's JWTs in the answers that issue them are no leak;
    the same secrets in any other answer, or in a log line, are."""
    client, app, watch = leaky
    async with client.post("/api/v1/apps", json={"client_name": "Tester", "redirect_uris": "https://a.example/cb",
                                                 "scopes": "read"}) as registered:
        secret = (await registered.json())["client_secret"]
    password = await app[IDENTITY].create(user="alice", account="direct")
    async with client.post("/xrpc/com.atproto.server.createSession",
                           json={"identifier": "direct", "password": password}) as session:
        jwt = (await session.json())["accessJwt"]
    assert watch.leaks() == []
    for shown in (secret, jwt):
        async with client.get("/echo", headers={"X-Echo": shown}) as echoed:
            assert echoed.status == 200
    structlog.get_logger("byline.test").info("careless", password=password)
    assert _kinds(watch) == [("client secret", "the answer 200 to GET /echo"), ("token", "a log line"),
                             ("xrpc session jwt", "the answer 200 to GET /echo")]


async def test_platform_credentials_and_the_log_key_are_watched(leaky: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform credential the gateway reads, and the log signing key it loaded, are leaks anywhere."""
    client, app, watch = leaky
    monkeypatch.setenv("WATCHED_PLATFORM_TOKEN", "mtok-watched-0a1b2c3d4e5f")
    rules = CredentialRules(policy_dir=app[SETTINGS].policy_dir)
    assert platforms.resolve_credential("env:WATCHED_PLATFORM_TOKEN", rules=rules) == "mtok-watched-0a1b2c3d4e5f"
    key_text = app[SETTINGS].log_key_file.read_text().strip()
    for shown in ("sent with mtok-watched-0a1b2c3d4e5f", key_text.split("+", 4)[-1]):
        async with client.get("/echo", headers={"X-Echo": shown}) as echoed:
            assert echoed.status == 200
    assert _kinds(watch) == [("log signing key", "the answer 200 to GET /echo"),
                             ("platform credential", "the answer 200 to GET /echo")]


def test_a_secret_whose_url_safe_runs_are_all_short_is_still_found() -> None:
    """A base64 key whose '+' and '/' leave no URL-safe run of twelve characters (one in a few
    dozen log keys: seen as a flaky miss of the log signing key in a CI run) is found by its
    whole self, as a short secret is."""
    watch = Watch()
    key = "Abe2Wsk042+kW6gyKvb8+K7vfuFv/zIs5PTlG/YiBAd3"
    watch.secret(key, "log signing key")
    watch.line(f'{{"echo": "{key}"}}')
    watch.line("nothing of it here")
    assert [(leak.kind, leak.where) for leak in watch.leaks()] == [("log signing key", "a log line")]
