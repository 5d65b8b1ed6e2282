"""The authorization matrix over HTTP: every tier × every action × every person, by outcome.

For each call a fresh post is first put where the action is possible (held to approve, failed
to retry, published to delete, a suggestion to adopt), so that a 409 can never hide a missing
permission. Then:

- a person the rules allow gets 2xx, and the call changes exactly what it should: the post's
  state and fields, its versions and decisions, the sandbox timeline, and the log entries
  appended (their types, actors and posts), compared before and after;
- a person the rules refuse gets 403 when they can see the post and 404 when they cannot, and
  nothing stored changes, the log included.

The expected permissions are the ones of ``tests.test_authorization.EXPECTED_MAY`` wherever the
post is the one that table speaks of (the tier's ``AUTHOR``'s post; a suggestion on managed);
where a state cannot be reached with that post, the scenario names another post and writes out
who may act on it, with the reason. The policies are the test policies with a hold rule on the
delayed and managed tiers, so that every tier can hold a post. Adopt and dismiss on the tiers
without suggesters have no post to act on at all; a test of their own shows that.
"""

from __future__ import annotations

import base64
import json
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterError, OutboundPost
from adapters.sandbox import SandboxRecord
from gateway.appkeys import IDENTITY, SANDBOX
from gateway.policy.engine import roles
from gateway.policy.loader import parse_policy
from gateway.types import to_micros
from tests.conftest import TEST_POLICIES, USERS, Gateway, make_policy_dir
from tests.test_authorization import AUTHOR, EXPECTED_MAY, EXPECTED_ROLES

TIERS = ("direct", "delayed", "cosigned", "managed")
ACTIONS = ("view", "edit", "approve", "reject", "cancel", "adopt", "dismiss", "delete", "retry")

# The test policies, with a hold rule on the two tiers that have none, so that a post can be
# held (and approved or rejected) on every tier. A rule gives no one a role:
# test_matrix_policies_give_the_same_roles checks that the people are who EXPECTED_ROLES says.
_HOLD_RULE = """
        rules:
          - name: breaking-news
            action: hold
            any_words: [fired]
            reason: Check the full story first
"""
MATRIX_POLICIES = {
    **TEST_POLICIES,
    "delayed": TEST_POLICIES["delayed"].rstrip() + _HOLD_RULE,
    "managed": TEST_POLICIES["managed"].rstrip() + _HOLD_RULE,
}

HELD_TEXT = "Board fired the CEO"  # held by a rule on direct, delayed and managed
PLAIN_TEXT = "A thought"  # held only where the tier holds everything (co-signed)
IDEA_TEXT = "An idea"  # dave's suggestion on managed
NEW_TEXT = "Edited words"

# The log entry an allowed action appends (adopt appends the new post's post.submitted first).
EVENT = {
    "edit": "post.edited", "approve": "post.approved", "reject": "post.rejected", "cancel": "post.cancelled",
    "adopt": "post.adopted", "dismiss": "post.dismissed", "delete": "post.deleted", "retry": "post.retried",
}

# Everyone who can see a post of the tier: a refused viewer gets 403, anyone else 404.
VIEWERS = {tier: EXPECTED_MAY[tier]["view"] for tier in TIERS}


@dataclass(frozen=True)
class Scenario:
    """The post an action is tried on: by whom, in which state, and who may then act on it."""

    author: str
    state: str
    allowed: frozenset[str]
    after: str  # the post's state after an allowed call


def _table(tier: str, action: str, state: str, after: str) -> Scenario:
    """The post EXPECTED_MAY speaks of: the tier's author's (a suggestion on managed)."""
    return Scenario(AUTHOR[tier], state, frozenset(EXPECTED_MAY[tier][action]), after)


def _common(tier: str) -> dict[str, Scenario]:
    """The actions whose post is the tier author's, on every tier that has one in that state."""
    return {
        "view": _table(tier, "view", "scheduled", "scheduled"),
        "edit": _table(tier, "edit", "held", "held"),
        "approve": _table(tier, "approve", "held", "scheduled"),  # the owner confirms
        "reject": _table(tier, "reject", "held", "rejected"),
        "cancel": _table(tier, "cancel", "scheduled", "cancelled"),
        "delete": _table(tier, "delete", "published", "deleted"),
        "retry": _table(tier, "retry", "failed", "scheduled"),
    }


SCENARIOS: dict[str, dict[str, Scenario]] = {
    "direct": _common("direct"),
    "delayed": {**_common("delayed"), "edit": _table("delayed", "edit", "scheduled", "scheduled")},
    "cosigned": {
        "view": _table("cosigned", "view", "held", "held"),
        # carol's post has two approvers and needs both: an approver who edited it would leave
        # too few (409 no_approvers_left). alice's post has three (bob, carol, dave), so each
        # approver may edit it and leave two others; alice edits as its author.
        "edit": Scenario("alice", "held", frozenset({"alice", "bob", "carol", "dave"}), "held"),
        "approve": _table("cosigned", "approve", "held", "held"),  # one of the two approvals
        "reject": _table("cosigned", "reject", "held", "rejected"),
        "cancel": _table("cosigned", "cancel", "held", "cancelled"),
        "delete": _table("cosigned", "delete", "published", "deleted"),
        "retry": _table("cosigned", "retry", "failed", "scheduled"),
    },
    "managed": {
        "view": _table("managed", "view", "suggested", "suggested"),
        "edit": _table("managed", "edit", "suggested", "suggested"),
        "cancel": _table("managed", "cancel", "suggested", "cancelled"),
        "adopt": _table("managed", "adopt", "suggested", "adopted"),
        "dismiss": _table("managed", "dismiss", "suggested", "dismissed"),
        # A suggestion is never held, published or failed: these act on bob's post instead.
        # The owner confirms a held post on an account with no approvers; the author (a writer)
        # and the owner delete and retry.
        "approve": Scenario("bob", "held", frozenset({"dave"}), "scheduled"),
        "reject": Scenario("bob", "held", frozenset({"dave"}), "rejected"),
        "delete": Scenario("bob", "published", frozenset({"bob", "dave"}), "deleted"),
        "retry": Scenario("bob", "failed", frozenset({"bob", "dave"}), "scheduled"),
    },
}

# Nobody may suggest on these tiers, so no post can ever be adopted or dismissed there.
UNREACHABLE = [(tier, action) for tier in ("direct", "delayed", "cosigned") for action in ("adopt", "dismiss")]

MATRIX = [(tier, action) for tier in TIERS for action in SCENARIOS[tier]]


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """The matrix's policy directory (overrides the shared one): see ``MATRIX_POLICIES``."""
    return make_policy_dir(tmp_path, MATRIX_POLICIES)


# -- putting a post where the action is possible -------------------------------------------


async def _refusing_platform_tick(gateway: Gateway) -> None:
    """Run the publisher once while the sandbox refuses every post, for good (not retryable)."""

    async def refuse(*, account: str, post: OutboundPost) -> SandboxRecord:
        raise AdapterError("the sandbox refuses this post", retryable=False, status=422)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway.app[SANDBOX], "create", refuse)
        await gateway.tick()


async def _post_in_state(gateway: Gateway, tier: str, scenario: Scenario) -> str:
    """A fresh post by the scenario's author, in the scenario's state."""
    author, state = scenario.author, scenario.state
    if state == "suggested":
        post = await gateway.submit(author, tier, IDEA_TEXT)
    else:
        post = await gateway.submit(author, tier, HELD_TEXT if state == "held" else PLAIN_TEXT)
    post_id = str(post["id"])
    if state in ("scheduled", "published", "failed") and post["state"] == "held":
        for approver in post["approvers"][: post["approvals_needed"]]:
            status, body = await gateway.act(approver, post_id, "approve")
            assert status == 200, body
    if state in ("published", "failed"):
        gateway.clock.advance(timedelta(minutes=15))  # past every tier's cooling-off delay
        if state == "failed":
            await _refusing_platform_tick(gateway)
        else:
            await gateway.tick()
    got = (await gateway.get(author, post_id))["state"]
    assert got == state, f"{tier}: could not put {author}'s post in {state}: it is {got}"
    return post_id


def _request(action: str, post_id: str, version: int) -> tuple[str, str, Any, dict[str, str]]:
    """The HTTP request for ``action``; approve and adopt name the version in their body, reject in
    If-Match."""
    path = f"/v1/posts/{post_id}"
    if action == "view":
        return "GET", path, None, {}
    if action == "edit":
        return "PATCH", path, {"text": NEW_TEXT}, {}
    if action == "delete":
        return "DELETE", path, None, {}
    if action == "approve":
        return "POST", f"{path}/approve", {"version": version}, {}
    if action == "reject":
        return "POST", f"{path}/reject", {"reason": "Not yet"}, {"If-Match": f'"{version}"'}
    if action == "adopt":
        return "POST", f"{path}/adopt", {"version": version}, {}
    return "POST", f"{path}/{action}", {}, {}


# -- what is stored, before and after ------------------------------------------------------

Row = dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """The gateway's snapshot, keyed: posts, versions, decisions and the sandbox timeline."""

    posts: dict[str, Row]
    versions: dict[tuple[str, int], Row]
    approvals: dict[tuple[str, int, str], Row]
    sandbox: dict[str, Row]
    log_size: int


async def _stored(gateway: Gateway) -> Stored:
    # The rest (the gate changes written down before the PDS) is not what these actions touch.
    posts, versions, approvals, sandbox, *_ = ([dict(r) for r in rows] for rows in await gateway.snapshot())
    return Stored(
        posts={r["id"]: r for r in posts},
        versions={(r["post_id"], int(r["version"])): r for r in versions},
        approvals={(r["post_id"], int(r["version"]), r["approver"]): r for r in approvals},
        sandbox={r["id"]: r for r in sandbox},
        log_size=await gateway.log_size(),
    )


async def _entries(gateway: Gateway, start: int, end: int) -> list[tuple[str, str, str | None]]:
    """The log entries ``start`` to ``end`` as the public log serves them: (type, actor, post)."""
    if start == end:
        return []
    status, body = await gateway.call(None, "GET", f"/log/entries?start={start}&end={end}")
    assert status == 200, body
    assert [e["index"] for e in body["entries"]] == list(range(start, end))
    decoded = [json.loads(base64.b64decode(e["leaf"])) for e in body["entries"]]
    return [(e["type"], e["actor"], e["post"]) for e in decoded]


def _changed(before: Row, after: Row) -> dict[str, tuple[Any, Any]]:
    return {k: (before[k], after[k]) for k in after if before.get(k) != after[k]}


def _added(before: dict[Any, Row], after: dict[Any, Row]) -> dict[Any, Row]:
    """Rows that are new; every row that was there must still be there, unchanged."""
    for key, row in before.items():
        assert after.get(key) == row, f"{key} changed or vanished: {row} -> {after.get(key)}"
    return {k: r for k, r in after.items() if k not in before}


def _check_outcome(
    gateway: Gateway, action: str, user: str, post_id: str, scenario: Scenario,
    before: Stored, after: Stored, entries: list[tuple[str, str, str | None]], answer: Any,
) -> None:
    """An allowed call changed exactly what ``action`` should, and nothing else."""
    old, new = before.posts[post_id], after.posts[post_id]
    version = int(old["version"])
    others = _added(
        {k: r for k, r in before.posts.items() if k != post_id}, {k: r for k, r in after.posts.items() if k != post_id}
    )
    changed = _changed(old, new)
    versions = {k: (r["editor"], r["text"]) for k, r in _added(before.versions, after.versions).items()}
    decisions = {k: r["decision"] for k, r in _added(before.approvals, after.approvals).items()}
    sandbox = {k: _changed(before.sandbox[k], r) for k, r in after.sandbox.items() if r != before.sandbox.get(k)}

    # What each action may change besides the post's state; what it must add and append.
    may_change = {"state", "updated_at"}
    want_versions: dict[tuple[str, int], tuple[str, str]] = {}
    want_decisions: dict[tuple[str, int, str], str] = {}
    want_sandbox: dict[str, set[str]] = {}
    want_others: set[str] = set()
    want_entries = [(EVENT[action], user, post_id)] if action in EVENT else []
    if action == "view":
        may_change = set()
    elif action == "edit":
        may_change |= {"version", "text", "editors", "reasons", "publish_at"}
        editors = json.loads(old["editors"])
        if user != old["author"] and user not in editors:
            editors.append(user)  # their words go out too
        got = (new["version"], new["text"], json.loads(new["editors"]))
        assert got == (version + 1, NEW_TEXT, editors), f"version, text, editors: {got}"
        want_versions[(post_id, version + 1)] = (user, NEW_TEXT)
    elif action in ("approve", "reject"):
        may_change |= {"publish_at", "expires_at"}
        want_decisions[(post_id, version, user)] = action
        if scenario.after != "held":
            assert new["expires_at"] is None, f"a decided post still expires: {new['expires_at']}"
        if scenario.after == "scheduled":
            assert new["publish_at"] is not None, "a released post has no time to go out"
    elif action == "retry":
        may_change |= {"publish_at", "attempts", "last_error"}
        got = (new["publish_at"], new["attempts"], new["last_error"])
        assert got == (to_micros(gateway.clock.now()), 0, None), f"publish_at, attempts, last_error: {got}"
    elif action == "delete":
        want_sandbox[old["remote_id"]] = {"deleted_at"}
        assert before.sandbox[old["remote_id"]]["deleted_at"] is None
    elif action == "adopt":
        may_change.add("adopted_into")
        new_id = new["adopted_into"]
        want_others = {new_id}
        assert answer["id"] == new_id, f"answered with {answer['id']}, adopted into {new_id}"
        adopted = others.get(new_id, {})
        fields = ("author", "suggested_by", "adopted_from", "text", "version", "state")
        got_adopted = tuple(adopted.get(k) for k in fields)
        want_adopted = (user, old["author"], post_id, old["text"], 1, "scheduled")
        assert got_adopted == want_adopted, f"the adopted post: {adopted}"
        want_versions[(new_id, 1)] = (user, old["text"])
        want_entries.insert(0, ("post.submitted", user, new_id))
    if action != "adopt":
        assert (answer["id"], answer["state"]) == (post_id, scenario.after), f"answered {answer}"

    assert new["state"] == scenario.after, f"the post is {new['state']}, not {scenario.after}"
    assert set(changed) <= may_change, f"changed {changed}; {action} may change only {sorted(may_change)}"
    assert set(others) == want_others, f"other posts appeared: {others}"
    assert versions == want_versions, f"versions added {versions}, expected {want_versions}"
    assert decisions == want_decisions, f"decisions added {decisions}, expected {want_decisions}"
    assert {k: set(c) for k, c in sandbox.items()} == want_sandbox, f"sandbox changed {sandbox}"
    assert entries == want_entries, f"the log appended {entries}, expected {want_entries}"


# -- the matrix ----------------------------------------------------------------------------


def test_every_tier_and_action_is_tried() -> None:
    """Each tier × action is in the matrix, or named as one no post can ever reach."""
    assert sorted(MATRIX + UNREACHABLE) == sorted((t, a) for t in TIERS for a in ACTIONS)
    assert not set(MATRIX) & set(UNREACHABLE)


def test_matrix_policies_give_the_same_roles() -> None:
    """The matrix's policies (the test policies with hold rules) make everyone who EXPECTED_ROLES says."""
    for tier, text in MATRIX_POLICIES.items():
        policy = parse_policy(textwrap.dedent(text), name=tier, expected_account=tier)
        assert tier == "cosigned" or any(rule.name == "breaking-news" for rule in policy.rules), tier
        for user in USERS:
            assert {r.value for r in roles(policy, user)} == EXPECTED_ROLES[tier][user], (tier, user)


def _brief(answer: Any) -> str:
    """An answer as a failure names it: the error, or the post's id and state."""
    if isinstance(answer, dict) and "error" in answer:
        return f"{answer['error']}: {answer.get('message')}"
    if isinstance(answer, dict) and "state" in answer:
        return f"post {answer.get('id')} now {answer['state']}"
    return repr(answer)[:200]


async def _try(gateway: Gateway, tier: str, action: str, user: str) -> None:
    """One cell of the matrix: ``user`` tries ``action`` on a fresh post where it is possible."""
    scenario = SCENARIOS[tier][action]
    post_id = await _post_in_state(gateway, tier, scenario)
    before = await _stored(gateway)
    method, path, body, headers = _request(action, post_id, int(before.posts[post_id]["version"]))
    status, answer = await gateway.call(user, method, path, body, headers=headers)
    after = await _stored(gateway)
    if user in scenario.allowed:
        assert status == (201 if action == "adopt" else 200), f"allowed, but answered {status} {_brief(answer)}"
        entries = await _entries(gateway, before.log_size, after.log_size)
        try:
            _check_outcome(gateway, action, user, post_id, scenario, before, after, entries, answer)
        except AssertionError as exc:
            raise AssertionError(f"allowed, answered {status}, but {exc}") from None
    else:
        want = (403, "forbidden") if user in VIEWERS[tier] else (404, "not_found")
        got = (status, answer.get("error") if isinstance(answer, dict) else answer)
        assert got == want, f"should be refused with {want}, but answered {status} {_brief(answer)}"
        assert after == before, "refused, but it changed what is stored"


@pytest.mark.parametrize("tier", TIERS)
async def test_matrix(gateway: Gateway, tier: str) -> None:
    """Each person may do exactly what the product rules say to a post where the action is possible:
    an allowed call changes what it should, a refused one is 403 (404 unseen) and changes nothing."""
    wrong = []
    for action, scenario in SCENARIOS[tier].items():
        for user in USERS:
            try:
                await _try(gateway, tier, action, user)
            except AssertionError as exc:  # every wrong cell is reported, not only the first
                first_line = str(exc).splitlines()[0] if str(exc) else repr(exc)
                wrong.append(f"{tier}: {action} by {user} on {scenario.author}'s {scenario.state} post: {first_line}")
    if wrong:
        pytest.fail(f"{len(wrong)} wrong in the {tier} matrix:\n" + "\n".join(wrong), pytrace=False)


async def test_nothing_to_adopt_without_suggesters(gateway: Gateway) -> None:
    """Where nobody may suggest, nobody can make a suggestion, so adopt and dismiss find none:
    409 to those who see the post, 404 to the rest, and nothing changes."""
    for tier in sorted({tier for tier, _ in UNREACHABLE}):
        for user in USERS:
            status, body = await gateway.call(user, "POST", "/v1/posts", {"account": tier, "text": IDEA_TEXT})
            assert status == 403 or (status == 201 and body["state"] != "suggested"), (tier, user, status, body)
    for tier, action in UNREACHABLE:
        post_id = str((await gateway.submit(AUTHOR[tier], tier, HELD_TEXT))["id"])
        for user in USERS:
            before = await _stored(gateway)
            status, answer = await gateway.call(user, "POST", f"/v1/posts/{post_id}/{action}", {})
            want = (409, "invalid_transition") if user in VIEWERS[tier] else (404, "not_found")
            assert (status, answer["error"]) == want, (tier, user, action, status, answer)
            assert await _stored(gateway) == before


async def test_stranger_cannot_submit_or_list(gateway: Gateway) -> None:
    """Someone with no role on an account can neither post to it nor list its posts."""
    for tier in TIERS:
        status, body = await gateway.call("erin", "POST", "/v1/posts", {"account": tier, "text": "hi"})
        assert status == 403, body
        status, body = await gateway.call("erin", "GET", f"/v1/posts?account={tier}")
        assert status == 403, body
    status, body = await gateway.call("bob", "POST", "/v1/posts", {"account": "cosigned", "text": "hi"})
    assert status == 403  # an approver is not a writer


async def test_a_token_bound_elsewhere_learns_no_account_of_a_post_it_may_not_see(gateway: Gateway) -> None:
    """bob's app token for delayed, asked for alice's post on direct (bob has no role there), is
    answered 404 as his own token is, not 403 naming direct; for a cosigned post he approves,
    it is still told that it acts for another account."""
    bound = await gateway.app[IDENTITY].create(user="bob", account="delayed")
    held = await gateway.submit("alice", "direct", "The scandal, written up")  # held by direct's rule
    cosigned = await gateway.submit("carol", "cosigned", "Launch on Monday")
    before = await gateway.snapshot()
    for method, path in (("GET", f"/v1/posts/{held['id']}"), ("GET", f"/v1/posts/{held['id']}/proof"),
                         ("PATCH", f"/v1/posts/{held['id']}"), ("POST", f"/v1/posts/{held['id']}/cancel")):
        json_body = {"text": "changed"} if method == "PATCH" else None
        unbound = await gateway.call("bob", method, path, json_body)
        answer = await gateway.call(None, method, path, json_body, headers={"Authorization": f"Bearer {bound}"})
        assert answer == unbound == (404, {"error": "not_found", "message": f"no post {held['id']}"}), path
    status, body = await gateway.call(None, "GET", f"/v1/posts/{cosigned['id']}",
                                      headers={"Authorization": f"Bearer {bound}"})
    assert (status, body["message"]) == (403, "this token acts for delayed, not cosigned")
    assert await gateway.snapshot() == before
