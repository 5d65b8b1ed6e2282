"""Bad input on the Mastodon surface: Mastodon's status codes and error bodies, and nothing published."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import FormData
from mastodon import Mastodon, MastodonAPIError, MastodonUnauthorizedError

from gateway.appkeys import IDENTITY
from tests.clients.signin import form_of, pkce_pair, sign_in, with_pkce
from tests.clients.world import World
from tests.images import PNG

OOB = "urn:ietf:wg:oauth:2.0:oob"
CALLBACK = "https://app.example/callback"
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the "
                         "redirection URI used in the authorization request, or was issued to another client.",
}
INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": "Client authentication failed due to unknown client, no client authentication "
                         "included, or unsupported authentication method.",
}


async def _post(world: World, token: str | None, path: str = "/api/v1/statuses", **kwargs: Any) -> tuple[int, Any]:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await world.gateway.call(None, kwargs.pop("method", "POST"), path, headers=headers, **kwargs)


async def _nothing_published(world: World, before: tuple[Any, ...]) -> None:
    await world.gateway.tick()
    assert await world.gateway.snapshot() == before
    for account in ("direct", "delayed", "cosigned", "managed", "solo"):
        assert await world.gateway.timeline(account) == []
    assert world.upstream.statuses() == []


async def _register(world: World, *, redirect: str = CALLBACK, scopes: str = "read write") -> tuple[str, str]:
    status, app = await world.gateway.call(None, "POST", "/api/v1/apps", data={
        "client_name": "Tester", "redirect_uris": redirect, "scopes": scopes,
    })
    assert status == 200, app
    return app["client_id"], app["client_secret"]


async def test_unknown_missing_and_revoked_tokens(world: World) -> None:
    """No token, an unknown one, a revoked one: 401 "The access token is invalid", nothing posted."""
    before = await world.gateway.snapshot()
    revoked = await world.token("alice", "direct")
    status, _ = await _post(world, revoked, json={"status": "before revoking"})
    assert status == 200
    await world.gateway.app[IDENTITY].revoke(revoked)
    before = await world.gateway.snapshot()
    for token in (None, "byl_unknown", revoked):
        status, body = await _post(world, token, json={"status": "Hello"})
        assert (status, body) == (401, {"error": "The access token is invalid"})
    with pytest.raises(MastodonUnauthorizedError):
        await world.run(Mastodon(access_token=revoked, api_base_url=world.base).status_post, "Hello")
    assert await world.gateway.snapshot() == before


async def test_token_for_another_account_sees_nothing(world: World) -> None:
    """A token bound to one account cannot read, edit or delete another account's status: 404."""
    carol = await world.token("carol", "cosigned")
    status, made = await _post(world, carol, json={"status": "Held for approval"})
    assert status == 200
    alice = await world.token("alice", "direct")  # alice may approve nothing there, but is its owner
    before = await world.gateway.snapshot()
    for method in ("GET", "PUT", "DELETE"):
        status, body = await _post(world, alice, f"/api/v1/statuses/{made['id']}", method=method,
                                   json={"status": "Hijacked"} if method == "PUT" else None)
        assert (status, body) == (404, {"error": "Record not found"}), method
    assert await world.gateway.snapshot() == before


async def test_malformed_bodies(world: World) -> None:
    """Broken JSON, JSON that is not an object, undecodable form data: 400; an unread body type: 422."""
    token = await world.token("alice", "direct")
    before = await world.gateway.snapshot()
    parse_error = (400, {"error": "Error while parsing request body"})
    cases: list[tuple[bytes, str, tuple[int, Any]]] = [
        (b'{"status": "unterminated', "application/json", parse_error),
        (b'["status", "a list"]', "application/json", parse_error),
        (b"status=%FF%FE%FD\xff", "application/x-www-form-urlencoded", parse_error),
        (b"--x\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nno end", "multipart/form-data; boundary=x",
         parse_error),
        (b"status=Hello", "text/plain", (422, {"error": "Validation failed: Text can't be blank"})),
    ]
    for body, content_type, expected in cases:
        assert await _post(world, token, data=body, headers={"Content-Type": content_type}) == expected, body
    await _nothing_published(world, before)


async def test_forms_that_are_not_text_are_refused(world: World) -> None:
    """A %-escape that is not UTF-8 (in a form or the query) and a charset that is none (of the
    form or of a part): 400, as Rails answers, never the words read as U+FFFD nor a crash."""
    token = await world.token("alice", "direct")
    before = await world.gateway.snapshot()
    parse_error = (400, {"error": "Error while parsing request body"})
    unknown_part = (b"--x\r\nContent-Disposition: form-data; name=\"status\"\r\n"
                    b"Content-Type: text/plain; charset=nonsense\r\n\r\nHello\r\n--x--\r\n")
    cases: list[tuple[bytes, str, tuple[int, Any]]] = [
        (b"status=a%FF%FEb", "application/x-www-form-urlencoded", parse_error),
        (b"status=Hello", "application/x-www-form-urlencoded; charset=nonsense", parse_error),
        (unknown_part, "multipart/form-data; boundary=x", parse_error),
    ]
    for body, content_type, expected in cases:
        assert await _post(world, token, data=body, headers={"Content-Type": content_type}) == expected, body
    assert await _post(world, token, "/api/v1/statuses?status=a%FF%FEb") == \
        (400, {"error": "the query string has a %-escape that is not UTF-8 text"})
    # Before anyone signs in, too: the token endpoint and the sign-in form.
    for path in ("/oauth/token", "/oauth/authorize"):
        status, _ = await _post(world, None, path, data=b"grant_type=password",
                                headers={"Content-Type": "application/x-www-form-urlencoded; charset=nonsense"})
        assert status == 400, path
    await _nothing_published(world, before)


async def test_all_three_body_formats_post(world: World) -> None:
    """Form-encoded, multipart and JSON bodies are each taken, as Mastodon takes them."""
    token = await world.token("alice", "direct")
    multipart = FormData()
    multipart.add_field("status", "multipart")
    multipart.add_field("sensitive", "true")
    bodies: list[dict[str, Any]] = [
        {"data": {"status": "form", "visibility": "private"}},
        {"data": multipart},
        {"json": {"status": "json", "sensitive": True, "media_ids": []}},
    ]
    made = []
    for body in bodies:
        status, answer = await _post(world, token, **body)
        assert status == 200, answer
        made.append((answer["content"], answer["visibility"], answer["sensitive"]))
    assert made == [("<p>form</p>", "private", False), ("<p>multipart</p>", "public", True),
                    ("<p>json</p>", "public", True)]


async def test_oversize_statuses_and_bodies(world: World) -> None:
    """A status over the account's limit is Mastodon's 422; a body over the gateway's limit is 413."""
    token = await world.token("alice", "direct")
    before = await world.gateway.snapshot()
    status, body = await _post(world, token, data={"status": "x" * 501})
    assert (status, body) == (422, {"error": "Validation failed: Text character limit of 500 exceeded"})
    huge = io.BytesIO(b"status=" + b"x" * (2 * 1024 * 1024))
    status, body = await _post(world, token, data=huge,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and set(body) == {"error"}
    await _nothing_published(world, before)


@pytest.mark.parametrize(("params", "error"), [
    ({"status": "   "}, "Validation failed: Text can't be blank"),
    ({"status": "Hi", "visibility": "everyone"}, "Validation failed: Visibility is not included in the list"),
    ({"status": "Hi", "scheduled_at": "2026-01-01T12:04:00Z"},
     "Validation failed: Scheduled at The scheduled date must be in the future"),
    ({"status": "Hi", "scheduled_at": "next tuesday"}, "Validation failed: Scheduled at is invalid"),
    ({"status": "Hi", "poll[options][]": "yes", "poll[expires_in]": "300"},
     "Validation failed: Byline does not carry polls"),
    ({"status": "Hi", "media_ids[]": "12345"},
     "Validation failed: Media 12345 not found or already attached to another post"),
])
async def test_invalid_statuses(world: World, params: dict[str, str], error: str) -> None:
    """Each invalid status parameter is a 422 in Mastodon's words, and nothing is posted."""
    token = await world.token("alice", "direct")
    before = await world.gateway.snapshot()
    assert await _post(world, token, data=params) == (422, {"error": error})
    await _nothing_published(world, before)


async def test_wrong_pkce_verifier_then_replay(world: World) -> None:
    """A wrong verifier is invalid_grant (the code survives); a replayed code is refused and its token revoked."""
    client_id, _ = await _register(world, redirect=OOB)
    verifier, challenge = pkce_pair()
    url = f"{world.base}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={OOB}&scope=write"
    code = await sign_in(with_pkce(url, challenge), token=world.gateway.tokens["alice"], account="direct")
    exchange = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": OOB}
    for wrong in ({}, {"code_verifier": pkce_pair()[0]}, {"code_verifier": "short"}):
        assert await _post(world, None, "/oauth/token", data={**exchange, **wrong}) == (400, INVALID_GRANT)
    status, granted = await _post(world, None, "/oauth/token", data={**exchange, "code_verifier": verifier})
    assert status == 200
    status, _ = await _post(world, granted["access_token"], json={"status": "from a phone"})
    assert status == 200
    before = await world.gateway.snapshot()
    replay = {**exchange, "code_verifier": verifier}
    assert await _post(world, None, "/oauth/token", data=replay) == (400, INVALID_GRANT)
    status, body = await _post(world, granted["access_token"], json={"status": "after the replay"})
    assert (status, body) == (401, {"error": "The access token is invalid"})
    assert await world.gateway.snapshot() == before


async def test_token_endpoint_refusals(world: World) -> None:
    """Wrong secrets, no client authentication without PKCE, wrong redirect, expiry: Doorkeeper's errors."""
    client_id, secret = await _register(world, redirect=OOB)
    url = f"{world.base}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={OOB}&scope=read"
    code = await sign_in(url, token=world.gateway.tokens["bob"], account="delayed")
    good = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "client_secret": secret,
            "redirect_uri": OOB}
    refusals: list[tuple[dict[str, str], tuple[int, Any]]] = [
        ({"client_secret": "wrong"}, (401, INVALID_CLIENT)),
        ({"client_id": "unknown"}, (401, INVALID_CLIENT)),
        ({"client_secret": ""}, (401, INVALID_CLIENT)),  # a public client must use PKCE
        ({"redirect_uri": "https://elsewhere.example/"}, (400, INVALID_GRANT)),
        ({"code_verifier": pkce_pair()[0]}, (400, INVALID_GRANT)),  # PKCE cannot be added afterwards
        ({"code": "made-up"}, (400, INVALID_GRANT)),
        ({"grant_type": "password"}, (400, {"error": "unsupported_grant_type", "error_description":
                                            "The authorization grant type is not supported by the "
                                            "authorization server."})),
        ({"code": ""}, (400, {"error": "invalid_request", "error_description": "Missing required parameter: code."})),
    ]
    for change, expected in refusals:
        assert await _post(world, None, "/oauth/token", data={**good, **change}) == expected, change
    world.gateway.clock.advance(timedelta(minutes=10, seconds=1))
    assert await _post(world, None, "/oauth/token", data=good) == (400, INVALID_GRANT)


async def test_authorization_request_refusals(world: World) -> None:
    """Unknown apps and unregistered redirect URIs stay on the page; later errors are said on the
    page too, with a link that takes them back to the app: nobody is sent on to an app unasked."""
    client_id, _ = await _register(world, scopes="read")
    base = f"/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={CALLBACK}&state=s1"
    for bad in ("/oauth/authorize?response_type=code&client_id=nope&redirect_uri=" + CALLBACK,
                f"/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri=https://evil.example/"):
        async with world.gateway.client.get(bad, allow_redirects=False) as page:
            assert page.status == 400 and page.content_type == "text/html"
    for query, error in ((base + "&scope=write", "invalid_scope"),
                         (base.replace("response_type=code", "response_type=token"), "unsupported_response_type"),
                         (base + "&code_challenge=" + "a" * 43 + "&code_challenge_method=plain", "invalid_request")):
        async with world.gateway.client.get(query, allow_redirects=False) as answer:
            assert answer.status == 400 and "Location" not in answer.headers, query
            page = await answer.text()
        link = re.search(r'<a href="([^"]+)" rel="noreferrer">Return to <bdi>Tester</bdi></a>', page)
        assert link is not None, page
        location = html.unescape(link.group(1))
        assert location.startswith(CALLBACK + "?")
        found = parse_qs(urlsplit(location).query)
        assert (found["error"], found["state"]) == ([error], ["s1"])


async def test_signin_form_refusals(world: World) -> None:
    """A form posted without the page's cookie is 403; a wrong token is asked again; deny goes back."""
    client_id, _ = await _register(world)
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": "read",
             "state": "s2", "csrf": "forged"}
    async with world.gateway.client.post("/oauth/authorize", data={**query, "token": world.gateway.tokens["alice"],
                                                                    "decision": "allow", "account": "direct"},
                                         allow_redirects=False) as forged:
        assert forged.status == 403
    async with world.gateway.client.get("/oauth/authorize", params={k: v for k, v in query.items() if k != "csrf"}) \
            as page:
        nonce = page.cookies["byline_signin"].value
        query["csrf"] = form_of(await page.text())[0]["csrf"]
    headers = {"Cookie": f"byline_signin={nonce}"}
    async with world.gateway.client.post("/oauth/authorize", data={**query, "token": "byl_wrong"},
                                         headers=headers) as wrong:
        assert wrong.status == 401
        assert 'role="alert"' in await wrong.text()
    async with world.gateway.client.post("/oauth/authorize", data={**query, "decision": "deny"}, headers=headers,
                                         allow_redirects=False) as denied:
        assert denied.status == 302
        assert parse_qs(urlsplit(denied.headers["Location"]).query)["error"] == ["access_denied"]
    async with world.gateway.client.post("/oauth/authorize", data={**query, "token": world.gateway.tokens["alice"],
                                                                    "decision": "allow", "account": "managed"},
                                         headers=headers, allow_redirects=False) as not_hers:
        assert not_hers.status == 403  # alice has no role on managed


async def test_revoke_refusals(world: World) -> None:
    """An app may revoke only its own tokens. Another app's token, a person's own token, a dead
    one and one never made all get the same empty 200 (no oracle of which tokens are live), and
    the live ones keep working."""
    client_id, secret = await _register(world, redirect=OOB)
    other_id, other_secret = await _register(world, redirect=OOB)
    url = f"{world.base}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={OOB}&scope=read"
    code = await sign_in(url, token=world.gateway.tokens["alice"], account="direct")
    _, granted = await _post(world, None, "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id, "client_secret": secret,
        "redirect_uri": OOB})
    for token in (granted["access_token"], world.gateway.tokens["alice"], "byl_never_made"):
        assert await _post(world, None, "/oauth/revoke", data={
            "client_id": other_id, "client_secret": other_secret, "token": token}) == (200, {})
    for token in (world.gateway.tokens["alice"], "byl_dead"):
        assert await _post(world, None, "/oauth/revoke", data={
            "client_id": client_id, "client_secret": secret, "token": token}) == (200, {})
    status, _ = await _post(world, granted["access_token"], "/api/v1/accounts/verify_credentials", method="GET")
    assert status == 200
    status, _ = await world.gateway.call("alice", "GET", "/v1/accounts")
    assert status == 200


@pytest.mark.parametrize(("params", "error"), [
    ({"redirect_uris": CALLBACK}, "Validation failed: Application name can't be blank"),
    ({"client_name": "x"}, "Validation failed: Redirect URI can't be blank"),
    ({"client_name": "x", "redirect_uris": "/relative"}, "Validation failed: Redirect URI must be an absolute URI."),
    ({"client_name": "x", "redirect_uris": "javascript:alert(1)"},
     "Validation failed: Redirect URI is forbidden by the server."),
    ({"client_name": "x", "redirect_uris": CALLBACK + "#frag"},
     "Validation failed: Redirect URI cannot contain a fragment."),
    ({"client_name": "x", "redirect_uris": CALLBACK, "scopes": "read admin:write"},
     "Validation failed: Scopes doesn't match configured on the server."),
])
async def test_app_registration_refusals(world: World, params: dict[str, str], error: str) -> None:
    """POST /api/v1/apps refuses what Mastodon refuses, with its 422 words."""
    assert await world.gateway.call(None, "POST", "/api/v1/apps", data=params) == (422, {"error": error})


async def test_signin_ticket_never_shows_the_token_and_ends(world: World) -> None:
    """Step two carries a ticket, not the token; it works once, and not after ten minutes."""
    client_id, _ = await _register(world, redirect=OOB)
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"}
    token = world.gateway.tokens["alice"]
    async with world.gateway.client.get("/oauth/authorize", params=query) as page:
        nonce = page.cookies["byline_signin"].value
        form = {**query, "csrf": form_of(await page.text())[0]["csrf"]}
    headers = {"Cookie": f"byline_signin={nonce}"}

    async def submit(**extra: str) -> tuple[int, str]:
        async with world.gateway.client.post("/oauth/authorize", data={**form, **extra}, headers=headers,
                                             allow_redirects=False) as answer:
            return answer.status, await answer.text()

    status, step_two = await submit(token=token)
    assert status == 200 and token not in step_two
    fields, _ = form_of(step_two)
    ticket = fields["ticket"]
    status, done = await submit(ticket=ticket, decision="allow", account="direct")
    assert status == 200 and '<code id="code">' in done
    status, again = await submit(ticket=ticket, decision="allow", account="direct")
    assert status == 401 and "This sign-in has ended" in again
    _, step_two = await submit(token=token)
    late = form_of(step_two)[0]["ticket"]
    world.gateway.clock.advance(timedelta(minutes=10, seconds=1))
    status, expired = await submit(ticket=late, decision="allow", account="direct")
    assert status == 401 and "This sign-in has ended" in expired


async def test_media_refusals(world: World) -> None:
    """Media for a platform that takes none, a type no platform takes, or someone else's upload: 422."""
    sandbox = await world.client("alice", "direct")
    with pytest.raises(MastodonAPIError) as no_media:
        await world.run(sandbox.media_post, b"GIF89a" + b"\x00" * 32, mime_type="image/gif")
    assert no_media.value.args[1:4:2] == (
        422, "Validation failed: direct is on sandbox, which takes no media through Byline")
    masto = await world.client("alice", "masto")
    with pytest.raises(MastodonAPIError) as wrong_type:
        await world.run(masto.media_post, b"%PDF-1.7", mime_type="application/pdf")
    assert wrong_type.value.args[1:4:2] == (
        422, "Validation failed: File content type is invalid, File is invalid")
    big = PNG + b"\x00" * (3 * 1024 * 1024)  # larger than a JSON body may be
    mine = await world.run(masto.media_post, big, mime_type="image/png")
    carol = await world.client("carol", "masto")
    before = await world.gateway.snapshot()
    with pytest.raises(MastodonAPIError) as not_hers:
        await world.run(carol.status_post, "With alice's picture", media_ids=[mine.id])
    assert not_hers.value.args[1:4:2] == (
        422, f"Validation failed: Media {mine.id} not found or already attached to another post")
    await _nothing_published(world, before)

