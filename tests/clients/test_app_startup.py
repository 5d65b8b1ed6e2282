"""What popular Mastodon apps ask at sign-in and start-up, asked as they ask it, over a real
gateway: the answers decode as the apps decode them.

Ice Cubes (Swift) decodes every URL of an Account (``avatar``, ``header``, ``url``) with
Foundation's ``URL``, for which "" is no URL: the account fails to decode, so the sign-in
(``verify_credentials``) and every status showing the account fail with it. It decodes the
Instance (``/api/v2/instance``) the same way, ``thumbnail.url`` included, and when that fails
it keeps no instance, so its composer does not know the account's character limit.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.services.identity import Identity
from gateway.storage.db import DatabaseUnavailable
from tests.clients import mastodon_shapes as shapes
from tests.clients.signin import sign_in
from tests.clients.world import World
from tests.conftest import finding_the_database_gone

_ACCOUNT_URLS = ("avatar", "avatar_static", "header", "header_static", "url", "uri")


def swift_url(value: Any) -> bool:
    """Whether Foundation's ``URL`` (as ``Codable`` decodes one) would take ``value`` as an
    address an app can load: an absolute http(s) URL. "" it refuses outright."""
    if not isinstance(value, str) or not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


async def _get(world: World, path: str, token: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with world.gateway.client.get(path, headers=headers, **kwargs) as resp:
        body = await resp.text()
        assert resp.status == 200, (path, resp.status, body)
        return json.loads(body)


async def test_an_account_byline_shows_itself_has_urls_an_app_decodes(world: World) -> None:
    """A sandbox account (Byline builds its Account entity): verify_credentials, the account in
    a status, lookup and the account by id give absolute URLs for its pictures and its page, as
    Mastodon does (``…/avatars/original/missing.png`` for no picture), and the pictures load."""
    erin = await world.token("erin", "solo")
    me = await _get(world, "/api/v1/accounts/verify_credentials", erin)
    async with world.gateway.client.post("/api/v1/statuses", headers={"Authorization": f"Bearer {erin}"},
                                         json={"status": "Hello from Ice Cubes"}) as resp:
        assert resp.status == 200, await resp.text()
        status = await resp.json()
    looked_up = await _get(world, "/api/v1/accounts/lookup", erin, params={"acct": me["acct"]})
    by_id = await _get(world, f"/api/v1/accounts/{me['id']}", erin)

    for where, account in (("verify_credentials", me), ("status", status["account"]),
                           ("lookup", looked_up), ("accounts/:id", by_id)):
        assert {k: swift_url(account[k]) for k in _ACCOUNT_URLS} == dict.fromkeys(_ACCOUNT_URLS, True), (
            where, {k: account[k] for k in _ACCOUNT_URLS})
        shapes.check("Account", account)
    assert me["avatar"] == f"{world.base}/avatars/original/missing.png"
    assert me["header"] == f"{world.base}/headers/original/missing.png"

    for picture in (me["avatar"], me["header"]):
        async with world.gateway.client.get(urlsplit(picture).path) as resp:
            assert (resp.status, resp.content_type) == (200, "image/png")
            assert (await resp.read()).startswith(b"\x89PNG\r\n\x1a\n")


async def test_the_instance_decodes_with_its_thumbnail(world: World) -> None:
    """``/api/v2/instance`` (as Ice Cubes asks it, with the token) has a thumbnail URL an app
    decodes, and so its limits reach the composer; v1's thumbnail is a URL too, as documented."""
    erin = await world.token("erin", "solo")
    for token in (None, erin):
        v2 = await _get(world, "/api/v2/instance", token)
        assert swift_url(v2["thumbnail"]["url"]), v2["thumbnail"]
        shapes.check("Instance", v2)
        v1 = await _get(world, "/api/v1/instance", token)
        assert swift_url(v1["thumbnail"]), v1["thumbnail"]
        shapes.check("InstanceV1", v1)
    async with world.gateway.client.get(urlsplit(v2["thumbnail"]["url"]).path) as resp:
        assert (resp.status, resp.content_type) == (200, "image/png")


async def test_the_instance_asked_with_a_token_as_the_database_is_gone_is_a_503(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as the token is looked up says nothing of the token: 503 with
    the database's message, which an app asks again. Before: 200 with the limits of no account
    (500 characters, none less its disclosure line), which an app keeps for its composer."""
    erin = await world.token("erin", "solo")

    gone = finding_the_database_gone()

    monkeypatch.setattr(Identity, "authenticate_app", gone)
    for path in ("/api/v1/instance", "/api/v2/instance"):
        async with world.gateway.client.get(path, headers={"Authorization": f"Bearer {erin}"}) as resp:
            assert (resp.status, (await resp.json()).get("error")) == (503, DatabaseUnavailable().message), path


async def test_a_token_for_profile_alone_verifies_the_account(world: World) -> None:
    """An app that only signs a person in asks for ``profile`` (Mastodon 4.3's scope for it);
    ``verify_credentials`` takes that token, as the Mastodon docs have it (``profile`` or
    ``read:accounts``), and nothing else does: the statuses stay out of its reach."""
    oob = "urn:ietf:wg:oauth:2.0:oob"
    async with world.gateway.client.post("/api/v1/apps", json={
            "client_name": "Sign in with Mastodon", "redirect_uris": [oob], "scopes": "profile"}) as resp:
        app = await resp.json()
    url = (f"{world.base}/oauth/authorize?response_type=code&client_id={app['client_id']}"
           f"&redirect_uri={oob}&scope=profile")
    code = await sign_in(url, token=world.gateway.tokens["erin"], account="solo")
    async with world.gateway.client.post("/oauth/token", json={
            "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
            "client_secret": app["client_secret"], "redirect_uri": oob, "scope": "profile"}) as resp:
        granted = await resp.json()
    assert granted["scope"] == "profile"
    token = granted["access_token"]

    me = await _get(world, "/api/v1/accounts/verify_credentials", token)
    shapes.check("CredentialAccount", me)
    async with world.gateway.client.get("/api/v1/scheduled_statuses",
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 403
    async with world.gateway.client.post("/api/v1/statuses", headers={"Authorization": f"Bearer {token}"},
                                         json={"status": "Not with profile"}) as resp:
        assert resp.status == 403


_QUIET = {
    # What the Mastodon web app (4.3) and Phanpy ask at start-up and on the notifications tab,
    # with the entity each is documented to answer, as an instance with nothing to show answers.
    "/api/v2/notifications?types[]=mention&expand_accounts=partial_avatars": {
        "accounts": [], "statuses": [], "notification_groups": []},
    "/api/v2/notifications/unread_count": {"count": 0},
    "/api/v1/notifications/unread_count": {"count": 0},
    "/api/v2/notifications/policy": {
        "for_not_following": "accept", "for_not_followers": "accept", "for_new_accounts": "accept",
        "for_private_mentions": "filter", "for_limited_accounts": "filter",
        "summary": {"pending_requests_count": 0, "pending_notifications_count": 0}},
    "/api/v1/notifications/policy": {
        "filter_not_following": False, "filter_not_followers": False, "filter_new_accounts": False,
        "filter_private_mentions": True,
        "summary": {"pending_requests_count": 0, "pending_notifications_count": 0}},
    "/api/v2/search?q=launch&resolve=false": {"accounts": [], "statuses": [], "hashtags": []},
    "/api/v1/instance/rules": [],
    "/api/v1/instance/translation_languages": {},
    "/api/v1/statuses?id[]=1&id[]=2": [],
}


async def test_start_up_reads_answer_quietly_for_an_account_with_no_instance(world: World) -> None:
    """For an account on another platform (here the sandbox), the reads an app built for
    Mastodon 4.3 makes at start-up answer 200 with their documented entity, empty, instead of
    404: the grouped notifications (``/api/v2/notifications``, which the web app and Phanpy use
    on an instance with ``api_versions.mastodon`` 2), unread counts, the notification policy,
    search, the instance's rules, and statuses by ``id[]`` (Phanpy's batch fetch of the posts
    replied to, on 4.3)."""
    erin = await world.token("erin", "solo")
    answered = {path: await _get(world, path, erin) for path in _QUIET}
    assert answered == _QUIET
    me = await _get(world, "/api/v1/accounts/verify_credentials", erin)
    for path in (f"/api/v1/accounts/{me['id']}/featured_tags", f"/api/v1/accounts/{me['id']}/lists"):
        assert await _get(world, path, erin) == []


async def test_statuses_by_id_are_asked_of_the_instance(world: World) -> None:
    """Phanpy, on Mastodon 4.3, fetches the posts its timeline's replies answer in one call,
    ``GET /api/v1/statuses?id[]=…``: for a Mastodon account it is relayed to the instance (a
    read, as ``/api/v1/statuses/:id`` is), not refused."""
    alice = await world.token("alice", "masto")
    async with world.gateway.client.post("/api/v1/statuses", headers={"Authorization": f"Bearer {alice}"},
                                         json={"status": "The parent"}) as resp:
        made = await resp.json()
    await world.gateway.tick()
    remote_id = (await _get(world, f"/api/v1/statuses/{made['id']}", alice))["byline"]["url"].rsplit("/", 1)[-1]
    found = await _get(world, f"/api/v1/statuses?id[]={remote_id}&id[]=999999", alice)
    assert [s["id"] for s in found] == [remote_id]


async def test_a_quote_post_is_refused_not_sent_without_its_quote(world: World) -> None:
    """An app that quotes as on Mastodon 4.5 (``quoted_status_id``; Ice Cubes does where the
    instance says it takes quotes) gets a 422 saying Byline does not carry quotes, as for a
    poll, and nothing is stored: the post used to be taken and sent without the status it
    quoted, its words alone."""
    erin = await world.token("erin", "solo")
    async with world.gateway.client.post("/api/v1/statuses", headers={"Authorization": f"Bearer {erin}"}, json={
            "status": "This, exactly", "quoted_status_id": "110000000000000001",
            "quote_approval_policy": "public"}) as resp:
        assert resp.status == 422
        assert (await resp.json())["error"] == "Validation failed: Byline does not carry quote posts"
    async with world.gateway.client.get("/api/v1/accounts/verify_credentials",
                                        headers={"Authorization": f"Bearer {erin}"}) as resp:
        me = await resp.json()
    assert await _get(world, f"/api/v1/accounts/{me['id']}/statuses", erin) == []
    assert await _get(world, "/api/v1/scheduled_statuses", erin) == []


async def test_statuses_by_id_mix_byline_posts_and_the_instances(world: World) -> None:
    """On a Mastodon account, ``statuses(ids)`` answers a post Byline made (by Byline's id,
    as the app knows it) from Byline's record, a held one included, and relays the other ids
    to the instance, all in the order asked."""
    alice = await world.token("alice", "masto")
    api = await world.client("alice", "masto")
    out = await world.run(api.status_post, "Out on the instance")
    await world.gateway.tick()
    remote_id = (await _get(world, f"/api/v1/statuses/{out.id}", alice))["byline"]["url"].rsplit("/", 1)[-1]
    found = await world.run(api.statuses, [remote_id, out.id, "999999"])
    assert [s.id for s in found] == [remote_id, out.id]
    assert found[0].content == found[1].content
