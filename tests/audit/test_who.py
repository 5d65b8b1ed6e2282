"""`byline audit who`: who wrote, edited, approved and published a post, from the log."""

from __future__ import annotations

from pathlib import Path

from gateway.appkeys import POSTS
from gateway.audit.who import who
from gateway.services.posts import Caller, PostOptions
from tests.audit.logtools import byline, cli_env, populate
from tests.audit.synthetic import SyntheticLog, summary
from tests.conftest import Gateway


async def test_who_tells_the_story_of_a_cosigned_post(gateway: Gateway, db_url: str) -> None:
    """From the database: the author, the edit, both approvers and the publication, in order."""
    ids = await populate(gateway)
    result = await byline("audit", "who", "--post", ids["cosigned"], env=cli_env(BYLINE_DATABASE_URL=db_url))
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[0] == f"post {ids['cosigned']} on account cosigned"
    events = [line.split("Z  ", 1)[1] for line in lines[1:]]
    assert events == [
        "written by carol (version 1), held for 2 approval(s) from bob, dave",
        "approved by bob (version 1)",
        "edited by carol (version 2)",
        "approved by bob (version 2)",
        "approved by dave (version 2)",
        "sent to the platform (version 2)",
        events[-1],
    ]
    assert events[-1].startswith("published (version 2) at ")


async def test_who_finds_a_post_by_its_platform_url(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """Given the URL a post got on its platform (here from an export), the adopted post and its
    suggestion are both told."""
    ids = await populate(gateway)
    post = await gateway.get("bob", ids["adopted"])
    url = post["remote"]["url"]
    assert url
    out = tmp_path / "log.export"
    result = await byline("audit", "export", "--out", str(out), env=cli_env(BYLINE_DATABASE_URL=db_url))
    assert result.code == 0, result.text
    result = await byline("audit", "who", "--post", url, "--export", str(out))
    assert result.code == 0, result.text
    assert f"post {ids['adopted']} on account managed" in result.out
    assert "written by bob (version 1), suggested by dave" in result.out
    assert f"post {ids['suggestion']} on account managed" in result.out
    assert f"adopted by bob as post {ids['adopted']}" in result.out
    live = str(gateway.client.make_url("")).rstrip("/")
    result = await byline("audit", "who", "--post", ids["cosigned"], "--url", live)
    assert result.code == 0 and "approved by dave (version 2)" in result.out, result.text
    result = await byline("audit", "who", "--post", "https://nowhere.example/1", "--export", str(out))
    assert result.code == 1 and "no post" in result.err


async def test_who_says_why_the_gateway_cancelled_a_reply(gateway: Gateway, db_url: str) -> None:
    """A reply cancelled with the post it replies to is told as the gateway's cancel, with the
    reason it was given, not as a cancel "by system"."""
    posts, bob = gateway.app[POSTS], Caller(user="bob")
    parent = await posts.submit(bob, account="delayed", text="Thread 1/2")
    reply = await posts.submit(bob, account="delayed", text="Thread 2/2",
                               options=PostOptions(reply_to_post=parent.id))
    await posts.cancel(bob, parent.id)
    result = await byline("audit", "who", "--post", reply.id, env=cli_env(BYLINE_DATABASE_URL=db_url))
    assert result.code == 0, result.text
    assert result.out.splitlines()[-1].split("Z  ", 1)[1] == (
        f"cancelled: the post it replies to, {parent.id}, was cancelled: this reply does not go out without it")


def test_who_tells_revisions_sent_recorded_failed_and_settled() -> None:
    """An edit sent to the platform, then recorded by the publisher after its gateway stopped;
    one the platform refused; and a deletion settled the same way: each told as such."""
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["alice"]), "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    for kind, actor, data in [
        ("post.revising", "alice", {"version": 2}),
        ("post.revised", "alice", {"version": 2, "recovered": True}),
        ("post.revising", "alice", {"version": 3}),
        ("post.revision_failed", "system", {"version": 3, "error": "the platform did not take the edit (HTTP 422)"}),
        ("post.deleted", "alice", {"state": "deleted", "recovered": True}),
    ]:
        log.add(kind, actor=actor, account="solo", post="1", data=data)
    entries = list(enumerate(log.entries))
    told = [line.split("Z  ", 1)[1] for line in who(lambda _post: entries, "1")[2:]]
    assert told == [
        "new words sent to the platform by alice (version 2)",
        "revised by alice (version 2), settled after its gateway stopped",
        "new words sent to the platform by alice (version 3)",
        "revision (version 3) not made: the platform did not take the edit (HTTP 422)",
        "deleted by alice, settled after its gateway stopped",
    ]


def test_who_tells_a_recovered_claim_that_only_looked_and_what_came_of_it() -> None:
    """A post claimed, its gateway stopped, the policy changed: the claim again only looked for it
    on the platform; not found, it was held again; found, it was recorded published as found.
    Neither claim again is told as sent (before, each was "sent to the platform")."""
    log = SyntheticLog()
    log.policy("brand", summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "dave"], required=1,
                                tier="co-signed"), "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    log.submit("2", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    for post, last in (("1", ("post.redecided", "policy-file", {"cause": "policy_changed", "state": "held",
                                                                  "version": 2})),
                       ("2", ("post.published", "system", {"version": 1, "url": "https://example.social/2",
                                                           "found": True}))):
        for kind, actor, data in [
            ("post.publishing", "system", {"version": 1}),
            ("post.publishing", "system", {"version": 1, "recovering": True, "looks_only": "policy_changed"}),
            last,
        ]:
            log.add(kind, actor=actor, account="brand", post=post, data=data)
    entries = list(enumerate(log.entries))
    looked = ("looked for on the platform (version 1), not sent: its gateway stopped mid-publish, and the policy "
              "in force would not let it out (policy_changed)")
    assert [line.split("Z  ", 1)[1] for line in who(lambda _post: entries, "1")[2:]] == [
        "sent to the platform (version 1)", looked, "held again (version 2) under a changed policy (policy_changed)",
    ]
    assert [line.split("Z  ", 1)[1] for line in who(lambda _post: entries, "2")[2:]] == [
        "sent to the platform (version 1)", looked,
        "published (version 1) at https://example.social/2, found there after its gateway stopped",
    ]


def test_who_tells_what_a_change_of_who_may_reply_or_quote_says() -> None:
    """A gate set and one removed, as the public page tells them: who, and the settings in
    words; an entry written before settings were recorded, or a forged one naming no gate,
    says only which gate changed."""
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["alice"]), "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    threadgate, postgate = "app.bsky.feed.threadgate", "app.bsky.feed.postgate"
    for data in [
        {"gate": threadgate, "cid": "bafy1", "settings": {"replies": ["follower", "list"], "lists": 2,
                                                          "hidden_replies": 0}},
        {"gate": postgate, "cid": None, "settings": {"quotes": "on", "detached_quotes": 0}},
        {"gate": postgate, "cid": "bafy2"},
        # a forged entry: settings of a postgate's shape on what is no gate (the verifier names it)
        {"gate": "app.bsky.feed.post", "cid": "bafy3", "settings": {"quotes": "off", "detached_quotes": 0}},
    ]:
        log.add("post.gates_changed", actor="alice", account="solo", post="1", data=data)
    entries = list(enumerate(log.entries))
    told = [line.split("Z  ", 1)[1] for line in who(lambda _post: entries, "1")[2:]]
    assert told == [
        f"{threadgate} set by alice: Replies: only the account's followers and people on 2 lists",
        f"{postgate} removed by alice: Quotes: on",
        f"{postgate} set by alice",
        "app.bsky.feed.post set by alice: Who may reply or quote changed",
    ]


def test_who_tells_changes_of_gates_of_any_shape_without_failing() -> None:
    """An export is anyone's file: a change naming a gate Byline never writes, with settings of
    no gate's shape, and any other entry that carries a settings field are told (the verifier
    names what is wrong with them), where they stopped `byline audit who` with a KeyError."""
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["alice"]), "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    log.add("post.gates_changed", actor="alice", account="solo", post="1",
            data={"gate": "app.example.gate", "cid": "bafy1", "settings": {}})
    log.add("post.gates_changed", actor="alice", account="solo", post="1",
            data={"gate": "app.example.gate", "cid": "bafy2", "settings": {"quotes": "off", "detached_quotes": 0}})
    log.add("post.approved", actor="bob", account="solo", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "settings": {"x": 1}})
    entries = list(enumerate(log.entries))
    told = [line.split("Z  ", 1)[1] for line in who(lambda _post: entries, "1")[2:]]
    assert told == [
        "app.example.gate set by alice: Who may reply or quote changed",
        "app.example.gate set by alice: Who may reply or quote changed",
        "approved by bob (version 1)",
    ]
