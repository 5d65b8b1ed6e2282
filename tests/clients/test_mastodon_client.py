"""An unmodified Mastodon.py client against the gateway on a real port: every tier, both databases."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from mastodon import MastodonAPIError, MastodonNotFoundError, MastodonServiceUnavailableError

from gateway.appkeys import HOUSEKEEPER
from gateway.services.identity import Identity
from gateway.storage.db import DatabaseUnavailable
from tests.audit.logtools import verified_by_cli
from tests.clients.world import UPSTREAM_TOKEN, World
from tests.conftest import DATABASE_GONE, finding_the_database_gone, write_policy
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.images import png_of
from tests.platforms.bluesky.fixture import BlueskyPds, post_records


async def test_direct_publishes_to_the_sandbox(world: World) -> None:
    """Direct: the status comes back with the gateway's id, then is published; GET shows the URL."""
    api = await world.client("alice", "direct")
    status = await world.run(api.status_post, "Hello from an app", visibility="unlisted", language="en",
                             spoiler_text="greeting")
    assert status.id.isdigit()
    assert status.content == "<p>Hello from an app</p>"
    assert (status.visibility, status.language, status.spoiler_text) == ("unlisted", "en", "greeting")
    assert status.byline.state == "scheduled"
    assert status.url == f"{world.base}/posts/{status.id}"  # its page on Byline until it is out
    assert await world.gateway.tick() == 1
    published = await world.run(api.status, status.id)
    timeline = await world.gateway.timeline("direct")
    assert [p["text"] for p in timeline] == ["Hello from an app"]
    assert published.byline.state == "published"
    assert published.url.endswith(f"/sandbox/direct#post-{timeline[0]['id']}")
    me = await world.run(api.account_verify_credentials)
    assert published.account.id == me.id
    assert me.acct == "alice"


async def test_delayed_pencil_stage_edit_and_delete(world: World) -> None:
    """Delayed: within the window the app edits one post and deletes another; only the edit goes out."""
    api = await world.client("bob", "delayed")
    keep = await world.run(api.status_post, "First draft")
    drop = await world.run(api.status_post, "Regrettable take")
    assert keep.byline.state == drop.byline.state == "scheduled"
    assert keep.byline.publish_at.startswith("2026-01-01T12:10:00")
    pending = await world.run(api.scheduled_statuses)
    assert [p.id for p in pending] == [drop.id, keep.id]
    assert [p.params.text for p in pending] == ["Regrettable take", "First draft"]
    edited = await world.run(api.status_update, keep.id, "Second draft")
    assert edited.content == "<p>Second draft</p>"
    assert edited.edited_at is not None and edited.byline.version == 2
    deleted = await world.run(api.status_delete, drop.id)
    assert deleted.text == "Regrettable take"
    assert deleted.byline.state == "cancelled"
    with pytest.raises(MastodonNotFoundError):
        await world.run(api.status, drop.id)
    assert [p.id for p in await world.run(api.scheduled_statuses)] == [keep.id]
    world.gateway.clock.advance(timedelta(minutes=11))
    await world.gateway.tick()
    assert [p["text"] for p in await world.gateway.timeline("delayed")] == ["Second draft"]
    assert (await world.run(api.status, keep.id)).byline.state == "published"
    assert await world.run(api.scheduled_statuses) == []


async def test_cosigned_waits_for_approval(world: World) -> None:
    """Co-signed: the app's post is held for two approvals, then goes out with the disclosure line."""
    api = await world.client("carol", "cosigned")
    status = await world.run(api.status_post, "We launch today")
    assert status.byline.state == "held"
    assert status.byline.approvals_needed == 2
    assert status.content == "<p>We launch today</p><p>—carol</p>"
    await world.gateway.tick()
    assert await world.gateway.timeline("cosigned") == []
    for approver in ("bob", "dave"):
        code, body = await world.gateway.act(approver, status.id, "approve")
        assert code == 200, body
    later = await world.run(api.status, status.id)
    assert (later.byline.state, later.byline.approvals_needed) == ("scheduled", 0)
    world.gateway.clock.advance(timedelta(minutes=1, seconds=1))
    await world.gateway.tick()
    assert [p["text"] for p in await world.gateway.timeline("cosigned")] == ["We launch today\n\n—carol"]
    assert (await world.run(api.status, status.id)).byline.state == "published"


async def test_managed_owner_post_becomes_a_suggestion(world: World) -> None:
    """Managed: the owner's app post is a suggestion; once a writer adopts it, GET says so."""
    api = await world.client("dave", "managed")
    status = await world.run(api.status_post, "Thank you all for coming")
    assert status.byline.state == "suggested"
    await world.gateway.tick()
    assert await world.gateway.timeline("managed") == []
    code, adopted = await world.gateway.act("bob", status.id, "adopt")
    assert code == 201, adopted
    later = await world.run(api.status, status.id)
    assert later.byline.state == "adopted"
    assert later.byline.adopted_into == adopted["id"]
    await world.gateway.tick()
    assert [p["text"] for p in await world.gateway.timeline("managed")] == [
        "Thank you all for coming\n\n—bob, suggested by dave"
    ]


async def test_hold_rule_and_block_rule(world: World) -> None:
    """A hold rule's reason shows on the status; a block rule is a 422 with its reason and posts nothing."""
    api = await world.client("alice", "direct")
    held = await world.run(api.status_post, "The CEO was fired")
    assert held.byline.state == "held"
    assert [r.reason for r in held.byline.reasons] == ["Check the full story first"]
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "you example-slur")
    assert caught.value.args[1] == 422
    assert caught.value.args[3] == "Validation failed: Not okay to post (rule no-slurs)"
    await world.gateway.tick()
    assert await world.gateway.timeline("direct") == []


async def test_scheduled_at_answers_a_scheduled_status(world: World) -> None:
    """scheduled_at makes a ScheduledStatus, as Mastodon answers, and the post waits for its time."""
    api = await world.client("alice", "direct")
    when = world.gateway.clock.now() + timedelta(hours=1)
    scheduled = await world.run(api.status_post, "Later today", scheduled_at=when)
    assert scheduled.scheduled_at == when
    assert scheduled.params.text == "Later today"
    assert scheduled.byline.state == "scheduled"
    await world.gateway.tick()
    assert await world.gateway.timeline("direct") == []
    world.gateway.clock.advance(timedelta(hours=1))
    await world.gateway.tick()
    assert [p["text"] for p in await world.gateway.timeline("direct")] == ["Later today"]


async def test_idempotency_key_returns_the_same_status(world: World) -> None:
    """The same Idempotency-Key from the same token gives the first status back; another token posts anew."""
    api = await world.client("alice", "direct")
    first = await world.run(api.status_post, "Only once", idempotency_key="k-123")
    again = await world.run(api.status_post, "Only once", idempotency_key="k-123")
    assert again.id == first.id
    _, listing = await world.gateway.call("alice", "GET", "/v1/posts?account=direct")
    assert [p["id"] for p in listing["posts"]] == [first.id]
    second_app = await world.client("alice", "direct", fresh=True)
    other = await world.run(second_app.status_post, "Only once", idempotency_key="k-123")
    assert other.id != first.id
    world.gateway.clock.advance(timedelta(hours=1, seconds=1))
    later = await world.run(api.status_post, "Only once", idempotency_key="k-123")
    assert later.id != first.id


async def test_an_idempotency_key_used_again_on_another_account_makes_a_post_there_held_as_it_asks(
    world: World,
) -> None:
    """alice's key, used for a status that went out at once on ``direct``, sent again with her
    token for co-signed ``cosigned``: a new post there, held for its approvals, never the direct
    one handed back as if it were out; ``direct`` keeps its one post."""
    direct, cosigned = await world.client("alice", "direct"), await world.client("alice", "cosigned")
    first = await world.run(direct.status_post, "Only once", idempotency_key="k-shared")
    other = await world.run(cosigned.status_post, "Only once", idempotency_key="k-shared")
    assert other.id != first.id
    assert (first.byline.state, other.byline.state) == ("scheduled", "held")
    _, listing = await world.gateway.call("alice", "GET", "/v1/posts?account=direct")
    assert [p["id"] for p in listing["posts"]] == [first.id]


async def test_unbound_token_needs_a_single_account(world: World) -> None:
    """A token bound to no account works for someone with one account; for alice (several) it is 403."""
    solo = await world.client("erin", None)
    status = await world.run(solo.status_post, "Just me")
    assert status.byline.state == "scheduled"
    many = await world.client("alice", None)
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(many.status_post, "Which account?")
    assert caught.value.args[1] == 403
    assert "not bound to an account" in caught.value.args[3]


async def test_instance_shows_the_account_limits(world: World) -> None:
    """The instance entity gives the account's limit less the disclosure line the gateway adds."""
    api = await world.client("carol", "cosigned")
    instance = await world.run(api.instance_v2)
    assert instance.configuration.statuses.max_characters == 500 - len("\n\n—carol")
    assert instance.api_versions.mastodon == 2
    assert (await world.run(api.instance_v1)).version.startswith("4.3.0 (compatible; Byline")
    assert (await world.run(api.retrieve_mastodon_version)) == "4.3.0"


async def test_mastodon_account_publishes_and_reads_pass_through(world: World) -> None:
    """A Mastodon-backed account: posts go out upstream; reads come from the instance, token unseen."""
    api = await world.client("alice", "masto")
    me = await world.run(api.account_verify_credentials)
    assert (me.id, me.username) == (world.upstream_account.id, "brand")
    status = await world.run(api.status_post, "Hello fediverse", visibility="unlisted")
    assert status.account.id == me.id
    await world.gateway.tick()
    upstream = world.upstream.statuses(world.upstream_account)
    assert [(s.text, s.visibility) for s in upstream] == [("Hello fediverse", "unlisted")]
    published = await world.run(api.status, status.id)
    assert published.url == f"https://mastodon.example/@brand/{upstream[0].id}"
    timeline = await world.run(api.account_statuses, me.id)
    assert [s.id for s in timeline] == [upstream[0].id]
    direct = await world.run(api.status, upstream[0].id)
    assert direct.content == "<p>Hello fediverse</p>"
    auth = {"Authorization": f"Bearer {await world.token('alice', 'masto')}"}
    for path in (f"/api/v1/accounts/{me.id}/statuses", "/api/v1/accounts/verify_credentials",
                 f"/api/v1/statuses/{upstream[0].id}", "/api/v1/timelines/home"):
        async with world.gateway.client.get(path, headers=auth) as resp:
            seen = await resp.text() + str(resp.headers)
            assert UPSTREAM_TOKEN not in seen, path


async def test_media_goes_out_with_the_status(world: World) -> None:
    """An image uploaded through the gateway is attached when the post is published upstream."""
    api = await world.client("alice", "masto")
    png = png_of(2, 2, 1)
    media = await world.run(api.media_post, png, mime_type="image/png", description="A test image")
    assert media.description == "A test image"
    status = await world.run(api.status_post, "With a picture", media_ids=[media])
    assert [m.id for m in status.media_attachments] == [media.id]
    await world.gateway.tick()
    [published] = world.upstream.statuses(world.upstream_account)
    uploaded = world.upstream.media[published.media_ids[0]]
    assert (uploaded.mime_type, uploaded.description, uploaded.size) == ("image/png", "A test image", len(png))
    async with world.gateway.client.get(media.url.removeprefix(world.base)) as preview:
        assert (preview.status, preview.content_type, await preview.read()) == (200, "image/png", png)
    async with world.gateway.client.get(f"/media/{media.id}/{'0' * 64}") as guessed:
        assert guessed.status == 404


async def test_an_upload_no_status_took_is_gone_after_a_day(world: World) -> None:
    """As on Mastodon, media not attached within a day are dropped: attaching one later is a 422
    and its preview is gone; media a status took stay."""
    api = await world.client("alice", "masto")
    unused = await world.run(api.media_post, png_of(2, 2, 1), mime_type="image/png")
    used = await world.run(api.media_post, png_of(2, 2, 2), mime_type="image/png")
    await world.run(api.status_post, "With a picture", media_ids=[used])
    world.gateway.clock.advance(timedelta(hours=23))
    assert (await world.gateway.app[HOUSEKEEPER].sweep()).media == 0
    world.gateway.clock.advance(timedelta(hours=1, seconds=1))
    assert (await world.gateway.app[HOUSEKEEPER].sweep()).media == 1
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "Too late", media_ids=[unused])
    assert caught.value.args[1] == 422
    async with world.gateway.client.get(unused.url.removeprefix(world.base)) as preview:
        assert preview.status == 404
    async with world.gateway.client.get(used.url.removeprefix(world.base)) as preview:
        assert preview.status == 200


async def test_other_platforms_answer_reads_quietly(world: World) -> None:
    """An account not on Mastodon answers timelines with empty lists and unknown reads with 404."""
    api = await world.client("alice", "direct")
    assert await world.run(api.timeline_home) == []
    assert await world.run(api.notifications) == []
    with pytest.raises(MastodonNotFoundError):
        await world.run(api.account, "12345")


async def test_cosigned_edit_voids_approvals_and_keeps_mastodon_rules(world: World) -> None:
    """Editing a held post through the app voids earlier approvals; spoiler and sensitive change as asked."""
    api = await world.client("carol", "cosigned")
    status = await world.run(api.status_post, "Draft", spoiler_text="news", sensitive=True)
    code, _ = await world.gateway.act("bob", status.id, "approve")
    assert code == 200
    assert (await world.run(api.status, status.id)).byline.approvals_needed == 1
    edited = await world.run(api.status_update, status.id, "Better draft", spoiler_text="update")
    assert (edited.byline.state, edited.byline.approvals_needed) == ("held", 2)
    assert (edited.spoiler_text, edited.sensitive) == ("update", True)
    cleared = await world.run(api.status_update, status.id, "Best draft", sensitive=False)
    assert (cleared.spoiler_text, cleared.sensitive) == ("", False)  # no spoiler_text clears it, as on Mastodon
    _, post = await world.gateway.call("carol", "GET", f"/v1/posts/{status.id}")
    assert [v["text"] for v in post["versions"]] == ["Draft", "Better draft", "Best draft"]


async def test_an_approved_post_is_not_moved_sooner_through_scheduled_statuses(world: World) -> None:
    """A writer whose post both co-signers approved to go out at three asks Mastodon's
    ``PUT /api/v1/scheduled_statuses/:id`` for a time minutes away: 422, nothing changes, and
    the post does not go out before the time it was approved for."""
    api = await world.client("carol", "cosigned")
    clock = world.gateway.clock
    status = await world.run(api.status_post, "Launch at three", scheduled_at=clock.now() + timedelta(hours=3))
    for cosigner in ("bob", "dave"):
        code, body = await world.gateway.act(cosigner, status.id, "approve")
        assert code == 200, body
    assert body["state"] == "scheduled"
    before = await world.gateway.snapshot()
    with pytest.raises(MastodonAPIError) as refused:
        await world.run(api.scheduled_status_update, status.id, clock.now() + timedelta(minutes=5))
    assert refused.value.args[1:4:2] == (422, "Validation failed: Byline cannot move a scheduled post; "
                                              "delete it and post it again with the new time")
    assert await world.gateway.snapshot() == before
    clock.advance(timedelta(minutes=10))
    await world.gateway.tick()
    assert await world.gateway.timeline("cosigned") == []


async def test_a_poll_added_by_an_edit_is_refused_and_keeps_the_approval(world: World) -> None:
    """An edit that adds a poll to a co-signed post (``PUT /api/v1/statuses/:id`` with
    ``poll``) is refused as a new post with one is, and changes nothing: no new version, and
    the approval given stands (the edit's words alone would void it)."""
    api = await world.client("carol", "cosigned")
    status = await world.run(api.status_post, "Which launch date?")
    code, body = await world.gateway.act("bob", status.id, "approve")
    assert (code, body["approvals_needed"]) == (200, 1), body
    before = await world.gateway.snapshot()
    with pytest.raises(MastodonAPIError) as refused:
        await world.run(api.status_update, status.id, "Which launch date?",
                        poll=api.make_poll(["May", "June"], expires_in=86400))
    assert refused.value.args[1:4:2] == (422, "Validation failed: Byline does not carry polls")
    assert await world.gateway.snapshot() == before


async def test_published_status_replies_edits_and_deletes_upstream(world: World) -> None:
    """After publishing: a reply goes to the platform's id, an edit is made there, delete removes it."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Thread start")
    await world.gateway.tick()
    reply = await world.run(api.status_post, "Thread continued", in_reply_to_id=first.id)
    await world.gateway.tick()
    start, continued = world.upstream.statuses(world.upstream_account)
    assert continued.in_reply_to_id == start.id
    edited = await world.run(api.status_update, first.id, "Thread start, fixed", spoiler_text="typo")
    assert (edited.content, edited.spoiler_text, edited.byline.state) == ("<p>Thread start, fixed</p>", "typo",
                                                                          "published")
    assert (start.text, start.spoiler_text, start.edited_at is not None) == ("Thread start, fixed", "typo", True)
    _, post = await world.gateway.call("alice", "GET", f"/v1/posts/{first.id}")
    assert [v["text"] for v in post["versions"]] == ["Thread start", "Thread start, fixed"]
    assert post["events"][-1]["type"] == "post.revised" and post["events"][-1]["actor"] == "alice"
    deleted = await world.run(api.status_delete, reply.id)
    assert (deleted.byline.state, deleted.text) == ("deleted", "Thread continued")
    assert continued.deleted and not start.deleted
    with pytest.raises(MastodonNotFoundError):
        await world.run(api.status, reply.id)
    # The replay follows both posts' lives to the end (revised, deleted): the log verifies.
    await verified_by_cli(world.gateway)


async def test_published_edit_only_where_policy_and_platform_allow(world: World) -> None:
    """A published post's edit on a platform without edits is refused, whether its policy would
    publish the words at once or hold them (a rule's second look): nothing is held that could
    never be made."""
    api = await world.client("alice", "direct")
    status = await world.run(api.status_post, "Quarterly numbers")
    await world.gateway.tick()
    before = await world.gateway.snapshot()
    with pytest.raises(MastodonAPIError) as held:
        await world.run(api.status_update, status.id, "Quarterly numbers: the CEO was fired")
    assert held.value.args[1:4:2] == (422, "Validation failed: sandbox does not allow editing a published post")
    with pytest.raises(MastodonAPIError) as unsupported:
        await world.run(api.status_update, status.id, "Quarterly numbers, corrected")
    assert unsupported.value.args[1:4:2] == (
        422, "Validation failed: sandbox does not allow editing a published post")
    assert await world.gateway.snapshot() == before
    carol = await world.client("carol", "masto")
    with pytest.raises(MastodonAPIError) as not_author:
        await world.run(carol.status_update, status.id, "Not mine")
    assert not_author.value.args[1] == 404  # another account's status


async def test_what_the_accounts_platform_would_refuse_is_refused_at_once(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A followers-only or direct status for a Bluesky or X account, and a content warning for an
    X account, are a 422 when the app sends them, as the platform would refuse them when they went
    out (before: 200, then a post that failed with no reason the app could see). Nothing is stored."""
    monkeypatch.setenv("SOME_X_TOKEN", "x-token")
    monkeypatch.setenv("SOME_BSKY_PASSWORD", "bsky-app-password")
    write_policy(policy_dir, "xacct", """
        account: xacct
        platform: x
        api: http://127.0.0.1:9
        credentials: env:SOME_X_TOKEN
        tier: direct
        owner: alice
    """)
    write_policy(policy_dir, "bsky", """
        account: bsky
        platform: bluesky
        handle: alice.bsky.example
        pds: http://127.0.0.1:9
        credentials: env:SOME_BSKY_PASSWORD
        tier: direct
        owner: alice
    """)
    await world.gateway.sync_policies()
    before = await world.gateway.snapshot()
    for account, kwargs, said in (
        ("xacct", {"visibility": "private"}, "every X post is public: visibility private cannot be honoured"),
        ("bsky", {"visibility": "direct"}, "every Bluesky post is public: visibility direct cannot be honoured"),
        ("xacct", {"spoiler_text": "spoilers"}, "X has no content warnings"),
        # Both at once: the visibility is named (the X adapter, when it publishes, names the warning).
        ("xacct", {"visibility": "private", "spoiler_text": "spoilers"},
         "every X post is public: visibility private cannot be honoured"),
    ):
        api = await world.client("alice", account)
        with pytest.raises(MastodonAPIError) as refused:
            await world.run(api.status_post, "Hello", **kwargs)
        assert refused.value.args[1] == 422 and said in refused.value.args[3], refused.value.args
    assert await world.gateway.snapshot() == before


_HOLD_A_SCANDAL = """\
rules:
  - name: breaking-news
    action: hold
    any_words: [scandal]
    reason: Check the full story first
"""
"""A policy's rules, unindented: added to a policy's text once that is dedented."""


async def _statuses_count_follows_what_went_out(
    world: World, account: str, on_platform: Callable[[], Awaitable[list[str]]],
) -> None:
    """Two posts out and one held by the rule: statuses_count 2 on the account as verify_credentials
    and GET /accounts/:id give it; one deleted: 1. ``on_platform``: the words of the posts the
    platform holds, checked alongside."""
    api = await world.client("alice", account)
    assert (await world.run(api.account_verify_credentials)).statuses_count == 0
    first = await world.run(api.status_post, "First post")
    await world.run(api.status_post, "Second post")
    await world.run(api.status_post, "A scandal, held")
    assert await world.gateway.tick() == 2
    assert sorted(await on_platform()) == ["First post", "Second post"]
    me = await world.run(api.account_verify_credentials)
    assert me.statuses_count == 2
    assert (await world.run(api.account, me.id)).statuses_count == 2
    await world.run(api.status_delete, first.id)
    assert await on_platform() == ["Second post"]
    assert (await world.run(api.account_verify_credentials)).statuses_count == 1


async def test_an_x_accounts_statuses_count_is_what_byline_published_there(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An X account's statuses_count, which X does not give Byline, is Byline's count of the
    posts it published there that are still up: a held one is not counted, a deleted one no
    longer is (before: 0 whatever was published)."""
    x = FakeX()
    user = x.add_user("brand", "x-token-count")
    server = TestServer(x_app(x))
    await server.start_server()
    try:
        monkeypatch.setenv("BRAND_X_TOKEN", "x-token-count")
        write_policy(policy_dir, "xacct", textwrap.dedent(f"""
            account: xacct
            platform: x
            api: {str(server.make_url('')).rstrip('/')}
            credentials: env:BRAND_X_TOKEN
            tier: direct
            owner: alice
        """) + _HOLD_A_SCANDAL)
        await world.gateway.sync_policies()

        async def tweets() -> list[str]:
            return [t.text for t in x.tweets(user)]

        await _statuses_count_follows_what_went_out(world, "xacct", tweets)
    finally:
        await server.close()


async def test_a_bluesky_accounts_statuses_count_is_what_byline_published_there(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, bluesky_pds: BlueskyPds,
) -> None:
    """A Bluesky account's statuses_count, which a Bluesky session does not give Byline, is
    Byline's count of the posts it published on the PDS that are still up: a held one is not
    counted, a deleted one no longer is, and what else the PDS account holds (posts made there by
    other means) is not Byline's to count."""
    account = bluesky_pds.account("alice.test")
    monkeypatch.setenv("ALICE_SKY_PASSWORD", account.app_password)
    write_policy(policy_dir, "sky", textwrap.dedent(f"""
        account: sky
        platform: bluesky
        handle: {account.handle}
        pds: {bluesky_pds.pds_url}
        credentials: env:ALICE_SKY_PASSWORD
        tier: direct
        owner: alice
    """) + _HOLD_A_SCANDAL)
    await world.gateway.sync_policies()
    on_pds_before = {r["uri"] for r in await post_records(bluesky_pds, account.did)}

    async def on_pds() -> list[str]:
        records = await post_records(bluesky_pds, account.did)
        return [r["value"]["text"] for r in records if r["uri"] not in on_pds_before]

    await _statuses_count_follows_what_went_out(world, "sky", on_pds)


async def test_a_scheduled_reply_names_its_parent_as_the_app_knows_it(world: World) -> None:
    """A scheduled reply to a status Byline published names that status by Byline's id in its
    ``params``, as the reply itself does once out (before, params held the instance's id, which
    the app had never seen)."""
    api = await world.client("alice", "masto")
    parent = await world.run(api.status_post, "Thread start")
    await world.gateway.tick()
    later = world.gateway.clock.now() + timedelta(hours=2)
    scheduled = await world.run(api.status_post, "Thread continued", in_reply_to_id=parent.id, scheduled_at=later)
    assert str(scheduled.params.in_reply_to_id) == str(parent.id)
    [listed] = await world.run(api.scheduled_statuses)
    assert str(listed.params.in_reply_to_id) == str(parent.id)


async def test_the_database_gone_is_a_503_with_retry_after(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database not answering as the token is read, as storage says it and as the driver
    does: 503, Retry-After and the database's message as Mastodon words an error (Mastodon.py
    raises its ``MastodonServiceUnavailableError`` with it). Before: no Retry-After, and the
    driver's word the gateway's own shape, ``{"error": "unavailable"}``, shown as the message."""
    api = await world.client("alice", "direct")
    token = await world.token("alice", "direct")
    for cause in DATABASE_GONE:
        gone = finding_the_database_gone(cause)
        with monkeypatch.context() as patched:
            patched.setattr(Identity, "authenticate_app", gone)
            with pytest.raises(MastodonServiceUnavailableError) as refused:
                await world.run(api.account_verify_credentials)
            async with world.gateway.client.get("/api/v1/accounts/verify_credentials",
                                                headers={"Authorization": f"Bearer {token}"}) as resp:
                answer = (resp.status, resp.headers.get("Retry-After"), await resp.json())
        assert refused.value.args[1:2] + refused.value.args[3:] == (503, DatabaseUnavailable().message), cause
        assert answer == (503, "5", {"error": DatabaseUnavailable().message}), cause
    assert (await world.run(api.account_verify_credentials)).acct == "alice"
