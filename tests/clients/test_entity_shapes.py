"""Every entity Byline builds has Mastodon's documented shape (``mastodon_shapes``): a whole
session over a real gateway, as an app drives it (register, sign in, verify, instance, upload
and describe media, post, schedule, be held, edit, list, delete, be refused), each answer
validated as it comes; and what the docs require that Byline used to leave out: a held post's
``scheduled_at`` (when it would go out if approved now), a status's ``url`` before it is out
(its page on Byline), the Application's ``id``, ``scopes`` and ``redirect_uris``. Both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import FormData
from mastodon import Mastodon

from tests.clients import mastodon_shapes as shapes
from tests.clients.signin import sign_in
from tests.clients.world import World
from tests.images import PNG

OOB = "urn:ietf:wg:oauth:2.0:oob"
CALLBACK = "https://app.example/callback"


class Session:
    """Raw calls to the gateway, each answer decoded as JSON and validated as an entity."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def call(self, method: str, path: str, token: str | None = None, *, expect: int = 200,
                   **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.world.gateway.client.request(method, path, headers=headers, **kwargs) as resp:
            body = json.loads(await resp.text())
            assert resp.status == expect, (method, path, resp.status, body)
            return body

    async def entity(self, name: str, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        body = await self.call(method, path, token, **kwargs)
        shapes.check(name, body)
        return body

    async def refused(self, status: int, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        body = await self.call(method, path, token, expect=status, **kwargs)
        shapes.check("Error", body)
        return body


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_a_session_answers_only_documented_entities(world: World) -> None:
    """Register, sign in, verify, instance, media, post, schedule, hold, edit, list, delete and
    refusals: every answer is the documented entity."""
    s = Session(world)
    base = world.base
    registered = await s.entity("CredentialApplication", "POST", "/api/v1/apps", data={
        "client_name": "Shapes", "redirect_uris": f"{OOB}\n{CALLBACK}", "scopes": "read write",
        "website": "https://app.example/"})
    url = (f"{base}/oauth/authorize?response_type=code&client_id={registered['client_id']}"
           f"&redirect_uri={OOB}&scope=read+write")
    code = await sign_in(url, token=world.gateway.tokens["carol"], account="cosigned")
    token = await s.entity("Token", "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": registered["client_id"],
        "client_secret": registered["client_secret"], "redirect_uri": OOB})
    carol = token["access_token"]

    app = await s.entity("Application", "GET", "/api/v1/apps/verify_credentials", carol)
    assert {k: app[k] for k in ("id", "name", "website", "scopes", "redirect_uris", "redirect_uri")} == {
        "id": registered["id"], "name": "Shapes", "website": "https://app.example/", "scopes": ["read", "write"],
        "redirect_uris": [OOB, CALLBACK], "redirect_uri": f"{OOB}\n{CALLBACK}"}
    assert "client_secret" not in app and "client_id" not in app
    made = await s.entity("Application", "GET", "/api/v1/apps/verify_credentials", await world.token("erin", "solo"))
    assert (made["name"], made["redirect_uris"]) == ("Byline token", [])

    await s.entity("CredentialAccount", "GET", "/api/v1/accounts/verify_credentials", carol)
    for token_or_none in (None, carol):
        await s.entity("InstanceV1", "GET", "/api/v1/instance", token_or_none)
        await s.entity("Instance", "GET", "/api/v2/instance", token_or_none)

    # Held for approval: a Status with its page on Byline, and a ScheduledStatus with a time.
    now = world.gateway.clock.now()
    held = await s.entity("Status", "POST", "/api/v1/statuses", carol, data={"status": "Launch day"})
    assert (held["byline"]["state"], held["url"]) == ("held", f"{base}/posts/{held['id']}")
    [pending] = await s.call("GET", "/api/v1/scheduled_statuses", carol)
    shapes.check("ScheduledStatus", pending)
    # cosigned's cooling-off is a minute: approved now, it would go out a minute from now.
    assert (pending["id"], pending["scheduled_at"]) == (held["id"], _at(now + timedelta(minutes=1)))
    assert pending["params"]["application_id"] == int(registered["id"])
    await s.entity("ScheduledStatus", "GET", f"/api/v1/scheduled_statuses/{held['id']}", carol)
    await s.entity("Status", "GET", f"/api/v1/statuses/{held['id']}", carol)
    edited = await s.entity("Status", "PUT", f"/api/v1/statuses/{held['id']}", carol,
                            data={"status": "Launch day, at noon"})
    assert edited["edited_at"] is not None
    source = await s.entity("StatusSource", "GET", f"/api/v1/statuses/{held['id']}/source", carol)
    assert source["text"] == "Launch day, at noon"
    await s.entity("Context", "GET", f"/api/v1/statuses/{held['id']}/context", carol)
    history = await s.call("GET", f"/api/v1/statuses/{held['id']}/history", carol)
    assert len(shapes.check_list("StatusEdit", history)) == 2

    # Asked for a time: a ScheduledStatus at that time.
    when = now + timedelta(hours=2)
    scheduled = await s.entity("ScheduledStatus", "POST", "/api/v1/statuses", carol,
                               data={"status": "Later", "scheduled_at": when.isoformat()})
    assert scheduled["scheduled_at"] == _at(when)
    listed = await s.call("GET", "/api/v1/scheduled_statuses", carol)
    shapes.check_list("ScheduledStatus", listed)
    assert [p["id"] for p in listed] == [scheduled["id"], held["id"]]
    deleted = await s.entity("Status", "DELETE", f"/api/v1/statuses/{held['id']}", carol)
    assert deleted["text"] == "Launch day, at noon"

    # Media, on the account whose platform takes it: uploaded, described, attached, published.
    alice = await world.token("alice", "masto")
    form = FormData()
    form.add_field("file", PNG, filename="dot.png", content_type="image/png")
    form.add_field("description", "A dot")
    form.add_field("focus", "0.5,0.5")
    media = await s.entity("MediaAttachment", "POST", "/api/v2/media", alice, data=form)
    await s.entity("MediaAttachment", "PUT", f"/api/v1/media/{media['id']}", alice,
                   data={"description": "A red dot", "focus": "-0.5,0.25"})
    await s.entity("MediaAttachment", "GET", f"/api/v1/media/{media['id']}", alice)
    status = await s.entity("RelayedAccountStatus", "POST", "/api/v1/statuses", alice,
                            data={"status": "A dot", "media_ids[]": media["id"]})
    assert status["url"] == f"{base}/posts/{status['id']}"
    await world.gateway.tick()
    out = await s.entity("RelayedAccountStatus", "GET", f"/api/v1/statuses/{status['id']}", alice)
    assert out["url"] == out["byline"]["url"] and out["url"].startswith("http")

    # On an account Byline shows itself: the Account in a Status is Byline's.
    erin = await world.token("erin", "solo")
    await s.entity("CredentialAccount", "GET", "/api/v1/accounts/verify_credentials", erin)
    await s.entity("Status", "POST", "/api/v1/statuses", erin, data={"status": "Hello"})

    # Refusals are the Error entity, on the client API and the token endpoint alike.
    await s.refused(404, "GET", "/api/v1/statuses/1", carol)
    await s.refused(422, "POST", "/api/v1/statuses", carol, data={"status": ""})
    await s.refused(401, "GET", "/api/v1/scheduled_statuses", "not-a-token")
    await s.refused(404, "PUT", f"/api/v1/media/{media['id']}", carol, data={"description": "Not mine"})
    refusal = await s.refused(400, "POST", "/oauth/token", data={"grant_type": "authorization_code",
                                                                 "client_id": registered["client_id"]})
    assert "error_description" in refusal


async def test_mastodon_py_reads_a_held_post_as_a_scheduled_status(world: World) -> None:
    """Mastodon.py parses a held post in scheduled_statuses with its time (a datetime, not None)
    and prints its page on Byline as the status's URL."""
    api = Mastodon(access_token=await world.token("carol", "cosigned"), api_base_url=world.base)
    status = await world.run(api.status_post, "Waiting for approval")
    assert status.url == f"{world.base}/posts/{status.id}"
    [pending] = await world.run(api.scheduled_statuses)
    expected = world.gateway.clock.now() + timedelta(minutes=1)
    assert pending.scheduled_at == expected.replace(microsecond=expected.microsecond // 1000 * 1000)
