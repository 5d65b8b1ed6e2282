"""What the fuzzers found, kept as plain tests so it stays fixed, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.appkeys import DB, IDENTITY
from gateway.policy.loader import PolicyFileError, parse_policy
from gateway.storage import media as media_sql
from tests.conftest import Gateway, write_policy


@pytest.mark.parametrize("path", [
    "/log/tile/%C2%B9",                       # "¹": str.isdigit takes it, int() does not
    "/log/tile/0/%C2%B9",
    "/log/tile/0/000.p/%C2%B9",
    "/log/tile/entries/000.p/%D9%A3",         # Arabic-Indic three
    "/log/tile/entries/" + "x999/" * 8 + "999",   # an index no database integer holds
    "/log/tile/0/" + "x999/" * 8 + "999.p/5",
])
async def test_tile_paths_that_are_not_tiles_are_404(gateway: Gateway, path: str) -> None:
    """A tile path with non-ASCII digits, or an index past any log, is 404 "no such tile", not a 500."""
    status, body = await gateway.call(None, "GET", path)
    assert (status, body["error"]) == (404, "not_found"), body


@pytest.mark.parametrize("query", ["start=%C2%B9&end=2", "start=0&end=%D9%A3", "index=%C2%B2&size=3"])
async def test_log_numbers_must_be_ascii_digits(gateway: Gateway, query: str) -> None:
    """A log query number written in other digits is a 422 naming the parameter, not a 500."""
    path = "/log/proof/inclusion" if query.startswith("index") else "/log/entries"
    status, body = await gateway.call(None, "GET", f"{path}?{query}")
    assert status == 422, body
    assert body["error"] == "validation_failed" and body["field"] in ("start", "end", "index")


async def test_a_media_url_with_a_non_ascii_digest_is_404(gateway: Gateway) -> None:
    """/media/{id}/{digest} of an upload, with letters hmac.compare_digest cannot compare, is
    "Record not found", not a 500."""
    async with gateway.app[DB].write() as txn:
        await media_sql.insert(txn, media_id="1883675403615258101", account="direct", user="alice",
                               mime_type="image/png", description=None, data=b"png", digest="ab" * 32, at=0)
    status, _ = await gateway.call(None, "GET", "/media/1883675403615258101/" + "ab" * 32)
    assert status == 200  # the upload is there
    status, body = await gateway.call(None, "GET", "/media/1883675403615258101/%D8%A7")
    assert (status, body) == (404, {"error": "Record not found"})


# Found by the fuzzers in the Mastodon surface.
_BAD_PART = (b'--b\r\nContent-Disposition: form-data; name="status\x0c"\r\n\r\nHello\r\n'
             b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\nContent-Type: image/png\r\n\r\n'
             b'\x89PNG\r\n--b--\r\n')


@pytest.mark.parametrize("path", ["/api/v1/statuses", "/api/v2/media", "/api/v1/apps", "/oauth/token",
                                  "/oauth/revoke"])
@pytest.mark.parametrize("data", [_BAD_PART, b"--b\r\nC"], ids=["control character", "cut short"])
async def test_a_multipart_part_header_that_cannot_be_read_is_refused(gateway: Gateway, path: str,
                                                                     data: bytes) -> None:
    """A multipart part whose header holds a control character, or is cut short (aiohttp's
    InvalidHeader, which is no ValueError), is a 400 with a JSON error, not a 500."""
    token = await gateway.app[IDENTITY].create(user="alice", account="direct")
    status, body = await gateway.call(None, "POST", path, data=data, headers={
        "Content-Type": "multipart/form-data; boundary=b", "Authorization": f"Bearer {token}"})
    assert 400 <= status < 500 and isinstance(body["error"], str), (status, body)


@pytest.mark.parametrize("name", ["since_id", "min_id"])
async def test_scheduled_statuses_ids_in_other_digits_are_refused(gateway: Gateway, name: str) -> None:
    """GET /api/v1/scheduled_statuses?since_id=¹ (str.isdigit takes it, int() does not) is a 422, not a 500."""
    token = await gateway.app[IDENTITY].create(user="alice", account="direct")
    status, _ = await gateway.call(None, "POST", "/api/v1/statuses", {"status": "Not out yet"},
                                   headers={"Authorization": f"Bearer {token}"})
    assert status == 200  # one post waits (the publisher is driven by hand), so the ids are compared
    status, body = await gateway.call(None, "GET", f"/api/v1/scheduled_statuses?{name}=%C2%B9",
                                      headers={"Authorization": f"Bearer {token}"})
    assert 400 <= status < 500 and isinstance(body["error"], str), (status, body)


_DELAYED = "account: delayed\nplatform: sandbox\ntier: delayed\nowner: bob\n"


@pytest.mark.parametrize(("text", "problem"), [
    ('account: x\nowner: "\\U7fffffff"\n', "not valid YAML: chr() arg not in range(0x110000)"),
    ("[" * 20000, "not valid YAML: maximum recursion depth exceeded"),
    (_DELAYED + "delay: 99999999999999d\n", "delay: a duration of at most 36500d"),
    (_DELAYED + "delay: 36501d\n", "delay: a duration of at most 36500d"),
    (_DELAYED + "delay: 1m\nrate_limit: {count: 1, seconds: 100000000000000000000}\n",
     "rate_limit.seconds: Input should be less than or equal to 31622400"),
])
def test_policy_files_that_crashed_the_loader_or_every_post_are_refused(text: str, problem: str) -> None:
    """A \\U escape past Unicode, nesting deeper than Python recurses, a duration past the calendar and a
    rate window no stored integer holds are refused with the file's issue, not raised as a crash
    (the first two crashed the reload; the last two were accepted, then failed every post or publish)."""
    name = "delayed.yaml" if text.startswith("account: delayed") else "x.yaml"
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(text, name=name, expected_account=None)
    said = [f"{i.key}: {i.message}" if i.key else i.message for i in refused.value.issues]
    assert any(line.startswith(problem) for line in said), said


async def test_the_longest_delay_a_policy_may_set_still_decides_posts(gateway: Gateway, policy_dir: Path) -> None:
    """At 36500d, the longest delay and expiry allowed, posts are decided and stored (at 999999999d each
    one was a 500)."""
    write_policy(policy_dir, "delayed", _DELAYED + "delay: 36500d\n")
    write_policy(policy_dir, "cosigned", """
        account: cosigned
        platform: sandbox
        tier: co-signed
        owner: alice
        approvals:
          required: 1
          from: [bob]
          expire_after: 36500d
    """)
    assert sorted(await gateway.sync_policies()) == ["cosigned", "delayed"]
    delayed = await gateway.submit("bob", "delayed", "A century from now")
    held = await gateway.submit("alice", "cosigned", "Held for a century")
    assert (delayed["publish_at"], held["expires_at"]) == ("2125-12-08T12:00:00.000000Z", "2125-12-08T12:00:00.000000Z")


@pytest.mark.parametrize("scopes", [[None], ["read", 7], [["read"]], [{"read": True}]])
async def test_app_registration_with_scopes_that_are_no_names_is_refused(
    gateway: Gateway, scopes: list[object],
) -> None:
    """``POST /api/v1/apps`` whose JSON ``scopes`` list holds anything but names (Hypothesis: a
    null made a 500) is refused as Mastodon words it, and no app is made."""
    before = await gateway.snapshot()
    status, body = await gateway.call(None, "POST", "/api/v1/apps", {
        "client_name": "x", "redirect_uris": "https://app.example/callback", "scopes": scopes})
    assert (status, body) == (422, {"error": "Validation failed: Scopes doesn't match configured on the server."})
    assert await gateway.snapshot() == before


# Found by the XRPC fuzzer: a write whose ``$type`` or ``collection`` is a list or an object.
@pytest.mark.parametrize(("write", "problem"), [
    ({"$type": "com.atproto.repo.applyWrites#create", "collection": []}, "writes/0/collection must be a string"),
    ({"$type": "com.atproto.repo.applyWrites#delete", "collection": {"a": 1}, "rkey": "3kd3tkxax6ckm"},
     "writes/0/collection must be a string"),
    ({"$type": ["com.atproto.repo.applyWrites#create"], "collection": "app.bsky.feed.post"},
     'writes/0 must be an object which includes the "$type" property'),
])
async def test_apply_writes_with_a_type_or_collection_that_is_no_text_is_refused(
    gateway: Gateway, write: dict[str, object], problem: str
) -> None:
    """``applyWrites`` with a write's ``$type`` or ``collection`` not a string is 400
    ``InvalidRequest`` naming it, as a PDS's lexicon check answers, not a 500; nothing stored."""
    password = await gateway.app[IDENTITY].create(user="alice", account="direct")
    status, session = await gateway.call(None, "POST", "/xrpc/com.atproto.server.createSession",
                                         json={"identifier": "direct", "password": password})
    assert status == 200, session
    before = await gateway.snapshot()
    status, body = await gateway.call(None, "POST", "/xrpc/com.atproto.repo.applyWrites",
                                      json={"repo": session["did"], "writes": [write]},
                                      headers={"Authorization": f"Bearer {session['accessJwt']}"})
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert problem in body["message"], body
    assert await gateway.snapshot() == before
