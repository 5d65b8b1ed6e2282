"""The Mastodon client API and its OAuth endpoints under random requests, on both databases.

Requests are built from the Mastodon API documentation (docs.joinmastodon.org/methods/statuses,
/media, /scheduled_statuses, /apps, /oauth): documented parameters with documented values or
anything else, sent as JSON, a form, multipart, in the query, or as bytes that are none of
these, with a real token (bound to one of several accounts), a revoked one, junk or none.
One gateway (with a Mastodon stand-in behind one account) serves each test function.

What must hold for every answer: never a 5xx; a refusal (4xx) is a JSON body with Mastodon's
``{"error": "…"}`` (and ``error_description`` on ``/oauth``, but for what the HTTP parser
refuses before any surface sees it); and a refusal stores nothing:
posts, versions, approvals, sandbox timeline, uploads, apps, codes, tokens and idempotency
keys are as they were.

``BYLINE_TEST_FUZZ_MASTODON_EXAMPLES`` sizes each test (`make fuzz` runs more).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.appkeys import IDENTITY
from tests.clients.signin import pkce_pair, sign_in, with_pkce
from tests.conftest import BACKENDS, TEST_POLICIES, make_policy_dir, write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fuzz.bodies import DIGITS, TEXT, WORDS, either, encoded, multipart, params, urlencoded
from tests.fuzz.live import Live, examples, live_gateway, serve, thread_loop
from tests.images import PNG

UPSTREAM_TOKEN = "mtok-fuzz-upstream-0b1c2d3e4f"
STATEFUL = ("posts", "post_versions", "approvals", "sandbox_posts", "media", "oauth_apps", "oauth_codes",
            "oauth_tokens", "tokens", "client_idempotency")
CALLBACK = "https://app.example/callback"
OOB = "urn:ietf:wg:oauth:2.0:oob"
BOUND = [("alice", "direct"), ("alice", "cosigned"), ("carol", "cosigned"), ("dave", "managed"),
         ("bob", "delayed"), ("alice", "masto"), ("carol", "masto"), ("erin", None), ("alice", None)]

# aiohttp warns (BadContentDispositionHeader) about a part header it cannot read and reads on; in
# production a warning is only printed, so here it must not become an error in the server.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.multipart.BadContentDispositionHeader")

SETTINGS = settings(
    max_examples=examples("MASTODON_EXAMPLES", 60), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class World:
    """The gateway, the tokens, posts and uploads made before the fuzzing, and one OAuth app."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.tokens: list[str] = []
        self.posts: list[str] = []
        self.media: list[str] = []
        self.client_id = ""
        self.client_secret = ""

    def token_for(self, user: str, account: str | None) -> str:
        return self.live.run(self.live.gateway.app[IDENTITY].create(user=user, account=account))

    def code(self, *, challenge: str | None = None) -> str:
        """A fresh authorization code for the app, through the sign-in page as a person would."""
        url = (f"{self.live.base_url}/oauth/authorize?response_type=code&client_id={self.client_id}"
               f"&redirect_uri={CALLBACK}&scope=read+write")
        if challenge is not None:
            url = with_pkce(url, challenge)
        person = self.token_for("alice", None)
        return self.live.run(sign_in(url, token=person, account="direct"))


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A gateway with the four tier accounts, ``masto`` on a Mastodon stand-in, and things to name."""
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", UPSTREAM_TOKEN)
    with thread_loop() as loop:
        upstream = FakeMastodon()
        upstream.add_account("brand", UPSTREAM_TOKEN)
        server = loop.run(serve(mastodon_app(upstream)))
        policy_dir = make_policy_dir(tmp_path, TEST_POLICIES)
        write_policy(policy_dir, "masto", f"""
            account: masto
            platform: mastodon
            handle: "@brand@mastodon.example"
            instance: {str(server.make_url('')).rstrip('/')}
            credentials: env:BRAND_MASTODON_TOKEN
            tier: direct
            owner: alice
            writers: [alice, carol]
        """)
        try:
            # Failed sign-ins are throttled per address (tested on their own): here they would
            # soon lock the fuzzer out of the sign-ins it needs for codes.
            with live_gateway(request.param, tmp_path, policy_dir, loop=loop,
                              signin_attempts="1000000/minute") as live:
                yield _seed(World(live))
        finally:
            loop.run(server.close())


def _seed(world: World) -> World:
    live = world.live
    world.tokens = [world.token_for(user, account) for user, account in BOUND]
    revoked = world.token_for("alice", "direct")
    live.run(live.gateway.app[IDENTITY].revoke(revoked))
    world.tokens.append(revoked)
    for token, text in [(world.tokens[0], "Published at once"), (world.tokens[1], "Held for approval"),
                        (world.tokens[3], "A suggestion"), (world.tokens[4], "Cooling off")]:
        status, body = live.call(None, "POST", "/api/v1/statuses", {"status": text},
                                 headers={"Authorization": f"Bearer {token}"})
        assert status == 200, body
        world.posts.append(body["id"])
    boundary = "seed"
    status, _, raw = live.raw("POST", "/api/v2/media", body=multipart({}, boundary=boundary, files=[
        ("file", "image/png", PNG)]), headers={"Authorization": f"Bearer {world.tokens[5]}",
                                              "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, raw
    world.media.append(json.loads(raw)["id"])
    status, app = live.call(None, "POST", "/api/v1/apps", {
        "client_name": "Fuzzer", "redirect_uris": [CALLBACK, OOB], "scopes": "read write"})
    assert status == 200, app
    world.client_id, world.client_secret = app["client_id"], app["client_secret"]
    return world


Request = tuple[str, str, str, bytes | None, dict[str, str]]


def _check(live: Live, before: tuple[Any, ...], request: Request, answer: tuple[int, str, bytes]) -> None:
    """What every answer must be: no 5xx; a refusal is a JSON error and leaves everything stored alone."""
    path = request[1]
    status, content_type, raw = answer
    shown = f"{request!r} -> {status} {content_type} {raw[:500]!r}"
    assert status < 500, shown
    if status < 400:
        return
    assert content_type == "application/json", shown
    body = json.loads(raw)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), shown
    # A request the HTTP parser refuses (a line over 8190 bytes) never reaches a surface: the
    # server answers it in the native format, whatever the path.
    refused_by_parser = status in (400, 431) and body.get("error") == "bad_request" and "8190" in str(body)
    if path.startswith("/oauth/") and not refused_by_parser:
        assert isinstance(body.get("error_description"), str), shown
    assert live.rows(*STATEFUL) == before, f"a refusal changed what is stored: {shown}"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


WHEN = st.one_of(
    st.datetimes(datetime(2025, 6, 1), datetime(2027, 1, 1), timezones=st.sampled_from([UTC, None])).map(_iso),
    st.sampled_from(("2026-01-01T12:04:00Z", "2026-01-01T12:06:00Z", "next tuesday", "2026-13-45",
                     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00")),
)
SENSITIVE = st.sampled_from((True, False, "true", "1", "0", "f", "off", "", "maybe", 2))
VISIBILITY = st.sampled_from(("public", "unlisted", "private", "direct", "everyone", "PUBLIC"))
LANGUAGE = st.sampled_from(("en", "de", "EN", "en-US", "xx", "e", "zh-Hant", "123"))
POLL = st.fixed_dictionaries({"options": st.lists(TEXT, max_size=4), "expires_in": st.integers(-10, 10 ** 7)})


def _statuses(ids: st.SearchStrategy[str], media: st.SearchStrategy[str]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "status": either(WORDS), "in_reply_to_id": either(ids), "spoiler_text": either(TEXT),
        "sensitive": either(SENSITIVE), "visibility": either(VISIBILITY), "language": either(LANGUAGE),
        "scheduled_at": either(WHEN), "media_ids": either(st.lists(media, max_size=5)), "poll": either(POLL),
    }


@st.composite
def plausible_api(draw: st.DrawFn, world: World) -> Request:
    """A call as a Mastodon app makes it, with a live token bound to an account, and varied
    texts and options: so that policies, rules, media and storage are fuzzed, not only parsing."""
    token = world.tokens[draw(st.integers(0, 6))]
    kind = draw(st.sampled_from(("post", "post", "post", "edit", "status", "scheduled", "media")))
    headers = {"Authorization": f"Bearer {token}"}
    if kind == "media":
        files = [("file", "image/png", PNG + draw(st.binary(max_size=20)))]
        _, body, more = draw(encoded(draw(params({"description": WORDS})), files=files))
        return "POST", "/api/v2/media", "", body, {**headers, **more}
    if kind == "status":
        method = draw(st.sampled_from(("GET", "DELETE")))
        return method, f"/api/v1/statuses/{draw(st.sampled_from(world.posts))}", "", None, headers
    if kind == "scheduled":
        query = draw(st.sampled_from(("", "limit=2", f"max_id={world.posts[-1]}")))
        return "GET", "/api/v1/scheduled_statuses", query, None, headers
    values = draw(params({
        "status": WORDS, "spoiler_text": WORDS, "sensitive": st.booleans(),
        "visibility": st.sampled_from(("public", "unlisted", "private", "direct")),
        "language": st.sampled_from(("en", "de", "pt")), "scheduled_at": st.sampled_from(("2026-01-02T00:00:00Z",
                                                                                         "2026-03-01T09:30:00+02:00")),
        "media_ids": st.lists(st.sampled_from(world.media), max_size=1),
    }, required=("status",)))
    how = draw(st.sampled_from(("json", "form")))
    body = json.dumps(values).encode() if how == "json" else urlencoded(values)
    headers["Content-Type"] = "application/json" if how == "json" else "application/x-www-form-urlencoded"
    if kind == "edit":
        return "PUT", f"/api/v1/statuses/{draw(st.sampled_from(world.posts))}", "", body, headers
    return "POST", "/api/v1/statuses", "", body, headers


def api_request(world: World) -> st.SearchStrategy[Request]:
    """Calls as apps make them, and calls as nobody should."""
    return st.one_of(plausible_api(world), hostile_api(world))


@st.composite
def hostile_api(draw: st.DrawFn, world: World) -> Request:
    """Any call to the client API: documented fields with documented values or anything else,
    in any encoding, with any token."""
    ids = st.one_of(st.sampled_from(world.posts), DIGITS, TEXT)
    media = st.one_of(st.sampled_from(world.media), DIGITS)
    fields = _statuses(ids, media)
    kind = draw(st.sampled_from(("post", "edit", "status", "scheduled", "scheduled_one", "media", "media_get",
                                 "media_file", "read", "passthrough")))
    files: list[tuple[str, str, bytes]] = []
    values: dict[str, Any] = {}
    if kind == "post":
        method, path = "POST", "/api/v1/statuses"
        values = draw(params(fields))
    elif kind == "edit":
        method, path = "PUT", f"/api/v1/statuses/{draw(ids)}"
        values = draw(params({k: fields[k] for k in ("status", "spoiler_text", "sensitive", "language",
                                                     "media_ids", "poll")}))
    elif kind == "status":
        method, path = draw(st.sampled_from(("GET", "DELETE"))), f"/api/v1/statuses/{draw(ids)}"
    elif kind == "scheduled":
        method, path = "GET", "/api/v1/scheduled_statuses"
        values = draw(params({name: either(DIGITS) for name in ("limit", "max_id", "since_id", "min_id")}))
    elif kind == "scheduled_one":
        method = draw(st.sampled_from(("GET", "PUT", "DELETE")))
        path = f"/api/v1/scheduled_statuses/{draw(ids)}"
        values = draw(params({"scheduled_at": either(WHEN)}))
    elif kind == "media":
        method, path = "POST", draw(st.sampled_from(("/api/v1/media", "/api/v2/media")))
        values = draw(params({"description": either(TEXT), "focus": either(TEXT)}))
        if draw(st.integers(0, 3)):
            content_type = draw(st.sampled_from(("image/png", "image/jpeg", "image/gif", "text/plain",
                                                 "image/svg+xml", "", "image/png; charset=x")))
            files.append((draw(st.sampled_from(("file", "file", "thumbnail", "status"))), content_type,
                          draw(st.one_of(st.just(PNG), st.binary(max_size=200)))))
    elif kind == "media_get":
        method, path = "GET", f"/api/v1/media/{draw(media)}"
    elif kind == "media_file":
        method, path = "GET", f"/media/{draw(media)}/{draw(st.one_of(TEXT, st.just('0' * 64)))}"
    elif kind == "read":
        method = "GET"
        path = draw(st.sampled_from(("/api/v1/instance", "/api/v2/instance", "/api/v1/accounts/verify_credentials",
                                     "/api/v1/apps/verify_credentials", "/api/v1/instance/")))
    else:
        method = draw(st.sampled_from(("GET", "POST", "DELETE", "PATCH")))
        segment = draw(st.sampled_from(("timelines/home", "notifications", "accounts/1/statuses",
                                        "favourites", "accounts/1/follow", "admin/accounts", "statuses/1/favourite")))
        path = f"/api/{draw(st.sampled_from(('v1', 'v2')))}/{segment}"
        values = draw(params({"limit": either(DIGITS), "max_id": either(DIGITS)}))
    query, body, headers = draw(encoded(values, files=files))
    if kind in ("status", "media_get", "media_file", "read"):
        body = None
        headers = {}
    headers.update(draw(_auth(world)))
    if draw(st.integers(0, 4)) == 0:
        headers["Idempotency-Key"] = draw(TEXT.filter(lambda t: t.isprintable() and "\n" not in t))
    return method, path, query, body, headers


@st.composite
def _auth(draw: st.DrawFn, world: World) -> dict[str, str]:
    token = draw(st.one_of(st.sampled_from(world.tokens), st.sampled_from(("byl_junk", "", "x" * 300))))
    scheme = draw(st.sampled_from(("Bearer", "Bearer", "Bearer", "bearer", "Basic", "")))
    if not scheme and not token:
        return {}
    return {"Authorization": f"{scheme} {token}".strip()}


def _send(live: Live, method: str, path: str, query: str, body: bytes | None,
          headers: dict[str, str]) -> tuple[int, str, bytes]:
    target = f"{path}?{query}" if query else path
    return live.raw(method, target, body=body, headers=headers)


def test_client_api_never_fails_inside_and_refusals_store_nothing(world: World) -> None:
    """Random statuses, edits, schedules, uploads and reads: no 5xx, JSON refusals, nothing stored on refusal."""
    live = world.live

    @SETTINGS
    @given(request=api_request(world))
    def run(request: Request) -> None:
        before = live.rows(*STATEFUL)
        _check(live, before, request, _send(live, *request))

    run()


OAUTH_GRANTS = st.sampled_from(("authorization_code", "client_credentials", "password", "refresh_token",
                                "AUTHORIZATION_CODE", "", "implicit"))


@st.composite
def plausible_oauth(draw: st.DrawFn, world: World) -> Request:
    """A code exchanged as an app does it (with PKCE or without), or a token revoked."""
    if draw(st.integers(0, 3)) == 2:
        values = {"token": draw(st.sampled_from(world.tokens)), "client_id": world.client_id,
                  "client_secret": world.client_secret}
        path = "/oauth/revoke"
    else:
        verifier, challenge = pkce_pair()
        pkce = draw(st.booleans())
        values = {"grant_type": "authorization_code", "code": world.code(challenge=challenge if pkce else None),
                  "client_id": world.client_id, "redirect_uri": CALLBACK,
                  **({"code_verifier": verifier} if pkce else {"client_secret": world.client_secret})}
        path = "/oauth/token"
    if draw(st.booleans()):
        return "POST", path, "", json.dumps(values).encode(), {"Content-Type": "application/json"}
    return "POST", path, "", urlencoded(values), {"Content-Type": "application/x-www-form-urlencoded"}


def oauth_request(world: World) -> st.SearchStrategy[Request]:
    """Exchanges and registrations as apps make them, and as nobody should."""
    return st.one_of(plausible_oauth(world), hostile_oauth(world))


@st.composite
def hostile_oauth(draw: st.DrawFn, world: World) -> Request:
    """One request to ``/api/v1/apps``, ``/oauth/token`` or ``/oauth/revoke``, sometimes with a live code."""
    client_id = st.one_of(st.just(world.client_id), TEXT)
    secret = st.one_of(st.just(world.client_secret), TEXT)
    redirect = st.sampled_from((CALLBACK, OOB, "https://evil.example/", "", "javascript:alert(1)"))
    kind = draw(st.sampled_from(("apps", "token", "token", "revoke")))
    if kind == "apps":
        path = "/api/v1/apps"
        values = draw(params({
            "client_name": either(TEXT), "redirect_uris": either(st.one_of(redirect, st.lists(redirect, max_size=3))),
            "scopes": either(st.sampled_from(("read", "write", "read write follow push", "admin:read",
                                              "read:statuses write:media", "profile", "bogus"))),
            "website": either(st.sampled_from(("https://app.example", "ftp://x", "javascript:x", ""))),
        }))
    elif kind == "token":
        path = "/oauth/token"
        verifier, challenge = pkce_pair()
        live_code = draw(st.integers(0, 7)) == 5
        pkce = live_code and draw(st.booleans())
        code = world.code(challenge=challenge if pkce else None) if live_code else draw(TEXT)
        values = draw(params({
            "grant_type": either(OAUTH_GRANTS), "code": st.just(code), "client_id": either(client_id),
            "client_secret": either(secret), "redirect_uri": either(redirect), "scope": either(TEXT),
            "code_verifier": either(st.one_of(st.just(verifier), TEXT)),
        }))
    else:
        path = "/oauth/revoke"
        values = draw(params({"token": either(st.one_of(st.sampled_from(world.tokens), TEXT)),
                              "client_id": either(client_id), "client_secret": either(secret)}))
    query, body, headers = draw(encoded(values))
    if draw(st.integers(0, 3)) == 0:
        pair = f"{draw(client_id)}:{draw(secret)}".encode("utf-8", "surrogatepass")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return "POST", path, query, body, headers


def test_apps_and_oauth_endpoints_never_fail_inside(world: World) -> None:
    """App registrations, code exchanges (live codes too) and revocations: no 5xx, OAuth's JSON errors,
    nothing stored on refusal; a token is issued only in exchange for a live code."""
    live = world.live

    @SETTINGS
    @given(request=oauth_request(world))
    def run(request: Request) -> None:
        before = live.rows(*STATEFUL)
        status, content_type, raw = _send(live, *request)
        _check(live, before, request, (status, content_type, raw))
        if request[1] == "/oauth/token" and status == 200:
            assert json.loads(raw)["access_token"].startswith("byl_")

    run()

