"""Edits of published posts on held tiers: each waits, as a pending revision, for exactly what a
new post of its words would (co-signers' approvals, the cooling-off, a rule's second look), the
platform showing the published words until it is released, then edited there once, with the
words approved. Over HTTP, against the Mastodon stand-in, on both databases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from gateway.clock import ManualClock
from gateway.services.outgoing import text_sha256
from gateway.services.posts import PostService
from gateway.storage import posts as posts_sql
from gateway.storage.db import DatabaseUnavailable
from tests.audit.logtools import Attacker, rejected_by_cli, verified_by_cli
from tests.clients.revisions import edit, held_masto, pending_revision, published_on_masto, turned
from tests.clients.world import READING, UPSTREAM_TOKEN, World, write_masto_policy
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import FakeMastodon, Status
from tests.fakes.mastodon import create_app as mastodon_app
from tests.pages.conftest import pages_on


async def test_cosigned_edit_waits_for_two_cosigners_and_goes_out_once(world: World, policy_dir: Path) -> None:
    """Co-signed: the edit of a published post is held as its pending revision (before: 422);
    its author's approval does not count; two co-signers' approvals edit the post upstream once,
    with exactly the words approved (the disclosure line too), recorded as its revision."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Launch on Tuesday", "Launch on Wednesday")
    assert (pending["state"], pending["revises"], pending["approvals_needed"]) == ("held", post_id, 2)
    assert pending["id"] != post_id
    assert pending["display_text"] == "Launch on Wednesday\n\n—alice"
    code, own = await gw.act("alice", pending["id"], "approve")
    assert code == 403, own
    await gw.tick()
    assert (status.text, status.edits) == ("Launch on Tuesday", [])
    assert (await gw.get("alice", post_id))["version"] == 1
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, pending["id"], "approve")
        assert code == 200, body
    assert body["state"] == "scheduled"
    await gw.tick()
    await gw.tick()
    assert status.edits == ["Launch on Wednesday\n\n—alice"]
    post = await gw.get("alice", post_id)
    assert (post["version"], post["text"], post["display_text"]) == (2, "Launch on Wednesday",
                                                                     "Launch on Wednesday\n\n—alice")
    revised = post["events"][-1]
    assert (revised["type"], revised["actor"], revised["data"]["revision"]) == ("post.revised", "alice",
                                                                                pending["id"])
    assert (await gw.get("alice", pending["id"]))["state"] == "applied"
    await verified_by_cli(gw)


async def test_second_edit_changes_the_pending_revision(world: World, policy_dir: Path) -> None:
    """A second edit while one waits edits that pending revision (its approvals start again):
    one pending revision a post, and the words approved are the ones that go out."""
    gw = world.gateway
    post_id, status, first = await pending_revision(world, policy_dir, "Doors open at 9", "Doors open at 10")
    code, body = await gw.act("bob", first["id"], "approve")
    assert code == 200, body
    code, second = await edit(gw, "alice", post_id, "Doors open at 11")
    assert code == 200, second
    assert (second["id"], second["version"], second["approvals_needed"]) == (first["id"], 2, 2)
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, first["id"], "approve")
        assert code == 200, body
    await gw.tick()
    assert status.edits == ["Doors open at 11\n\n—alice"]
    await verified_by_cli(gw)


async def test_cosigned_revision_rejected_leaves_the_post(world: World, policy_dir: Path) -> None:
    """A co-signer's rejection ends the pending revision: the platform keeps the published words."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Prices stay the same", "Prices go up")
    code, body = await gw.act("dave", pending["id"], "reject", {"reason": "not agreed"})
    assert (code, body["state"]) == (200, "rejected"), body
    code, body = await gw.act("bob", pending["id"], "approve")
    assert code == 409, body
    await gw.tick()
    assert (status.text, status.edits) == ("Prices stay the same", [])
    assert (await gw.get("alice", post_id))["version"] == 1
    code, later = await edit(gw, "alice", post_id, "Prices go up a little")
    assert (code, later["state"]) == (200, "held"), later  # a new pending revision may follow
    assert later["id"] != pending["id"]
    await verified_by_cli(gw)


async def test_delayed_edit_cancelled_before_due_changes_nothing(world: World, policy_dir: Path) -> None:
    """Delayed: the edit waits out the cooling-off, during which its author cancels it: the
    platform keeps the published words; one not cancelled goes out once the delay is over."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Meet at noon", "Meet at one", "delayed")
    assert (pending["state"], pending["revises"]) == ("scheduled", post_id), pending
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    code, body = await gw.act("alice", pending["id"], "cancel")
    assert (code, body["state"]) == (200, "cancelled"), body
    gw.clock.advance(timedelta(minutes=6))
    await gw.tick()
    assert (status.text, status.edits) == ("Meet at noon", [])
    _, again = await edit(gw, "alice", post_id, "Meet at two")
    gw.clock.advance(timedelta(minutes=9))
    await gw.tick()
    assert status.edits == []
    gw.clock.advance(timedelta(minutes=1, seconds=1))
    await gw.tick()
    assert (status.text, status.edits) == ("Meet at two", ["Meet at two"])
    assert (await gw.get("alice", again["id"]))["state"] == "applied"
    await verified_by_cli(gw)


async def test_deleting_the_post_cancels_its_pending_revision(world: World, policy_dir: Path) -> None:
    """A deletion of the published post cancels its pending revision: its approvals reach nothing."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Join us on Friday", "Join us on Saturday")
    code, body = await gw.act("bob", pending["id"], "approve")
    assert code == 200, body
    code, body = await gw.call("alice", "DELETE", f"/v1/posts/{post_id}")
    assert (code, body["state"]) == (200, "deleted"), body
    assert status.deleted
    revision = await gw.get("alice", pending["id"])
    assert revision["state"] == "cancelled"
    assert (revision["events"][-1]["actor"], revision["events"][-1]["data"]["revises"]) == ("system", post_id)
    code, body = await gw.act("dave", pending["id"], "approve")
    assert code == 409, body
    await gw.tick()
    assert status.edits == []
    await verified_by_cli(gw)


async def test_bluesky_like_platforms_without_edits_still_refuse(world: World, policy_dir: Path) -> None:
    """A platform that cannot edit a published post (the sandbox, as Bluesky) still refuses the
    edit (422) on a held tier, and stores nothing."""
    gw = world.gateway
    post = await gw.submit("alice", "cosigned", "Sandbox words")
    for approver in ("bob", "dave"):
        await gw.act(approver, post["id"], "approve")
    gw.clock.advance(timedelta(minutes=1, seconds=1))
    await gw.tick()
    assert (await gw.get("alice", post["id"]))["state"] == "published"
    before = await gw.snapshot()
    code, body = await edit(gw, "alice", post["id"], "Sandbox words, edited")
    assert code == 422, body
    assert (body["error"], body["message"]) == ("validation_failed", "sandbox does not allow editing a published post")
    assert await gw.snapshot() == before


async def _app_published(world: World, policy_dir: Path, text: str) -> tuple[Any, Any, Status]:
    """alice's Mastodon.py app, a status it posted while ``masto`` was direct, that status
    upstream; the account turned co-signed since."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, text)
    await world.gateway.tick()
    [sent] = world.upstream.statuses(world.upstream_account)
    await turned(world, policy_dir, "co-signed")
    return api, first, sent


async def test_mastodon_app_edit_of_a_cosigned_post_is_held_then_made(world: World, policy_dir: Path) -> None:
    """An unmodified Mastodon.py app edits a published status of a co-signed account (``PUT
    /api/v1/statuses/:id``; before: 422): the Status it gets back is the one it edited (before:
    the pending edit's, another id, a second status in its timeline), with the words the platform
    shows, and ``byline.pending_revision`` naming the edit held for two co-signers; the status
    keeps its published words until they approve, then shows the new ones, edited upstream once."""
    gw = world.gateway
    api, first, sent = await _app_published(world, policy_dir, "Lunch at noon")
    answered = await world.run(api.status_update, first.id, "Lunch at one")
    assert (answered.id, answered.content, answered.byline.state) == (first.id, "<p>Lunch at noon</p>", "published")
    assert answered.edited_at is None
    held = answered.byline.pending_revision
    assert (held.state, held.approvals_needed, held.content) == ("held", 2, "<p>Lunch at one</p><p>—alice</p>")
    assert (await gw.get("alice", held.id))["revises"] == first.id
    shown = await world.run(api.status, first.id)
    assert (shown.content, shown.byline.state) == ("<p>Lunch at noon</p>", "published")
    await gw.tick()
    assert (sent.text, sent.edits) == ("Lunch at noon", [])
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, held.id, "approve")
        assert code == 200, body
    await gw.tick()
    assert sent.edits == ["Lunch at one\n\n—alice"]
    shown = await world.run(api.status, first.id)
    assert (shown.content, shown.byline.version) == ("<p>Lunch at one</p><p>—alice</p>", 2)
    assert (await gw.get("alice", held.id))["state"] == "applied"
    await verified_by_cli(gw)


async def test_mastodon_app_reads_the_edit_waiting_on_the_status_it_edited(world: World, policy_dir: Path) -> None:
    """``GET /api/v1/statuses/:id`` of a status whose edit waits, read by Mastodon.py apps of its
    author and of its co-signers, names the edit as the answer to the edit did
    (``byline.pending_revision``; before: only there), with the approvals it still needs as each
    one counts (``approvals_needed``, before seen only through the native view): 2, 1, then 0
    once it is due; once made, the status names none."""
    gw = world.gateway
    api, first, sent = await _app_published(world, policy_dir, "Lunch at noon")
    held = (await world.run(api.status_update, first.id, "Lunch at one")).byline.pending_revision
    bob = await world.client("bob", "masto")
    for app in (api, bob):
        shown = (await world.run(app.status, first.id)).byline
        assert (shown.state, shown.version) == ("published", 1)
        assert (shown.pending_revision.id, shown.pending_revision.state, shown.pending_revision.approvals_needed,
                shown.pending_revision.content) == (held.id, "held", 2, "<p>Lunch at one</p><p>—alice</p>")
    needed = []
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, held.id, "approve")
        assert code == 200, body
        waiting = (await world.run(bob.status, first.id)).byline.pending_revision
        needed.append((waiting.state, waiting.approvals_needed))
    assert needed == [("held", 1), ("scheduled", 0)]
    await gw.tick()
    assert sent.edits == ["Lunch at one\n\n—alice"]
    made = (await world.run(api.status, first.id)).byline
    assert (made.version, "pending_revision" in made) == (2, False)


async def test_mastodon_app_sees_a_delayed_edit_and_its_time(world: World, policy_dir: Path) -> None:
    """On a delayed account, Mastodon.py's edit of a published status waits out the cooling-off:
    the status it reads back names the edit scheduled, its time ten minutes off and no approvals
    needed; ``scheduled_status`` of the edit's id says the same time, the status it revises and
    its words; at its time the status shows the new words and names no edit."""
    gw = world.gateway
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Meet at noon")
    await gw.tick()
    await turned(world, policy_dir, "delayed")
    due = gw.clock.now() + timedelta(minutes=10)
    held = (await world.run(api.status_update, first.id, "Meet at one")).byline.pending_revision
    shown = (await world.run(api.status, first.id)).byline.pending_revision
    assert (shown.id, shown.state, shown.approvals_needed, shown.reasons) == (held.id, "scheduled", 0, [])
    assert datetime.fromisoformat(shown.publish_at) == due
    one = await world.run(api.scheduled_status, held.id)
    assert (one.scheduled_at, one.params.text, one.byline.revises, one.byline.approvals_needed) == (
        due, "Meet at one", first.id, 0)
    gw.clock.advance(timedelta(minutes=10, seconds=1))
    await gw.tick()
    after = await world.run(api.status, first.id)
    assert (after.content, after.byline.version, "pending_revision" in after.byline) == ("<p>Meet at one</p>", 2,
                                                                                           False)


async def test_a_page_of_statuses_reads_the_edits_waiting_in_one_query(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mastodon.py's ``statuses([…])`` of three published statuses, two with an edit waiting:
    each names its own (and the third none), and the page's pending revisions are read in one
    query, not one a status."""
    api = await world.client("alice", "masto")
    firsts = [await world.run(api.status_post, f"Talk {n} at noon") for n in range(3)]
    await world.gateway.tick()
    await turned(world, policy_dir, "co-signed")
    held = [(await world.run(api.status_update, f.id, f"Talk {n} at one")).byline.pending_revision.id
            for n, f in enumerate(firsts[:2])]
    reads: list[list[str]] = []
    at_once = posts_sql.open_revisions

    async def counted(txn: Any, post_ids: Any) -> Any:
        reads.append(list(post_ids))
        return await at_once(txn, post_ids)

    monkeypatch.setattr(posts_sql, "open_revisions", counted)
    page = await world.run(api.statuses, [f.id for f in firsts])
    assert [s.id for s in page] == [f.id for f in firsts]
    assert [s.byline.get("pending_revision", {}).get("id") for s in page] == [*held, None]
    assert reads == [[f.id for f in firsts]]


async def test_mastodon_apps_scheduled_list_leaves_pending_edits_out(world: World, policy_dir: Path) -> None:
    """A Mastodon.py app's scheduled statuses are the statuses to come, never an edit waiting
    for its approvals (before: listed, as a new post the app could delete and post again, a
    second post); the edit's id still reads it there, and deleting it cancels the edit alone."""
    gw = world.gateway
    api, first, sent = await _app_published(world, policy_dir, "Quiz night at 8")
    held = (await world.run(api.status_update, first.id, "Quiz night at 9")).byline.pending_revision
    coming = await world.run(api.status_post, "Quiz answers tomorrow")
    assert [s.id for s in await world.run(api.scheduled_statuses)] == [coming.id]
    one = await world.run(api.scheduled_status, held.id)
    assert one.params.text == "Quiz night at 9"
    await world.run(api.scheduled_status_delete, held.id)
    assert (await gw.get("alice", held.id))["state"] == "cancelled"
    assert (await gw.get("alice", first.id))["state"] == "published"
    await gw.tick()
    assert (sent.text, sent.edits) == ("Quiz night at 8", [])
    await verified_by_cli(gw)


async def test_approvers_card_shows_the_published_words_and_the_proposed_ones(
    world: World, policy_dir: Path,
) -> None:
    """The approval page's card of a pending revision says it is an edit of a published post:
    the words its platform shows now, what the edit changes, the words proposed as they would
    go out, and links to the published post; approving there counts as over the API."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Tickets <b>on sale</b> at 9",
                                              "Tickets <b>on sale</b> at 10")
    async with pages_on(gw) as pages:
        bob = await pages.person("bob")
        _, queue = await bob.get("/queue")
        [card] = re.findall(rf'<article class="card post"[^>]*data-post="{pending["id"]}".*?</article>', queue,
                            re.DOTALL)
        assert "Edit of a published post by <bdi>alice</bdi>" in card
        assert f'<a href="/posts/{post_id}">the published post</a>' in card
        remote = (await gw.get("alice", post_id))["remote"]["url"]
        assert remote.startswith("https://") and f'<a href="{remote}">as its platform shows it</a>' in card
        assert '<div class="text published">Tickets &lt;b&gt;on sale&lt;/b&gt; at 9</div>' in card
        assert "<del>9</del><ins>10\n\n—alice</ins>" in card
        assert '<div class="text">Tickets &lt;b&gt;on sale&lt;/b&gt; at 10\n\n—alice</div>' in card
        code, _, _ = await bob.post(f"/posts/{pending['id']}/approve", {"version": "1", "back": "queue"})
        assert code == 303
        _, page = await bob.get(f"/posts/{pending['id']}")
        assert "the published post</a>" in page and "Approvals of this version: 1 of 2" in page
    assert (await gw.get("alice", pending["id"]))["approvals_needed"] == 1
    assert status.edits == []


@pytest.mark.parametrize(("editor", "line_changed"), [(None, False), ("bob", False), (None, True)])
async def test_a_release_cut_off_before_its_record_is_settled_with_the_approved_words(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, editor: str | None, line_changed: bool,
) -> None:
    """The gateway loses its database between Mastodon's edit and its record: once the post's
    hold runs out, the publisher settles the change as its pending revision's (sent again with
    the words approved, which Mastodon shows once), never undoing it as an edit its policy would
    hold, and the revision ends applied. Where a co-signer wrote words into the revision, the
    words sent again name them, as those approved did (before, the line named its author alone);
    where the account's disclosure line changed before it was settled, the words sent again are
    still those approved, under the line they were approved with (before, under the new one)."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Talk at 3", "Talk at 4")
    words, approvers = "Talk at 4\n\n—alice", ("bob", "dave")
    if editor is not None:
        code, body = await gw.call(editor, "PATCH", f"/v1/posts/{pending['id']}", {"text": "Talk at 4, room B"})
        assert code == 200, body
        words, approvers = f"Talk at 4, room B\n\n—alice, edited by {editor}", ("carol", "dave")
    for approver in approvers:
        code, body = await gw.act(approver, pending["id"], "approve")
        assert code == 200, body
    record = PostService.record_revised
    cut = []

    async def cut_off(self: PostService, *args: Any, **kwargs: Any) -> Any:
        if not cut:
            cut.append(True)
            raise DatabaseUnavailable("cut off")
        return await record(self, *args, **kwargs)

    monkeypatch.setattr(PostService, "record_revised", cut_off)
    await gw.tick()
    assert (status.text, cut) == (words, [True])
    assert (await gw.get("alice", post_id))["version"] == 1
    if line_changed:
        policy = policy_dir / "masto.yaml"
        policy.write_text(policy.read_text().replace('"—{author}"', '"(by {author})"'))
        await gw.sync_policies()
    gw.clock.advance(timedelta(minutes=3))
    await gw.tick()
    assert status.edits == [words, words]
    post = await gw.get("alice", post_id)
    assert (post["version"], post["display_text"]) == (2, words)
    assert (post["events"][-1]["data"]["revision"], post["events"][-1]["data"]["recovered"]) == (pending["id"], True)
    assert (await gw.get("alice", pending["id"]))["state"] == "applied"
    await verified_by_cli(gw)


async def test_a_revision_the_platform_refuses_fails_and_retries_only_while_alone(
    world: World, policy_dir: Path,
) -> None:
    """Mastodon refuses the released edit: the pending revision fails (the log says so, naming
    it), the post keeps its words; once another edit of the post is pending, the failed one may
    not be retried beside it (409), so approvers never weigh two."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Menu: soup", "Menu: salad")
    for approver in ("bob", "dave"):
        await gw.act(approver, pending["id"], "approve")
    world.upstream.faults.fail_next(status=422, method="PUT", path="/api/v1/statuses/")
    await gw.tick()
    assert (status.text, status.edits) == ("Menu: soup", [])
    failed = await gw.get("alice", pending["id"])
    assert failed["state"] == "failed"
    post = await gw.get("alice", post_id)
    assert (post["version"], post["events"][-1]["type"], post["events"][-1]["data"]["revision"]) == (
        1, "post.revision_failed", pending["id"])
    code, again = await edit(gw, "alice", post_id, "Menu: salad and soup")
    assert (code, again["state"]) == (200, "held"), again
    code, body = await gw.act("alice", pending["id"], "retry")
    assert code == 409, body
    assert (await gw.get("alice", pending["id"]))["state"] == "failed"
    await verified_by_cli(gw)


async def _ticks_logging(gw: Gateway, times: int) -> list[str]:
    """Run the publisher ``times``; the revision events it logged."""
    with capture_logs() as logs:
        for _ in range(times):
            await gw.tick()
    return [e["event"] for e in logs if "revision" in e["event"]]


async def _failed_once(gw: Gateway, post_id: str, status: Status, pending: dict[str, Any]) -> dict[str, Any]:
    """The policy files reloaded and ``pending``'s delay over: the publisher fails it, logged
    once over three ticks, the post and its status upstream as published; the revision."""
    published = status.text
    await gw.sync_policies()
    gw.clock.advance(timedelta(minutes=11))
    assert await _ticks_logging(gw, 3) == ["revision_failed"]
    assert (status.text, status.edits) == (published, [])
    assert (await gw.get("alice", post_id))["version"] == 1
    failed = await gw.get("alice", pending["id"])
    assert failed["state"] == "failed"
    return failed


async def test_a_revision_whose_account_moved_to_a_platform_without_edits_fails_once(
    world: World, policy_dir: Path,
) -> None:
    """The account's file moves it to a platform that cannot edit a published post while an edit
    of one waits: once due, the pending revision fails, saying why (before: it was taken up and
    logged ``revision_not_released`` at every tick with no end); the log says so once, the
    publisher never takes it up again, and the post keeps its words."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Stand-up at 9", "Stand-up at 10", "delayed")
    write_policy(policy_dir, "masto", """account: masto
platform: sandbox
handle: "@brand"
tier: delayed
owner: erin
writers: [alice, carol]
delay: 10m
""")
    failed = await _failed_once(gw, post_id, status, pending)
    why = "sandbox does not allow editing a published post"
    assert failed["last_error"] == why
    entry = failed["events"][-1]
    assert (entry["type"], entry["actor"], entry["data"]["error"], entry["data"]["revises"]) == (
        "post.failed", "system", why, post_id)
    await verified_by_cli(gw)


async def test_a_revision_whose_account_moved_to_another_server_fails_unsent(
    world: World, policy_dir: Path,
) -> None:
    """The account's file moves it to another Mastodon server while an edit of its post waits:
    once due, the revision fails, saying the account is no longer where the post is, and
    nothing is sent to either server (the post's id there names another status, or none)."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Run at 7", "Run at 8", "delayed")
    held_masto(policy_dir, "https://elsewhere.example", "delayed")
    failed = await _failed_once(gw, post_id, status, pending)
    assert failed["last_error"].startswith("masto is no longer on mastodon at "), failed["last_error"]
    await verified_by_cli(gw)


async def test_a_revision_waiting_for_a_policy_in_force_is_held_not_taken_up(
    world: World, policy_dir: Path,
) -> None:
    """The account's policy is removed while its approved edit waits: the revision is held until
    one is in force again, and the publisher neither takes it up nor logs it at each tick; once
    the file is back, it is decided under it, and goes out once approved again."""
    gw = world.gateway
    _, status, pending = await pending_revision(world, policy_dir, "Quiz at 8", "Quiz at 9")
    for approver in ("bob", "dave"):
        await gw.act(approver, pending["id"], "approve")
    (policy_dir / "masto.yaml").unlink()
    await gw.sync_policies()
    assert await _ticks_logging(gw, 3) == []
    assert (await gw.get("alice", pending["id"]))["state"] == "held"
    await turned(world, policy_dir, "co-signed")
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, pending["id"], "approve")
        assert code == 200, body
    assert await _ticks_logging(gw, 2) == ["revision_released"]
    assert status.edits == ["Quiz at 9\n\n—alice"]
    await verified_by_cli(gw)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeMastodon, str]]:
    """A Mastodon stand-in that outlives the gateways a test starts and stops."""
    fake = FakeMastodon()
    fake.add_account("brand", UPSTREAM_TOKEN, scopes=READING)
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_pending_revision_survives_a_restart(
    db_url: str, policy_dir: Path, clock: ManualClock, upstream: tuple[FakeMastodon, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pending revision approved before the gateway stops is made once by the gateway started
    after it: nothing lost, nothing sent twice."""
    fake, url = upstream
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", UPSTREAM_TOKEN)
    write_masto_policy(policy_dir, url)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        post_id, status = await published_on_masto(gw, fake, "Office closed Monday")
        held_masto(policy_dir, url, "co-signed")
        await gw.sync_policies()
        _, pending = await edit(gw, "alice", post_id, "Office closed Tuesday")
        code, body = await gw.act("bob", pending["id"], "approve")
        assert code == 200, body
    async with started_gateway(db_url, policy_dir, clock) as gw:
        code, body = await gw.act("dave", pending["id"], "approve")
        assert (code, body["state"]) == (200, "scheduled"), body
    assert status.edits == []
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.tick()
        await gw.tick()
        assert status.edits == ["Office closed Tuesday\n\n—alice"]
        assert (await gw.get("alice", post_id))["version"] == 2
        await verified_by_cli(gw)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.tick()
    assert status.edits == ["Office closed Tuesday\n\n—alice"]


async def _worded_by_bob(gw: Gateway, pending: str, text: str) -> None:
    """Bob words the pending revision ``pending`` as ``text``; carol and dave approve it (each taken)."""
    code, body = await gw.call("bob", "PATCH", f"/v1/posts/{pending}", {"text": text})
    assert code == 200, body
    for approver in ("carol", "dave"):
        code, body = await gw.act(approver, pending, "approve")
        assert code == 200, body


async def test_a_cosigner_whose_words_a_revision_published_does_not_approve_them_again(
    world: World, policy_dir: Path,
) -> None:
    """Bob writes words into a pending revision, which two others approve and which goes out: his
    words are the published post's from then on: the post's next revision, which keeps them, still
    names him, and his approval of it is refused (403) as it would be on the post he edited."""
    gw = world.gateway
    post_id, status, first = await pending_revision(world, policy_dir, "Doors open at 9", "Doors open at 10")
    await _worded_by_bob(gw, first["id"], "Doors open at 10, bar at 8")
    await gw.tick()
    assert status.edits == ["Doors open at 10, bar at 8\n\n—alice, edited by bob"]
    code, second = await edit(gw, "alice", post_id, "Doors open at 10, bar at 8!")
    assert (code, second["state"]) == (200, "held"), second
    assert second["display_text"] == "Doors open at 10, bar at 8!\n\n—alice, edited by bob"
    code, body = await gw.act("bob", second["id"], "approve")
    assert code == 403, body
    await verified_by_cli(gw)



async def test_a_revision_whose_author_lost_their_role_goes_out_once_decided_again(
    world: World, policy_dir: Path,
) -> None:
    """Alice stops writing for the account while her revision waits: it is held anew for people
    who still have a role, goes out once two co-signers approve it, and the log verifies (before,
    ``byline audit verify`` named the honest gateway's revision as one by a non-writer)."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Talk at 3", "Talk at 4")
    policy = policy_dir / "masto.yaml"
    policy.write_text(policy.read_text().replace("writers: [alice, carol]", "writers: [carol]"))
    await gw.sync_policies()
    held = await gw.get("carol", pending["id"])
    assert (held["state"], [r["rule"] for r in held["reasons"]]) == ("held", ["author_lost_role"])
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, pending["id"], "approve")
        assert code == 200, body
    await gw.tick()
    assert status.edits == ["Talk at 4\n\n—alice"]
    assert (await gw.get("carol", pending["id"]))["state"] == "applied"
    assert (await gw.get("carol", post_id))["version"] == 2
    await verified_by_cli(gw)


async def _approved_with_a_warning(world: World, policy_dir: Path) -> tuple[str, Status, dict[str, Any]]:
    """Alice's unlisted post behind a content warning, published while ``masto`` was direct,
    and her edit of it held (co-signed) then approved by two co-signers, not yet sent: the
    post's id, its status upstream, the pending revision (which carries the warning on)."""
    gw = world.gateway
    post = await gw.submit("alice", "masto", "The ending, told", spoiler_text="Spoilers", visibility="unlisted")
    await gw.tick()
    status = world.upstream.statuses()[-1]
    assert (status.spoiler_text, status.visibility) == ("Spoilers", "unlisted")
    await turned(world, policy_dir, "co-signed")
    code, pending = await edit(gw, "alice", post["id"], "The ending, told right")
    assert code == 200, pending
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, pending["id"], "approve")
        assert code == 200, body
    assert body["state"] == "scheduled"
    return post["id"], status, pending


async def test_a_revision_released_says_it_carries_what_its_approvers_approved(
    world: World, policy_dir: Path,
) -> None:
    """The entries that send and record a revision released by its approvals say what it carries
    besides its words hashed as its pending revision's versions are (``revision_content_sha256``):
    the hash logged for the version its approvers approved, so the verifier can compare them;
    the log verifies."""
    gw = world.gateway
    post_id, status, pending = await _approved_with_a_warning(world, policy_dir)
    await gw.tick()
    await gw.tick()
    assert status.edits == ["The ending, told right\n\n—alice"]
    approved = [e["data"]["content_sha256"] for e in (await gw.get("alice", pending["id"]))["events"]
                if e["type"] == "post.submitted"]
    sent = [(e["type"], e["data"].get("revision_content_sha256")) for e in (await gw.get("alice", post_id))["events"]
            if e["type"] in ("post.revising", "post.revised")]
    assert approved[0] is not None
    assert sent == [("post.revising", approved[0]), ("post.revised", approved[0])]
    await verified_by_cli(gw)


async def test_a_revision_sent_with_another_warning_than_approved_is_named_by_the_verifier(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """Someone with the database takes the content warning off an approved pending revision (and
    makes it public) before it goes out: the gateway cannot tell, and it goes out so; but its
    entries hash what it sent as the revision's versions are hashed, and ``byline audit verify``
    names the revision as sent other than approved (before, the two hashes had other salts and
    nothing compared them)."""
    gw = world.gateway
    post_id, status, pending = await _approved_with_a_warning(world, policy_dir)
    await Attacker(db_url).run(("UPDATE posts SET options = ? WHERE id = ?",
                                ('{"visibility": "public"}', pending["id"])))
    await gw.tick()
    await gw.tick()
    assert (status.edits, status.spoiler_text) == (["The ending, told right\n\n—alice"], "")
    said = await rejected_by_cli(gw)
    assert (f"post.revising of post {post_id} sends other media or options than its revision {pending['id']} "
            "was approved with at version 1") in said, said


async def test_a_revision_sent_hiding_its_editor_is_named_by_the_verifier(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """Bob writes words into alice's pending revision, which carol and dave approve; someone with
    the database then takes bob off its editors (and rehashes the approvals for the words as they
    would go out then), so that it goes out crediting alice alone. The gateway cannot tell; but
    the entries that send and record it now say the disclosure line it went out with, and
    ``byline audit verify`` names the line as other than its policy asks for the words the log
    shows bob wrote into (before, the log held the words alone, and it verified)."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Talk at 3", "Talk at 4")
    await _worded_by_bob(gw, pending["id"], "Talk at 4, room B")
    hidden = "Talk at 4, room B\n\n—alice"
    await Attacker(db_url).run(
        ("UPDATE posts SET editors = ? WHERE id = ?", ("[]", pending["id"])),
        ("UPDATE approvals SET text_sha256 = ? WHERE post_id = ?", (text_sha256(hidden), pending["id"])),
    )
    await gw.tick()
    await gw.tick()
    assert status.edits == [hidden]
    sent = [e["data"].get("disclosure_line") for e in (await gw.get("alice", post_id))["events"]
            if e["type"] in ("post.revising", "post.revised")]
    assert sent == ["—alice", "—alice"]
    said = await rejected_by_cli(gw)
    assert (f"post.revising of post {post_id} sends the disclosure line '—alice' with its words, where the policy "
            "it names asks for '—alice, edited by bob'") in said, said


# ---- a revision of a post no longer published --------------------------------------------


async def _nothing_more_of(gw: Gateway, post_id: str, status: Status, pending: dict[str, Any]) -> None:
    """``post_id`` deleted, its pending revision cancelled by the gateway, naming it; nothing
    more may happen to either (each asked: 409), nothing reaches the platform past the
    revision's time, and the log verifies."""
    revision = await gw.get("alice", pending["id"])
    assert revision["state"] == "cancelled"
    assert (revision["events"][-1]["actor"], revision["events"][-1]["data"]["revises"]) == ("system", post_id)
    before = await gw.snapshot()
    for action in ("retry", "cancel"):
        code, body = await gw.act("alice", pending["id"], action)
        assert code == 409, body
    for target in (pending["id"], post_id):
        code, body = await edit(gw, "alice", target, "Later words")
        assert code == 409, body
    assert await gw.snapshot() == before
    gw.clock.advance(timedelta(minutes=11))
    await gw.tick()
    await gw.tick()
    assert status.edits == []
    await verified_by_cli(gw)


async def test_a_revision_of_a_status_deleted_from_a_mastodon_app_never_goes_out(
    world: World, policy_dir: Path,
) -> None:
    """Alice's Mastodon.py app deletes a published status whose edit waits out the cooling-off:
    the pending revision is cancelled with it, and once its time comes nothing is edited (a
    revision of a post no longer published can never go out); nothing more may be done to it."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Stand-up at 9")
    await world.gateway.tick()
    [status] = world.upstream.statuses(world.upstream_account)
    await turned(world, policy_dir, "delayed")
    code, pending = await edit(world.gateway, "alice", first.id, "Stand-up at 10")
    assert (code, pending["state"]) == (200, "scheduled"), pending
    await world.run(api.status_delete, first.id)
    assert status.deleted
    await _nothing_more_of(world.gateway, first.id, status, pending)


async def test_a_deletion_the_publisher_settles_cancels_the_pending_revision(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The platform deletes a published post whose approved edit waits, and the gateway's
    record of the deletion is cut off: the publisher settles the deletion once its hold runs out,
    and cancels the pending revision with it, as the gateway's own record would have; the edit
    never reaches the platform."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Run at 7", "Run at 8", "delayed")
    record = PostService.record_deleted

    async def cut_off(self: PostService, *args: Any, **kwargs: Any) -> Any:
        raise DatabaseUnavailable

    monkeypatch.setattr(PostService, "record_deleted", cut_off)
    code, body = await gw.call("alice", "DELETE", f"/v1/posts/{post_id}")
    assert code == 503, body
    assert status.deleted
    assert (await gw.get("alice", pending["id"]))["state"] == "scheduled"
    monkeypatch.setattr(PostService, "record_deleted", record)
    gw.clock.advance(timedelta(minutes=3))
    await gw.tick()
    assert (await gw.get("alice", post_id))["state"] == "deleted"
    await _nothing_more_of(gw, post_id, status, pending)


async def test_a_revision_given_up_for_a_post_only_the_record_says_is_gone_is_named(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """Someone with the database marks a published post deleted in Byline's record alone (the
    platform and the log still show it), so that its approved edit is given up as one with
    nothing to edit: nothing reaches the platform, the gateway says so in the log, and
    ``byline audit verify`` names the failure, as the log shows the post published, and the
    account under the very policy it went out under (before, any such failure verified)."""
    gw = world.gateway
    await turned(world, policy_dir, "co-signed")
    post_id = (await gw.submit("alice", "masto", "Quiz at 8"))["id"]
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, post_id, "approve")
        assert code == 200, body
    await gw.tick()
    [status] = world.upstream.statuses(world.upstream_account)
    code, pending = await edit(gw, "alice", post_id, "Quiz at 9")
    assert (code, pending["state"]) == (200, "held"), pending
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, pending["id"], "approve")
        assert code == 200, body
    await Attacker(db_url).run(("UPDATE posts SET state = 'deleted' WHERE id = ?", (post_id,)))
    await gw.tick()
    assert status.edits == []
    failed = await gw.get("alice", pending["id"])
    assert (failed["state"], failed["events"][-1]["type"]) == ("failed", "post.failed")
    said = await rejected_by_cli(gw)
    assert (f"system failed post {pending['id']}, a pending revision of {post_id}, while its account was still "
            f"where {post_id} went out") in said, said
