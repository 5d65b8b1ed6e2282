"""No way around an account's policy through the Mastodon client API's pass-through.

Reads an app needs (timelines, notifications, accounts, statuses, search…) are relayed to the
account's instance with its real token; writes Byline does not make itself (follows,
favourites, boosts, profile changes, administration…), unlisted reads and any path not written
exactly as listed are refused and never reach the instance.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from tests.clients.world import World

POLICY_GOVERNS_POSTS = "every write goes through the account's policy, and the policy governs posts"


async def _call(world: World, method: str, raw_path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
    """One request with the path sent exactly as written (no client-side normalising)."""
    url = URL(world.base + raw_path, encoded=True)
    async with world.gateway.client.session.request(
        method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


def _reached(world: World) -> list[tuple[str, str]]:
    """What reached the instance, other than the gateway's own verify_credentials."""
    return [(r.method, r.path) for r in world.upstream.faults.requests
            if r.path != "/api/v1/accounts/verify_credentials"]


async def test_writes_and_administration_are_refused_before_the_instance(world: World) -> None:
    """Follows, favourites, boosts, profile updates, admin calls: a policy refusal, and the instance sees nothing."""
    token = await world.token("alice", "masto")
    me = world.upstream_account.id
    before = _reached(world)
    attempts = [
        ("POST", f"/api/v1/accounts/{me}/follow"), ("POST", f"/api/v1/accounts/{me}/unfollow"),
        ("POST", f"/api/v1/accounts/{me}/block"), ("POST", f"/api/v1/accounts/{me}/mute"),
        ("PATCH", "/api/v1/accounts/update_credentials"), ("POST", "/api/v1/statuses/1/favourite"),
        ("POST", "/api/v1/statuses/1/reblog"), ("POST", "/api/v1/statuses/1/bookmark"),
        ("POST", "/api/v1/statuses/1/pin"), ("POST", "/api/v1/follow_requests/1/authorize"),
        ("POST", "/api/v1/reports"), ("POST", "/api/v1/lists"), ("DELETE", "/api/v1/lists/1"),
        ("POST", "/api/v1/polls/1/votes"), ("POST", "/api/v1/markers"), ("PUT", "/api/v1/push/subscription"),
        ("POST", "/api/v1/admin/accounts/1/action"), ("DELETE", "/api/v1/admin/domain_blocks/1"),
        ("POST", "/api/v2/filters"), ("GET", "/api/v1/admin/accounts"), ("GET", "/api/v2/admin/accounts"),
        ("GET", "/api/v1/Admin/accounts"), ("GET", "/api/v1//admin/accounts"),
        ("GET", "/api/v1/timelines/../admin/accounts"), ("GET", "/api/v1/admin%2Faccounts"),
    ]
    answers = [(method, path, *await _call(world, method, path, token, json={"id": "1"}))
               for method, path in attempts]
    assert _reached(world) == before
    for method, path, status, body in answers:
        assert status == 403, (method, path, status, body)
        assert body["error"].startswith(f"Byline does not relay {method} "), (method, path, body)
        assert POLICY_GOVERNS_POSTS in body["error"], (method, path, body)


async def test_reads_relay_only_as_listed_and_as_written(world: World) -> None:
    """Listed reads reach the instance as sent; unlisted reads and case, dot, slash or encoding tricks do not."""
    token = await world.token("alice", "masto")
    me = world.upstream_account.id
    listed = [
        f"/api/v1/accounts/{me}", f"/api/v1/accounts/{me}/statuses", "/api/v1/accounts/relationships",
        "/api/v1/accounts/lookup", "/api/v1/timelines/home", "/api/v1/timelines/tag/caf%C3%A9",
        "/api/v1/notifications", "/api/v2/notifications", "/api/v1/statuses/123/context",
        "/api/v2/search", "/api/v1/custom_emojis", "/api/v1/instance/peers", "/api/v1/markers",
    ]
    for path in listed:
        status, _ = await _call(world, "GET", path, token, params={"limit": "5"})
        assert status in (200, 404), (path, status)  # the stand-in implements few of them
        assert _reached(world)[-1] == ("GET", URL(path, encoded=True).path), path
    # A trailing slash names the same route, as Mastodon's router has it: relayed without it.
    status, _ = await _call(world, "GET", "/api/v1/timelines/home/", token)
    assert status in (200, 404) and _reached(world)[-1] == ("GET", "/api/v1/timelines/home")
    count = len(_reached(world))
    refused = [
        "/api/v1/conversations", "/api/v1/notifications/requests", "/api/v1/push/subscription",
        "/api/v1/streaming_user", "/api/v1/Timelines/home", "/api/v1/timelines/Home",
        "/api/v1//timelines/home", "/api/v1/timelines/./home",
        "/api/v1/timelines%2Fhome", f"/api/v1/accounts/{me}%2Ffollow", "/api/v1/%2e%2e/v1/admin/accounts",
        "/api/v1/timelines/tag/x%2F..%2F..%2Fadmin",
    ]
    for path in refused:
        status, body = await _call(world, "GET", path, token)
        assert status == 403, (path, status, body)
        assert body["error"].startswith("Byline does not relay GET "), (path, body)
    # A path that is not text, or not spelt as Mastodon spells it, names nothing here.
    for path in ("/API/v1/timelines/home", "/api/V1/timelines/home", "/api/v1/accounts/1%00"):
        status, body = await _call(world, "GET", path, token)
        assert status == 404, (path, body)
    assert len(_reached(world)) == count


async def test_an_instance_answer_is_never_served_as_a_page_or_a_script(world: World) -> None:
    """A hostile (or broken) instance answering a relayed read with HTML, a script or an SVG,
    as a success or an error: the app gets Byline's 503 in JSON, never the instance's markup
    under Byline's origin; a JSON answer relayed is sandboxed and not sniffed."""
    token = await world.token("alice", "masto")
    markup = b"<html><script>fetch('/api/v1/accounts/verify_credentials').then(r => r.text())</script></html>"
    for status, content_type in ((200, "text/html; charset=utf-8"), (200, "application/javascript"),
                                 (200, "image/svg+xml"), (404, "text/html"), (200, "")):
        world.upstream.faults.answer_next(markup, content_type, status=status, path="/api/v1/timelines/home")
        async with world.gateway.client.get("/api/v1/timelines/home",
                                            headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.read()
            assert (resp.status, resp.content_type) == (503, "application/json"), (content_type, body)
            assert body == b'{"error":"Remote data could not be fetched"}'
    home = "/api/v1/timelines/home"
    async with world.gateway.client.get(home, headers={"Authorization": f"Bearer {token}"}) as resp:
        assert (resp.status in (200, 404), resp.content_type) == (True, "application/json")  # as the stand-in has it
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
