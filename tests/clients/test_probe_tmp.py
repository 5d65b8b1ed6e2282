"""Probe."""

from __future__ import annotations

from pathlib import Path

from tests.clients.revisions import edit, turned
from tests.clients.world import World


async def test_probe_editor_of_original(world: World, policy_dir: Path) -> None:
    """Probe."""
    gw = world.gateway
    await turned(world, policy_dir, "co-signed")
    post = await gw.submit("alice", "masto", "Quiz at 8")
    code, body = await gw.call("bob", "PATCH", f"/v1/posts/{post['id']}", {"text": "Quiz at 8, prizes"})
    print("bob edit", code)
    for approver in ("carol", "dave"):
        code, body = await gw.act(approver, post["id"], "approve")
        print("approve", approver, code)
    await gw.tick()
    print("statuses", [s.text for s in world.upstream.statuses()])
    code, pending = await edit(gw, "alice", post["id"], "Quiz at 9, prizes")
    print("pending", code, pending.get("display_text"))
    code, body = await gw.act("bob", pending["id"], "approve")
    print("bob approves revision", code, body.get("message"))
