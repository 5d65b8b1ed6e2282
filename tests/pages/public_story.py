"""A small history for the public pages' tests: posts that went out on each tier, words that
never did, a deletion, and an account whose tier changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gateway.appkeys import SETTINGS
from tests.conftest import Gateway, write_policy

HOSTILE = "<script>alert('x')</script> & <b>bold</b>"
"""Markup in a post's words: shown as text, never as markup."""
HELD_WORDS = "Unannounced launch codename Bluebird"
CANCELLED_WORDS = "A take its author thought better of"

MANAGED_DIRECT = """
    account: direct
    platform: sandbox
    handle: "@alice"
    tier: managed
    owner: alice
    writers: [bob, carol]
    disclosure: "—{author}"
"""
"""The direct account after its owner hands it to a team."""


@dataclass(frozen=True)
class Story:
    """The ids of the posts the story made."""

    first: str
    hostile: str
    deleted: str
    cosigned: str
    held: str
    cancelled: str
    adopted: str
    suggestion: str
    team_post: str


async def tell(gw: Gateway) -> Story:
    """Run the story on a gateway whose policies are tests.conftest.TEST_POLICIES."""
    first = await gw.submit("alice", "direct", "Our first post")
    await gw.tick()
    gw.clock.advance(timedelta(minutes=1))
    hostile = await gw.submit("alice", "direct", HOSTILE)
    await gw.tick()
    gw.clock.advance(timedelta(minutes=1))
    deleted = await gw.submit("alice", "direct", "A post that was later deleted")
    await gw.tick()
    status, body = await gw.call("alice", "DELETE", f"/v1/posts/{deleted['id']}")
    assert status == 200, body

    cosigned = await gw.submit("carol", "cosigned", "Launch at noon")
    for approver in ("bob", "dave"):
        status, body = await gw.act(approver, cosigned["id"], "approve")
        assert status == 200, body
    held = await gw.submit("alice", "cosigned", HELD_WORDS)
    gw.clock.advance(timedelta(minutes=2))
    await gw.tick()

    cancelled = await gw.submit("bob", "delayed", CANCELLED_WORDS)
    status, body = await gw.act("bob", cancelled["id"], "cancel")
    assert status == 200, body

    suggestion = await gw.submit("dave", "managed", "Maybe thank the volunteers?")
    status, adopted = await gw.act("bob", suggestion["id"], "adopt", {"text": "Thank you, volunteers!"})
    assert status == 201, adopted
    await gw.tick()

    # The owner of "direct" hands it to a team, a day later.
    gw.clock.advance(timedelta(days=1))
    settings = gw.app[SETTINGS]
    write_policy(Path(settings.policy_dir), "direct", MANAGED_DIRECT)
    assert await gw.sync_policies() == ["direct"]
    team_post = await gw.submit("bob", "direct", "Written by the team now")
    await gw.tick()
    for post in (first, hostile, cosigned, adopted, team_post):
        assert (await gw.get("alice" if post is not adopted else "bob", post["id"]))["state"] == "published"
    return Story(first=first["id"], hostile=hostile["id"], deleted=deleted["id"], cosigned=cosigned["id"],
                 held=held["id"], cancelled=cancelled["id"], adopted=adopted["id"],
                 suggestion=suggestion["id"], team_post=team_post["id"])
