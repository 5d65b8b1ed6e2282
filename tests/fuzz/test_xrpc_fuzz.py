"""The XRPC surface under random calls, on both databases.

Calls are built from the AT Protocol lexicons: com.atproto.server.createSession
({identifier, password, authFactorToken?}), refreshSession, getSession and deleteSession (the
session's tokens in Authorization), com.atproto.repo.createRecord ({repo, collection, rkey?,
validate?, record, swapCommit?}) with app.bsky.feed.post records ({$type, text, createdAt,
langs?, reply?, embed?, facets?, tags?}), deleteRecord, putRecord, applyWrites ({repo, writes:
[#create | #update | #delete]}), uploadBlob (any bytes), describeServer, getProfile, the reads
Byline relays and methods it does not know; each with documented values or anything else,
real app passwords and session tokens or junk. One gateway serves each test function.

What must hold for every answer: never a 5xx, except 501 ``MethodNotImplemented``, which is a
PDS's own answer to a method it does not offer; a refusal is a JSON ``{"error", "message"}``
as a PDS gives it; and a refusal stores nothing (posts, versions, sandbox timeline, tokens
and sessions are as they were).

``BYLINE_TEST_FUZZ_XRPC_EXAMPLES`` sizes it (`make fuzz` runs more).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.appkeys import IDENTITY
from tests.conftest import BACKENDS, TEST_POLICIES, make_policy_dir
from tests.fuzz.bodies import JSON_VALUE, TEXT, WORDS, either, params
from tests.fuzz.live import Live, examples, live_gateway

STATEFUL = ("posts", "post_versions", "approvals", "sandbox_posts", "tokens")
POST = "app.bsky.feed.post"
APP_PASSWORDS = [("alice", "direct"), ("alice", "cosigned"), ("carol", "cosigned"), ("dave", "managed"),
                 ("bob", "delayed"), ("erin", None)]
OWN = ("com.atproto.server.describeServer", "com.atproto.server.createSession", "com.atproto.server.refreshSession",
       "com.atproto.server.getSession", "com.atproto.server.deleteSession", "com.atproto.repo.createRecord",
       "com.atproto.repo.deleteRecord", "com.atproto.repo.applyWrites", "app.bsky.actor.getProfile")
OTHERS = ("com.atproto.repo.putRecord", "com.atproto.repo.uploadBlob", "com.atproto.repo.getRecord",
          "com.atproto.repo.listRecords", "app.bsky.feed.getTimeline", "app.bsky.actor.getPreferences",
          "app.bsky.actor.putPreferences", "com.atproto.server.createAppPassword", "com.atproto.server.getServiceAuth",
          "chat.bsky.convo.listConvos", "com.atproto.admin.deleteAccount", "COM.ATPROTO.SERVER.CREATESESSION",
          "com.atproto.server.createsession", "a.b", "com.example.nothing.here", "..", "com..atproto.x")

QUERIES = ("com.atproto.server.describeServer", "com.atproto.server.getSession", "app.bsky.actor.getProfile",
           "com.atproto.repo.getRecord", "com.atproto.repo.listRecords", "app.bsky.feed.getTimeline",
           "app.bsky.actor.getPreferences", "chat.bsky.convo.listConvos", "com.atproto.server.getServiceAuth")

SETTINGS = settings(
    max_examples=examples("XRPC_EXAMPLES", 80), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

Request = tuple[str, str, str, bytes | None, dict[str, str]]
PARTIAL = re.compile(r"^write [0-9]+ of [0-9]+ was refused \([1-9][0-9]* before it stand\)")


SESSIONS = ("direct", "cosigned", "cosigned", "managed")
"""The accounts of the sessions logged in with the first app passwords."""


class World:
    """The gateway, app passwords, live sessions' tokens, and the posts made before fuzzing."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.passwords: list[str] = []
        self.jwts: list[str] = []
        self.repos: list[str] = []
        self.rkeys: list[str] = []
        self.dids: dict[str, str] = {}

    def log_in(self) -> None:
        """Sessions for the first app passwords (again: a fuzzed deleteSession ends them)."""
        self.jwts = []
        for password, account in zip(self.passwords, SESSIONS, strict=False):
            status, session = self.live.call(None, "POST", "/xrpc/com.atproto.server.createSession",
                                             {"identifier": account, "password": password})
            assert status == 200, session
            self.jwts += [session["accessJwt"], session["refreshJwt"]]
            if account not in self.dids:
                self.dids[account] = session["did"]
                self.repos += [session["did"], session["handle"]]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A gateway with the four tier accounts on the sandbox, and sessions on three of them."""
    # Failed logins are throttled per address (tested on their own): here they would soon lock
    # the fuzzer out of the sessions it needs.
    with live_gateway(request.param, tmp_path, make_policy_dir(tmp_path, TEST_POLICIES),
                      signin_attempts="1000000/minute") as live:
        world = World(live)
        for user, account in APP_PASSWORDS:
            world.passwords.append(live.run(live.gateway.app[IDENTITY].create(user=user, account=account)))
        world.log_in()
        for n, account in enumerate(SESSIONS):
            status, made = live.call(None, "POST", "/xrpc/com.atproto.repo.createRecord", {
                "repo": world.dids[account], "collection": POST,
                "record": {"$type": POST, "text": f"Seeded on {account}", "createdAt": "2026-01-01T12:00:00Z"},
            }, headers={"Authorization": f"Bearer {world.jwts[2 * n]}"})
            assert status == 200, made
            world.rkeys.append(made["uri"].rsplit("/", 1)[-1])
        yield world


DATETIME = st.sampled_from(("2026-01-01T12:00:00Z", "2026-01-01T12:00:00.000+00:00", "2026-01-01T12:00:00Z",
                           "yesterday", "", "2026-02-30T00:00:00Z", "2026-01-01T12:00:00"))
STRONG_REF = st.fixed_dictionaries({"uri": either(st.just("at://did:web:direct.byline.invalid/app.bsky.feed.post/x")),
                                    "cid": either(st.just("bafyreib2rxk3rh6kzwq"))})
FACET = st.fixed_dictionaries({
    "index": st.fixed_dictionaries({"byteStart": either(st.integers(0, 50)), "byteEnd": either(st.integers(0, 50))}),
    "features": either(st.lists(st.fixed_dictionaries({
        "$type": st.sampled_from(("app.bsky.richtext.facet#link", "app.bsky.richtext.facet#mention",
                                  "app.bsky.richtext.facet#tag")),
        "uri": TEXT, "did": TEXT, "tag": TEXT}), max_size=2)),
})
EMBED = st.fixed_dictionaries({"$type": st.sampled_from((
    "app.bsky.embed.images", "app.bsky.embed.external", "app.bsky.embed.record", "app.bsky.embed.recordWithMedia",
    "app.bsky.embed.video", "nonsense"))}, optional={
    "images": st.lists(st.fixed_dictionaries({"alt": TEXT, "image": JSON_VALUE}), max_size=5),
    "external": st.fixed_dictionaries({"uri": TEXT, "title": TEXT, "description": TEXT}),
    "record": STRONG_REF,
})


@st.composite
def record(draw: st.DrawFn) -> Any:
    """An app.bsky.feed.post record, mostly as the lexicon has it."""
    fields = {
        "$type": either(st.sampled_from((POST, "app.bsky.feed.like", "app.bsky.feed.Post"))),
        "text": either(WORDS), "createdAt": either(DATETIME),
        "langs": either(st.lists(st.sampled_from(("en", "de", "xx", "", "en-US")), max_size=4)),
        "reply": either(st.fixed_dictionaries({"root": STRONG_REF, "parent": STRONG_REF})),
        "embed": either(EMBED), "facets": either(st.lists(FACET, max_size=3)),
        "tags": either(st.lists(TEXT, max_size=9)), "labels": either(JSON_VALUE),
    }
    value = draw(st.fixed_dictionaries({"$type": fields.pop("$type"), "text": fields.pop("text"),
                                        "createdAt": fields.pop("createdAt")}, optional=fields))
    return value if draw(st.integers(0, 9)) != 5 else draw(JSON_VALUE)


@st.composite
def plausible_call(draw: st.DrawFn, world: World) -> Request:
    """A call as the SDK makes it, with real tokens and lexicon-shaped bodies whose texts and
    options vary: so that policies, rules, sessions and storage are fuzzed, not only parsing."""
    session = draw(st.integers(0, len(SESSIONS) - 1))
    own = world.dids[SESSIONS[session]]
    nsid = draw(st.sampled_from(("com.atproto.repo.createRecord",) * 4 + (
        "com.atproto.repo.deleteRecord", "com.atproto.repo.applyWrites", "com.atproto.server.getSession",
        "com.atproto.server.refreshSession", "com.atproto.server.deleteSession", "app.bsky.actor.getProfile",
        "com.atproto.repo.uploadBlob", "com.atproto.repo.putRecord", "app.bsky.feed.getTimeline")))
    post = st.builds(lambda text, extra: {"$type": POST, "text": text, "createdAt": "2026-01-01T12:00:00Z", **extra},
                     WORDS, st.fixed_dictionaries({}, optional={
                         "langs": st.lists(st.sampled_from(("en", "de", "pt-BR")), max_size=3),
                         "reply": st.fixed_dictionaries({"root": STRONG_REF, "parent": STRONG_REF}),
                         "facets": st.lists(FACET, max_size=2), "embed": EMBED}))
    rkey = st.one_of(st.sampled_from(world.rkeys), st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=13,
                                                           max_size=13))
    values: Any = {}
    if nsid.endswith(("createRecord", "putRecord")):
        values = {"repo": own, "collection": POST, "record": draw(post),
                  **draw(st.fixed_dictionaries({}, optional={"validate": st.booleans()}))}
    elif nsid.endswith("deleteRecord"):
        values = {"repo": own, "collection": POST, "rkey": draw(rkey)}
    elif nsid.endswith("applyWrites"):
        values = {"repo": own, "writes": draw(st.lists(st.one_of(
            st.builds(lambda v: {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": v}, post),
            st.builds(lambda k: {"$type": "com.atproto.repo.applyWrites#delete", "collection": POST, "rkey": k}, rkey),
        ), min_size=1, max_size=3))}
    refresh = nsid.endswith(("refreshSession", "deleteSession"))
    headers = {"Authorization": f"Bearer {world.jwts[2 * session + refresh]}"}
    if nsid in QUERIES:
        query = f"actor={draw(st.sampled_from(world.repos))}" if nsid.endswith("getProfile") else ""
        return "GET", f"/xrpc/{nsid}", query, None, headers
    if nsid.endswith("uploadBlob"):
        return "POST", f"/xrpc/{nsid}", "", draw(st.binary(max_size=200)), {**headers, "Content-Type": "image/png"}
    return "POST", f"/xrpc/{nsid}", "", json.dumps(values).encode(), {**headers, "Content-Type": "application/json"}


@st.composite
def hostile_call(draw: st.DrawFn, world: World) -> Request:
    """Any call: methods, names, bodies and tokens mostly as documented, but anything at all too."""
    nsid = draw(st.one_of(st.sampled_from(OWN), st.sampled_from(OTHERS), TEXT))
    usual = "GET" if nsid in QUERIES else "POST"
    method = usual if draw(st.integers(0, 4)) != 2 else draw(st.sampled_from(("GET", "POST", "PUT", "DELETE")))
    session = draw(st.integers(0, len(SESSIONS) - 1))
    own = world.dids[SESSIONS[session]]
    repo = either(st.one_of(st.just(own), st.sampled_from(world.repos)))
    collection = either(st.sampled_from((POST, "app.bsky.feed.like", "com.example.x", "")))
    rkey = either(st.one_of(st.sampled_from(world.rkeys), st.none(), TEXT))
    body_values: Any = {}
    query = ""
    if nsid.endswith("createSession"):
        body_values = draw(params({
            "identifier": either(st.sampled_from(("direct", "cosigned", "@direct", "DIRECT", "managed", *world.repos))),
            "password": either(st.sampled_from(world.passwords)), "authFactorToken": either(TEXT),
            "allowTakendown": either(st.booleans()),
        }, required=("identifier", "password")))
    elif nsid.endswith(("createRecord", "putRecord")):
        body_values = draw(params({"repo": repo, "collection": collection, "rkey": rkey,
                                   "validate": either(st.booleans()), "record": record(),
                                   "swapCommit": either(TEXT), "swapRecord": either(TEXT)},
                                  required=("repo", "collection", "record")))
    elif nsid.endswith("deleteRecord"):
        body_values = draw(params({"repo": repo, "collection": collection, "rkey": rkey,
                                   "swapRecord": either(TEXT), "swapCommit": either(TEXT)},
                                  required=("repo", "collection", "rkey")))
    elif nsid.endswith("applyWrites"):
        write = st.fixed_dictionaries({
            "$type": either(st.sampled_from(("com.atproto.repo.applyWrites#create",
                                             "com.atproto.repo.applyWrites#update",
                                             "com.atproto.repo.applyWrites#delete"))),
            "collection": collection}, optional={"rkey": rkey, "value": record()})
        body_values = draw(params({"repo": repo, "validate": either(st.booleans()),
                                   "writes": either(st.lists(write, max_size=4)), "swapCommit": either(TEXT)},
                                  required=("repo", "writes")))
    elif nsid.endswith("getProfile"):
        query = draw(st.sampled_from(("", "actor=direct", *(f"actor={r}" for r in world.repos), "actor=%00",
                                      "actor=%FF", "actor=")))
    elif method == "GET":
        query = draw(st.sampled_from(("", "limit=10", "limit=-1", "cursor=%FF", "uri=at://x", "repo=direct")))
    body: bytes | None = None
    headers: dict[str, str] = {}
    if method in ("POST", "PUT"):
        how = draw(st.sampled_from(("json", "json", "json", "bytes", "none")))
        if how == "json":
            body = json.dumps(body_values, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
            headers["Content-Type"] = draw(st.sampled_from(("application/json", "application/json",
                                                           "application/json; charset=utf-8", "text/plain", "")))
        elif how == "bytes":
            body = draw(st.binary(max_size=300))
            headers["Content-Type"] = draw(st.sampled_from(("image/png", "application/octet-stream",
                                                           "application/json", "*/*")))
    # Sessions are named by their place (access tokens at even places, refresh tokens at odd
    # ones): the tokens change when the fuzzing ends a session and it is logged in again.
    which = draw(st.integers(0, 9))
    if which < 6:
        headers["Authorization"] = "Bearer " + world.jwts[2 * session]
    elif which < 9:
        token = draw(st.one_of(st.integers(0, 2 * len(SESSIONS) - 1).map(lambda n: world.jwts[n]),
                               st.sampled_from(world.passwords), TEXT,
                               st.sampled_from(("", "junk", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a.b.c"))))
        auth = f"{draw(st.sampled_from(('Bearer', 'bearer', 'Basic', 'DPoP', '')))} {token}".strip()
        if auth.isprintable() and auth.isascii():
            headers["Authorization"] = auth
    if draw(st.integers(0, 7)) == 3:
        nsid += draw(TEXT)
    return method, f"/xrpc/{nsid}", query, body, headers


def xrpc_request(world: World) -> st.SearchStrategy[Request]:
    """Calls as clients make them, and calls as nobody should."""
    return st.one_of(plausible_call(world), hostile_call(world))


def _check(live: Live, before: tuple[Any, ...], request: Request, answer: tuple[int, str, bytes]) -> None:
    """What every answer must be: no 5xx but a PDS's 501, and its 500 for a record key taken; a
    refusal is a PDS's JSON error and stores nothing."""
    status, content_type, raw = answer
    shown = f"{request!r} -> {status} {content_type} {raw[:500]!r}"
    if status == 501:
        assert json.loads(raw)["error"] == "MethodNotImplemented", shown
    elif status == 500:
        # The one 500 a PDS gives on purpose: a create where a record is (its repository's tree
        # refuses the key), which Byline answers as a PDS does (tests/clients/test_atproto_threads.py).
        body = json.loads(raw)
        assert body["error"] == "InternalServerError", shown
        assert body["message"].startswith("Record already exists: at://"), shown
    else:
        assert status < 500, shown
    if status < 400:
        return
    assert content_type == "application/json", shown
    body = json.loads(raw)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), shown
    assert isinstance(body.get("message"), str), shown
    if PARTIAL.match(body["message"]):
        # applyWrites applies its writes one by one and says which stand when one is refused
        # (a PDS applies the batch as one transaction): only those may have changed anything.
        after = live.rows(*STATEFUL)
        assert after[STATEFUL.index("tokens")] == before[STATEFUL.index("tokens")], shown
        return
    assert live.rows(*STATEFUL) == before, f"a refusal changed what is stored: {shown}"


def test_xrpc_never_fails_inside_and_refusals_store_nothing(world: World) -> None:
    """Random sessions, records, writes, uploads, reads and unknown methods: no 5xx (but 501 for what
    no PDS here offers), PDS-shaped JSON refusals, nothing stored on refusal."""
    live = world.live

    @SETTINGS
    @given(request=xrpc_request(world))
    def run(request: Request) -> None:
        method, path, query, body, headers = request
        before = live.rows(*STATEFUL)
        target = f"{path}?{query}" if query else path
        answer = live.raw(method, target, body=body, headers=headers)
        _check(live, before, request, answer)
        if path.endswith(("deleteSession", "refreshSession")) and answer[0] == 200:
            world.log_in()

    run()
