"""Quotes through the XRPC surface to a Bluesky account, with the real ``atproto`` SDK, to a real
PDS: what a quote shows is the record that was there when it was written. A PDS takes a quote of
an address that holds nothing (or holds another record than the quote names); through Byline
that quote would show whatever is written there later, words its approvers never saw it show.
"""

from __future__ import annotations

import html
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from atproto import Client, models
from atproto_client.exceptions import BadRequestError

from adapters.base import AdapterError
from adapters.bluesky import BlueskyAdapter
from gateway.appkeys import NOTIFIER
from gateway.clock import ManualClock
from tests.audit.logtools import Attacker, rejected_by_cli, verified_by_cli
from tests.clients.test_atproto_reply_parents import FAKE_CID, on_pds, shown_on_card, skyreply_policy
from tests.clients.test_atproto_threads import clients, clock, login, pds_record, posts_by_key, run
from tests.conftest import Gateway, started_gateway
from tests.pages.conftest import pages_on
from tests.platforms.bluesky.fixture import BlueskyPds, PdsAccount, app_tid
from tests.test_notify_email import PUBLIC, Mailbox, address, mailbox, with_emails

__all__ = ["clients", "clock", "mailbox"]  # fixtures, used by name
POST = "app.bsky.feed.post"


def _quoting(uri: str, cid: str) -> models.AppBskyEmbedRecord.Main:
    return models.AppBskyEmbedRecord.Main(record=models.ComAtprotoRepoStrongRef.Main(uri=uri, cid=cid))


async def test_a_quote_of_an_address_that_holds_no_record_is_refused(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes, on the co-signed account, an address that holds no record yet (a key of any
    repository; here the account's own), and one that holds another record than the CID she
    names: both are refused (400: ``RecordNotFound``, ``InvalidRequest``) and nothing is stored,
    so the words written there later are quoted by no post of Byline's. (Before: taken, held
    for bob, and once approved out showing words written there after his approval.) A quote of
    the record as it is goes through, held as any post is."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    own = await on_pds(bluesky_pds, account)
    words = secrets.token_hex(4)
    empty = f"at://{account.did}/{POST}/{app_tid()}"
    there = await own.write(app_tid(), f"Quotable ({words})")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        before = await gw.snapshot()
        with pytest.raises(BadRequestError) as refused:
            await run(client.send_post, f"Look at this ({words})", embed=_quoting(empty, FAKE_CID))
        error = refused.value.response.content
        assert (refused.value.response.status_code, error.error) == (400, "RecordNotFound")
        assert error.message.startswith(f"Could not locate record: {empty}"), error.message
        with pytest.raises(BadRequestError) as other:
            await run(client.send_post, f"And this ({words})", embed=_quoting(there["uri"], FAKE_CID))
        assert (other.value.response.status_code, other.value.response.content.error) == (400, "InvalidRequest")
        assert f"Record/embed/record/cid: {there['uri']} is " in other.value.response.content.message
        assert await gw.snapshot() == before
        assert await posts_by_key(gw, "alice", "skyreply") == {}
        await run(client.send_post, f"Worth a read ({words})", embed=_quoting(there["uri"], there["cid"]))
        [held] = (await posts_by_key(gw, "alice", "skyreply")).values()
        assert held["state"] == "held", held
        for _ in range(2):
            await gw.tick()
            clock.advance(timedelta(minutes=1))
        await verified_by_cli(gw)


async def test_a_quote_whose_record_is_written_again_before_it_goes_out_fails(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes a record, held for bob; meanwhile the record is deleted and written again under
    its key with other words. Bob approves what he was shown, and the post fails for good
    instead of going out showing the words written since (before: it went out quoting them);
    the log verifies."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    own = await on_pds(bluesky_pds, account)
    words, rkey = secrets.token_hex(4), app_tid()
    there = await own.write(rkey, f"Quotable ({words})")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        await run(client.send_post, f"Worth a read ({words})", embed=_quoting(there["uri"], there["cid"]))
        [held] = (await posts_by_key(gw, "alice", "skyreply")).values()
        await own.delete(rkey)
        again = await own.write(rkey, f"Words no approver saw ({words})")
        assert again["cid"] != there["cid"]
        code, body = await gw.act("bob", held["id"], "approve")
        assert (code, body["state"]) == (200, "scheduled"), body
        for _ in range(3):
            await gw.tick()
            clock.advance(timedelta(minutes=1))
        failed = await gw.get("alice", held["id"])
        assert failed["state"] == "failed", failed
        assert "deleted and written again since" in failed["last_error"], failed["last_error"]
        assert failed.get("remote") is None
        await verified_by_cli(gw)


async def _quote_of_a_held_post(gw: Gateway, clients: list[Client], account: PdsAccount,
                                words: str) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """Alice's post held for bob on the co-signed account, and her quote of it (sent with the
    address and CID Byline answered for it) held too: both answers, and both posts on Byline."""
    client = await login(gw, clients, "alice", "skyreply", account.handle)
    first = await run(client.send_post, f"Our launch is on Monday ({words})")
    quote = await run(client.send_post, f"Read this ({words})", embed=_quoting(first.uri, first.cid))
    posts = await posts_by_key(gw, "alice", "skyreply")
    held, quoting = (posts[uri.rsplit("/", 1)[1]] for uri in (first.uri, quote.uri))
    assert (held["state"], quoting["state"]) == ("held", "held"), (held, quoting)
    return first, quote, held, quoting


async def _ticks(gw: Gateway, clock: ManualClock, times: int) -> None:
    """The publisher's turns, two minutes apart."""
    for _ in range(times):
        await gw.tick()
        clock.advance(timedelta(minutes=2))


async def _quotes_it_as_it_went_out(bluesky_pds: BlueskyPds, quoted_uri: str, quote_uri: str) -> None:
    """Both posts are on the PDS, the quote naming the CID the post it quotes went out with."""
    went, quoted = await pds_record(bluesky_pds, quoted_uri), await pds_record(bluesky_pds, quote_uri)
    assert went is not None and quoted is not None, (went, quoted)
    assert quoted["value"]["embed"]["record"] == {"$type": "com.atproto.repo.strongRef",
                                                  "uri": quoted_uri, "cid": went["cid"]}


async def test_a_quote_of_an_own_post_waits_for_it_and_quotes_it_as_it_went_out(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes her own post, both held for bob. Bob approves the quote first: it waits for
    the post it quotes (before: it went out at once, quoting a record not yet written), and goes
    out once that post is out, naming the CID it went out with; the log verifies."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        first, quote, held, quoting = await _quote_of_a_held_post(gw, clients, account, secrets.token_hex(4))
        code, body = await gw.act("bob", quoting["id"], "approve")
        assert (code, body["state"]) == (200, "scheduled"), body
        await _ticks(gw, clock, 3)
        assert (await gw.get("alice", quoting["id"]))["state"] == "scheduled"
        assert await pds_record(bluesky_pds, quote.uri) is None
        code, body = await gw.act("bob", held["id"], "approve")
        assert code == 200, body
        await _ticks(gw, clock, 3)
        await _quotes_it_as_it_went_out(bluesky_pds, first.uri, quote.uri)
        await verified_by_cli(gw)


@pytest.mark.parametrize("ends", ["cancel", "reject"])
async def test_a_quote_of_an_own_post_that_ends_unpublished_is_cancelled_with_it_and_its_author_told(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client], mailbox: Mailbox, ends: str,
) -> None:
    """Alice quotes her own post, both held for bob; then the post quoted ends without going out
    (she cancels it, or bob rejects it). The quote is cancelled in that same moment, saying why,
    and alice is emailed so: bob is no longer asked to approve a quote of words that will never
    be out, and his approval of it is refused (before: it stayed held, was approved, and failed
    only when due). Nothing reaches the PDS; the log verifies."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    await mailbox.start()
    async with started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600, notify_timeout_seconds=2,
                               public_url=PUBLIC, smtp_url=f"smtp://127.0.0.1:{mailbox.port}",
                               smtp_from="byline@byline.example") as gw:
        await with_emails(gw, "alice")
        first, quote, held, quoting = await _quote_of_a_held_post(gw, clients, account, secrets.token_hex(4))
        code, body = await gw.act("alice" if ends == "cancel" else "bob", held["id"], ends)
        assert code == 200, body
        how = {"cancel": "cancelled", "reject": "rejected"}[ends]
        cancelled = await gw.get("alice", quoting["id"])
        assert cancelled["state"] == "cancelled", cancelled
        why = f"the post it quotes, {held['id']}, was {how}: this quote does not go out without it"
        assert cancelled["last_error"] == why
        code, body = await gw.act("bob", quoting["id"], "approve")
        assert code == 409, body
        await _ticks(gw, clock, 3)
        assert await pds_record(bluesky_pds, first.uri) is None and await pds_record(bluesky_pds, quote.uri) is None
        await gw.app[NOTIFIER].run_once()
        assert mailbox.received() == [(address("alice"), "Byline: Your post for skyreply could not be published")]
        told = mailbox.body(address("alice"), "could not be published")
        assert why in told and f"{PUBLIC}/posts/{quoting['id']}" in told, told
        await verified_by_cli(gw)


async def test_a_quote_of_an_own_post_that_failed_fails_when_due_and_goes_out_once_retried_after_it(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes her own post, both held; bob approves both and the PDS refuses the post
    quoted. The quote is not sent on its own: it fails, saying the post it quotes failed and to
    retry it once that is out (a failed post may yet go out, so the quote is not cancelled).
    Alice retries the post, it goes out; she retries the quote, and it goes out quoting the
    post at the CID it went out with. The log verifies."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        words = secrets.token_hex(4)
        first, quote, held, quoting = await _quote_of_a_held_post(gw, clients, account, words)
        publish = BlueskyAdapter.publish

        async def refuse_the_quoted(self: BlueskyAdapter, post: Any) -> Any:
            if post.text.startswith("Our launch"):
                raise AdapterError("refused by the PDS", retryable=False, status=400)
            return await publish(self, post)

        with monkeypatch.context() as patched:
            patched.setattr(BlueskyAdapter, "publish", refuse_the_quoted)
            for post in (held, quoting):
                code, body = await gw.act("bob", post["id"], "approve")
                assert code == 200, body
            await _ticks(gw, clock, 4)
        assert (await gw.get("alice", held["id"]))["state"] == "failed"
        failed = await gw.get("alice", quoting["id"])
        assert failed["state"] == "failed", failed
        assert failed["last_error"].startswith(f"the post it quotes, {held['id']}, failed to go out"), failed
        assert failed["last_error"].endswith("retry this quote once it is out"), failed
        assert await pds_record(bluesky_pds, quote.uri) is None
        for post in (held, quoting):
            code, body = await gw.act("alice", post["id"], "retry")
            assert code == 200, body
            await _ticks(gw, clock, 3)
        await _quotes_it_as_it_went_out(bluesky_pds, first.uri, quote.uri)
        await verified_by_cli(gw)


async def test_a_quote_of_an_own_post_edited_before_it_went_out_fails(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes her own post, both held; bob approves the quote, then she edits the post
    quoted and bob approves that: the post goes out with its new words, and the quote, approved
    while it quoted the old ones, fails saying so instead of going out quoting words its approver
    never saw it quote (before: out at its approval, then the post it quoted out edited); the
    log verifies."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        words = secrets.token_hex(4)
        first, quote, held, quoting = await _quote_of_a_held_post(gw, clients, account, words)
        code, body = await gw.act("bob", quoting["id"], "approve")
        assert code == 200, body
        await _ticks(gw, clock, 2)
        code, body = await gw.call("alice", "PATCH", f"/v1/posts/{held['id']}", {"text": f"Launch cancelled ({words})"})
        assert code == 200, body
        code, body = await gw.act("bob", held["id"], "approve")
        assert code == 200, body
        await _ticks(gw, clock, 4)
        went = await pds_record(bluesky_pds, first.uri)
        assert went is not None and went["value"]["text"].startswith("Launch cancelled"), went
        failed = await gw.get("alice", quoting["id"])
        assert failed["state"] == "failed", failed
        assert "not with the words of its version 1" in failed["last_error"], failed["last_error"]
        assert await pds_record(bluesky_pds, quote.uri) is None
        await verified_by_cli(gw)


async def test_a_quote_sent_for_other_quoted_words_is_named_by_the_verifier(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes her own post, both held; bob approves the quote, she edits the post quoted,
    and someone with the database binds the quote to the post's new version, so that it goes
    out after it: the gateway cannot tell, but the quote's submission recorded the version its
    approvals were given for, and ``byline audit verify`` names the quote as sent quoting
    other words."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        words = secrets.token_hex(4)
        _, quote, held, quoting = await _quote_of_a_held_post(gw, clients, account, words)
        assert (await gw.act("bob", quoting["id"], "approve"))[0] == 200
        code, body = await gw.call("alice", "PATCH", f"/v1/posts/{held['id']}", {"text": f"Launch cancelled ({words})"})
        assert code == 200, body
        attacker = Attacker(db_url)
        [(stored,)] = await attacker.fetch("SELECT options FROM posts WHERE id = ?", quoting["id"])
        options = json.loads(stored)
        assert (options["quote_of_post"], options["quote_of_version"]) == (held["id"], 1)
        await attacker.run(("UPDATE posts SET options = ? WHERE id = ?",
                            (json.dumps({**options, "quote_of_version": 2}), quoting["id"])))
        assert (await gw.act("bob", held["id"], "approve"))[0] == 200
        await _ticks(gw, clock, 4)
        assert await pds_record(bluesky_pds, quote.uri) is not None
        said = await rejected_by_cli(gw)
        assert (f"post {quoting['id']} is sent quoting post {held['id']}, its approvals given while that post's "
                f"words were its version 1, but post {held['id']} was published at version 2") in said, said


async def test_an_approver_reads_the_words_a_quote_quotes_and_whose_they_are(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes bob.test's post from a Bluesky app. Bob's card shows the quoted words, whose
    post it is by the handle the PDS vouched for, and a link to it in the Bluesky app; before,
    only its at:// address, and bob approved a quote without seeing what it quotes. Kept with
    the quote: with the PDS unasked (its record and handle reads failing) the card is the same."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    words = secrets.token_hex(4)
    theirs = await on_pds(bluesky_pds, bluesky_pds.account("bob.test"))
    there = await theirs.write(app_tid(), f"Tea is best <b>iced</b> & sweet ({words})")
    rkey = there["uri"].rsplit("/", 1)[1]
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        quote = await run(client.send_post, f"Never ({words})", embed=_quoting(there["uri"], there["cid"]))
        held = (await posts_by_key(gw, "alice", "skyreply"))[quote.uri.rsplit("/", 1)[1]]
        async with pages_on(gw, ["bob"]) as pages:
            bob = await pages.person("bob")
            _, page = await bob.get("/queue")
            quotes = shown_on_card(page, held["id"], "Quotes")
            assert f'href="https://bsky.app/profile/bob.test/post/{rkey}"' in quotes, quotes
            assert "@bob.test's post" in html.unescape(quotes), quotes
            said = shown_on_card(page, held["id"], "Quoted words")
            assert said == f"<bdi>Tea is best &lt;b&gt;iced&lt;/b&gt; &amp; sweet ({words})</bdi>", said

            async def unasked(self: BlueskyAdapter, *args: Any, **kwargs: Any) -> Any:
                raise AssertionError("the PDS was asked as a card was shown")

            monkeypatch.setattr(BlueskyAdapter, "vouched_handle", unasked)
            monkeypatch.setattr(BlueskyAdapter, "record", unasked)
            _, again = await bob.get(f"/posts/{held['id']}")
            assert [shown_on_card(again, held["id"], label) for label in ("Quotes", "Quoted words")] == [quotes, said]
        await verified_by_cli(gw)


async def test_a_quote_stored_before_its_words_were_kept_says_so(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """A quote of bob.test's post stored before Byline kept what a quote shows (its options then:
    the embed alone): bob's card says plainly that the quoted words were not kept, to be read on
    the platform, beside the address it quotes. Before: the address alone, and nothing said of
    words bob was approving a quote of unread."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    words = secrets.token_hex(4)
    there = await (await on_pds(bluesky_pds, bluesky_pds.account("bob.test"))).write(app_tid(), f"Tea ({words})")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        quote = await run(client.send_post, f"Never ({words})", embed=_quoting(there["uri"], there["cid"]))
        held = (await posts_by_key(gw, "alice", "skyreply"))[quote.uri.rsplit("/", 1)[1]]
        attacker = Attacker(db_url)
        [(stored,)] = await attacker.fetch("SELECT options FROM posts WHERE id = ?", held["id"])
        then = {k: v for k, v in json.loads(stored).items() if k not in ("quote_text", "quote_account", "quote_url")}
        await attacker.run(("UPDATE posts SET options = ? WHERE id = ?", (json.dumps(then), held["id"])))
        async with pages_on(gw, ["bob"]) as pages:
            _, page = await (await pages.person("bob")).get("/queue")
        assert shown_on_card(page, held["id"], "Quotes") == f"<bdi>{there['uri']}</bdi>"
        assert shown_on_card(page, held["id"], "Quoted words") == (
            "<bdi>Words not kept: this quote was written before Byline kept them. "
            "Read them on the platform before you approve.</bdi>")


async def test_an_approver_reads_an_own_quoted_post_at_the_version_the_quote_is_bound_to(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice quotes her own post, both held. Bob's card of the quote shows that post's words at
    its version 1, the one the quote goes out with or not at all, linking to the post's page;
    after she edits the post quoted, the quote's card still shows version 1's words (what the
    quote is bound to), not the new ones. Before: only the address Byline answered for it."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        words = secrets.token_hex(4)
        _, _, held, quoting = await _quote_of_a_held_post(gw, clients, account, words)
        code, body = await gw.call("alice", "PATCH", f"/v1/posts/{held['id']}", {"text": f"Launch cancelled ({words})"})
        assert code == 200, body
        async with pages_on(gw, ["bob"]) as pages:
            _, page = await (await pages.person("bob")).get("/queue")
        quotes = shown_on_card(page, quoting["id"], "Quotes")
        assert f'href="/posts/{held["id"]}"' in quotes and "version 1, not out yet" in quotes, quotes
        said = shown_on_card(page, quoting["id"], "Quoted words")
        assert said == f"<bdi>Our launch is on Monday ({words})</bdi>", said
        await verified_by_cli(gw)
