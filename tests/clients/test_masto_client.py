"""masto (masto.js from npm, the library Elk and Phanpy are built on), unmodified, through Byline as
Elk drives it: app registration and the OAuth code flow, credentials, the instance (v1 and v2),
a picture with alt text, a held post, an edit, delete and redraft, scheduled statuses and the
home timeline paged by following ``Link``, and the streaming API over masto's WebSocket client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.clients.node_client import Masto
from tests.clients.signin import sign_in
from tests.clients.world import World
from tests.images import PNG

ELK_SCOPES = "read write follow push"
"""The scopes Elk asks for when it registers itself and when it signs a person in."""
REDIRECT = "https://elk.example/api/byline/oauth"


def _status(status_id: str, *then: str) -> list[Any]:
    """masto's chain for one status: ``v1.statuses.$select(id)``, then ``then``."""
    return ["v1", "statuses", {"$select": status_id}, *then]


async def _signed_in(world: World, client: Masto, *, account: str, user: str) -> dict[str, Any]:
    """Elk's sign-in: register the app with masto, send the person to the authorize page, trade
    the code for a token with masto's OAuth client; the account the token acts as."""
    app = await client.ok("call", ["v1", "apps", "create"], {
        "clientName": "Elk", "website": "https://elk.example", "redirectUris": REDIRECT, "scopes": ELK_SCOPES})
    query = urlencode({"client_id": app["clientId"], "scope": ELK_SCOPES, "redirect_uri": REDIRECT,
                       "response_type": "code"})
    code = await sign_in(f"{world.base}/oauth/authorize?{query}", token=world.gateway.tokens[user], account=account)
    token = await client.ok("oauth", ["token", "create"], {
        "grantType": "authorization_code", "clientId": app["clientId"], "clientSecret": app["clientSecret"],
        "redirectUri": REDIRECT, "code": code, "scope": ELK_SCOPES})
    assert token["accessToken"].startswith("byl_")
    await client.ok("use", token["accessToken"])
    me: dict[str, Any] = await client.ok("call", ["v1", "accounts", "verifyCredentials"])
    return me


async def test_masto_signs_in_as_elk_and_reads_the_instance(world: World) -> None:
    """Elk's sign-in through masto gives a token for the account chosen; the instance (v1 and
    v2) names the streaming URL masto connects to and the limits Elk's composer keeps to: the
    Mastodon account's pictures and alt text, none on the sandbox."""
    async with Masto(world.base) as client:
        me = await _signed_in(world, client, account="masto", user="alice")
        assert (me["username"], me["url"]) == ("brand", "https://mastodon.example/@brand")
        v1 = await client.ok("call", ["v1", "instance", "fetch"])
        v2 = await client.ok("call", ["v2", "instance", "fetch"])
        stream = world.base.replace("http://", "ws://")
        assert (v1["urls"]["streamingApi"], v2["configuration"]["urls"]["streaming"]) == (stream, stream)
        assert v2["apiVersions"] == {"mastodon": 2}
        for limits in (v1["configuration"], v2["configuration"]):
            assert limits["statuses"]["maxMediaAttachments"] == 4
            assert "image/png" in limits["mediaAttachments"]["supportedMimeTypes"]
            assert limits["mediaAttachments"]["descriptionLimit"] == 1500
    async with Masto(world.base) as client:
        me = await _signed_in(world, client, account="direct", user="alice")
        assert me["username"] == "alice"
        v2 = await client.ok("call", ["v2", "instance", "fetch"])
        assert v2["configuration"]["statuses"]["maxMediaAttachments"] == 0


async def test_masto_posts_a_picture_with_alt_text(world: World, tmp_path: Path) -> None:
    """A picture uploaded as Elk uploads it (``v2/media`` from a file, masto waiting for it to be
    processed) with alt text, and a status with it: the instance gets it once, with the alt text."""
    picture = tmp_path / "picture.png"
    picture.write_bytes(PNG)
    async with Masto(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        media = await client.ok("media", str(picture), {"description": "A square"})
        assert (media["type"], media["description"]) == ("image", "A square")
        assert media["url"].startswith(f"{world.base}/media/")
        size = {"width": 3, "height": 2, "size": "3x2", "aspect": 1.5}  # as an app lays it out
        assert media["meta"] == {"original": size, "small": size}
        status = await client.ok("call", ["v1", "statuses", "create"], {"status": "A picture",
                                                                        "mediaIds": [media["id"]]})
        assert [(m["id"], m["description"], m["meta"]) for m in status["mediaAttachments"]] == [
            (media["id"], "A square", media["meta"])]
        await world.gateway.tick()
        [sent] = world.upstream.statuses(world.upstream_account)
        assert [(world.upstream.media[m].mime_type, world.upstream.media[m].description) for m in sent.media_ids] == [
            ("image/png", "A square")]
        shown = await client.ok("call", _status(status["id"], "fetch"))
        assert (shown["byline"]["state"], shown["url"]) == ("published", sent_url(sent.id))


def sent_url(remote_id: str) -> str:
    """The URL the stand-in instance gives a status of ``brand``."""
    return f"https://mastodon.example/@brand/{remote_id}"


async def test_masto_shows_a_held_post_as_held(world: World) -> None:
    """A status on the co-signed account is held: masto gets a Status (so Elk shows it sent)
    whose ``byline`` part says held and how many approvals it waits for; it is not on the
    timeline until the co-signers approve, and then it is, once."""
    async with Masto(world.base) as client:
        await _signed_in(world, client, account="cosigned", user="alice")
        held = await client.ok("call", ["v1", "statuses", "create"], {"status": "Held for the co-signers"})
        assert (held["content"], held["byline"]["state"], held["byline"]["approvalsNeeded"]) == (
            "<p>Held for the co-signers</p>", "held", 2)
        again = await client.ok("call", _status(held["id"], "fetch"))
        assert (again["id"], again["byline"]["state"]) == (held["id"], "held")
        await world.gateway.tick()
        assert await client.ok("pages", ["v1", "timelines", "home", "list"], 5) == [[]]
        for approver in ("bob", "dave"):
            code, body = await world.gateway.act(approver, held["id"], "approve")
            assert code == 200, body
        world.gateway.clock.advance(timedelta(minutes=2))
        await world.gateway.tick()
        [out], *rest = await client.ok("pages", ["v1", "timelines", "home", "list"], 5)
        assert rest == [[]], "the next page, which Mastodon links to after any page not empty"
        assert (out["id"], out["byline"]["state"]) == (held["id"], "published")


async def test_masto_edits_then_deletes_and_redrafts_with_new_alt_text(world: World, tmp_path: Path) -> None:
    """Elk's edit of a published status (its words, and the picture's alt text through
    ``mediaAttributes``) reaches the instance as one edit; then its delete and redraft: the words
    from the delete's answer, the picture described anew on ``v1/media/:id`` as Elk's composer
    does before it posts, and the redraft goes out with the new alt text. Before, describing the
    freed picture was 404, and Elk's redraft stopped there."""
    picture = tmp_path / "picture.png"
    picture.write_bytes(PNG)
    async with Masto(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        media = await client.ok("media", str(picture), {"description": "A square"})
        status = await client.ok("call", ["v1", "statuses", "create"], {"status": "A square",
                                                                        "mediaIds": [media["id"]]})
        await world.gateway.tick()
        source = await client.ok("call", _status(status["id"], "source", "fetch"))
        assert source["text"] == "A square"
        edited = await client.ok("call", _status(status["id"], "update"), {
            "status": "A red square", "mediaIds": [media["id"]],
            "mediaAttributes": [{"id": media["id"], "description": "A red square on white"}]})
        assert edited["content"] == "<p>A red square</p>"
        assert [m["description"] for m in edited["mediaAttachments"]] == ["A red square on white"]
        [sent] = world.upstream.statuses(world.upstream_account)
        assert (sent.text, [world.upstream.media[m].description for m in sent.media_ids]) == (
            "A red square", ["A red square on white"])
        history = await client.ok("call", _status(status["id"], "history", "list"))
        assert [h["content"] for h in history] == ["<p>A square</p>", "<p>A red square</p>"]

        gone = await client.ok("call", _status(status["id"], "remove"))
        assert (gone["text"], [m["id"] for m in gone["mediaAttachments"]]) == ("A red square", [media["id"]])
        assert world.upstream.statuses(world.upstream_account) == []
        described = await client.ok("call", ["v1", "media", {"$select": media["id"]}, "update"],
                                    {"description": "A red square, redrawn"})
        assert described["description"] == "A red square, redrawn"
        redraft = await client.ok("call", ["v1", "statuses", "create"], {
            "status": gone["text"], "mediaIds": [m["id"] for m in gone["mediaAttachments"]]})
        assert [m["description"] for m in redraft["mediaAttachments"]] == ["A red square, redrawn"]
        await world.gateway.tick()
        [again] = world.upstream.statuses(world.upstream_account)
        assert (again.text, [world.upstream.media[m].description for m in again.media_ids]) == (
            "A red square", ["A red square, redrawn"])


async def test_masto_pages_scheduled_statuses_and_cancels_one(world: World) -> None:
    """Five scheduled statuses read two at a time by masto's paginator, which follows ``Link``:
    every one once, newest first; one cancelled is gone from the list; none reaches the instance."""
    start = max(world.gateway.clock.now(), datetime.now(UTC))
    async with Masto(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        made = []
        for n in range(5):
            when = (start + timedelta(hours=1, minutes=n)).isoformat()
            scheduled = await client.ok("call", ["v1", "statuses", "create"], {"status": f"Later {n}",
                                                                               "scheduledAt": when})
            assert scheduled["params"]["text"] == f"Later {n}"
            made.append(scheduled["id"])
        pages = await client.ok("pages", ["v1", "scheduledStatuses", "list"], 10, {"limit": 2})
        assert [[s["id"] for s in page] for page in pages if page] == [
            made[:2:-1], made[2:0:-1], made[:1]]
        await client.ok("call", ["v1", "scheduledStatuses", {"$select": made[0]}, "remove"])
        [left] = await client.ok("pages", ["v1", "scheduledStatuses", "list"], 1, {"limit": 40})
        assert [s["id"] for s in left] == made[:0:-1]
    await world.gateway.tick()
    assert world.upstream.statuses(world.upstream_account) == []


async def test_masto_pages_the_home_timeline_and_hears_the_stream(world: World) -> None:
    """On the delayed account: masto's streaming client (the URL from the instance, the token as
    the WebSocket's protocol) hears nothing while the posts wait and an ``update`` for each as it
    goes out, then a ``delete``; the home timeline read two at a time by following ``Link`` has
    each post once, newest first; notifications are an empty list."""
    async with Masto(world.base) as client:
        await _signed_in(world, client, account="delayed", user="bob")
        assert await client.ok("listen", "user") == world.base.replace("http://", "ws://")
        made = [(await client.ok("call", ["v1", "statuses", "create"], {"status": f"Post {n}"}))["id"]
                for n in range(5)]
        assert await client.ok("heard", 1, 1500) == []
        world.gateway.clock.advance(timedelta(minutes=11))
        assert await world.gateway.tick() == 5
        heard = await client.ok("heard", 5, 10_000)
        assert sorted((e["event"], e["payload"]["id"]) for e in heard) == sorted(("update", m) for m in made)
        pages = await client.ok("pages", ["v1", "timelines", "home", "list"], 10, {"limit": 2})
        assert [[s["id"] for s in page] for page in pages if page] == [made[:2:-1], made[2:0:-1], made[:1]]
        assert await client.ok("pages", ["v1", "notifications", "list"], 2) == [[]]
        await client.ok("call", _status(made[0], "remove"))
        assert await client.ok("heard", 1, 10_000) == [{"event": "delete", "payload": made[0]}]
        await client.ok("hush")
