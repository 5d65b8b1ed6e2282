"""Pending revisions of published posts, set up as their tests need them: a Mastodon account
made direct, its post published, then the account turned to a held tier and the post edited,
over HTTP through the gateway's own API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.clients.world import World
from tests.conftest import Gateway, write_policy
from tests.fakes.mastodon import FakeMastodon, Status


def held_masto(policy_dir: Path, instance: str, tier: str) -> None:
    """The Mastodon account turned ``co-signed`` (bob, carol and dave approve, two of them) or
    ``delayed`` (ten minutes), as an admin's edit of its file does."""
    gate = ("approvals: {required: 2, from: [bob, carol, dave], expire_after: 24h}\n"
            'disclosure: "—{author}"' if tier == "co-signed" else "delay: 10m")
    write_policy(policy_dir, "masto", f"""account: masto
platform: mastodon
handle: "@brand@mastodon.example"
instance: {instance}
credentials: env:BRAND_MASTODON_TOKEN
tier: {tier}
owner: erin
writers: [alice, carol]
{gate}
""")


async def published_on_masto(gw: Gateway, upstream: FakeMastodon, text: str) -> tuple[str, Status]:
    """A post alice publishes on ``masto`` while it is direct: its id, and the status upstream."""
    post = await gw.submit("alice", "masto", text)
    await gw.tick()
    status = upstream.statuses()[-1]
    assert status.text == text
    return post["id"], status


async def turned(world: World, policy_dir: Path, tier: str) -> None:
    """``masto`` turned ``tier`` (see :func:`held_masto`), the gateway's policies read again."""
    held_masto(policy_dir, world.upstream_url, tier)
    await world.gateway.sync_policies()


async def edit(gw: Gateway, user: str, post_id: str, text: str) -> tuple[int, Any]:
    """``user``'s edit of ``post_id`` to ``text`` over the native API: the status and the answer."""
    return await gw.call(user, "PATCH", f"/v1/posts/{post_id}", {"text": text})


async def pending_revision(world: World, policy_dir: Path, published: str, edited: str,
                           tier: str = "co-signed") -> tuple[str, Status, dict[str, Any]]:
    """Alice's post published while ``masto`` was direct, the account turned ``tier``, and her
    edit of it held as its pending revision: the post's id, its status upstream, the revision."""
    post_id, status = await published_on_masto(world.gateway, world.upstream, published)
    await turned(world, policy_dir, tier)
    code, pending = await edit(world.gateway, "alice", post_id, edited)
    assert code == 200, pending
    return post_id, status, pending
