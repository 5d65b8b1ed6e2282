"""The public log API and per-post proofs, over a real server, on both databases."""

from __future__ import annotations

import base64
import json

from gateway.appkeys import APPENDER, CHECKPOINTS
from gateway.audit import merkle
from gateway.audit.appender import LogTxn
from gateway.audit.entry import text_commitment
from gateway.audit.note import Verifier, open_checkpoint, verify_tlog_proof
from tests.audit.logtools import populate
from tests.conftest import Gateway


async def _text(gw: Gateway, path: str) -> tuple[int, str]:
    resp = await gw.client.get(path)
    return resp.status, await resp.text()


async def _key(gw: Gateway) -> Verifier:
    status, text = await _text(gw, "/log/key")
    assert status == 200
    return Verifier.from_text(text)


async def _checkpoint(gw: Gateway) -> tuple[int, bytes]:
    resp = await gw.client.get("/log/checkpoint")
    assert resp.status == 200
    note = await resp.read()
    checkpoint, names = open_checkpoint(note, [await _key(gw)], origin="byline.local/log")
    assert names == ["byline.local/log"]
    return checkpoint.size, checkpoint.root_hash


async def _bulk(gw: Gateway, count: int) -> None:
    async def work(ltx: LogTxn) -> None:
        for n in range(count):
            await ltx.append("test.filler", actor="system", account=None, data={"n": n})

    await gw.app[APPENDER].submit(work)


async def test_key_and_checkpoint_verify(gateway: Gateway) -> None:
    """/log/key is the verifier key; /log/checkpoint is signed by it and covers the whole tree."""
    status, text = await _text(gateway, "/log/key")
    assert status == 200
    assert text == gateway.app[CHECKPOINTS].verifier_key()
    assert text.startswith("byline.local/log+") and "PRIVATE" not in text
    await gateway.submit("alice", "direct", "Hello")
    await gateway.app[CHECKPOINTS].sign_now()
    size, root = await _checkpoint(gateway)
    assert size == await gateway.log_size()
    status, body = await gateway.call(None, "GET", f"/log/entries?start=0&end={size}")
    leaves = [merkle.leaf_hash(base64.b64decode(e["leaf"])) for e in body["entries"]]
    assert merkle.root_from_leaves(leaves) == root


async def test_signer_signs_only_when_the_tree_grew(gateway: Gateway) -> None:
    """Signing twice without new entries gives the same note and stores one checkpoint."""
    first = await gateway.app[CHECKPOINTS].sign_now()
    again = await gateway.app[CHECKPOINTS].sign_now()
    assert again == first
    await gateway.submit("alice", "direct", "Hello")
    grown = await gateway.app[CHECKPOINTS].sign_now()
    assert grown != first
    sizes = [int(n.split(b"\n")[1]) for n in (first, grown)]
    assert sizes[1] > sizes[0]


async def test_entries_pages_are_exact_and_capped(gateway: Gateway) -> None:
    """Entries come back in order, end exclusive, at most 1000 a page, bytes exactly as stored."""
    await _bulk(gateway, 1200)
    size = await gateway.log_size()
    status, body = await gateway.call(None, "GET", f"/log/entries?start=5&end={size + 50}")
    assert status == 200
    assert list(body) == ["entries"]
    assert [e["index"] for e in body["entries"]] == list(range(5, 1005))
    assert all(set(e) == {"index", "leaf"} for e in body["entries"])
    status, body = await gateway.call(None, "GET", "/log/entries?start=10&end=12")
    raw = base64.b64decode(body["entries"][0]["leaf"])
    assert json.loads(raw)["v"] == 1
    assert [e["index"] for e in body["entries"]] == [10, 11]
    status, body = await gateway.call(None, "GET", f"/log/entries?start={size}&end={size + 10}")
    assert status == 200 and body == {"entries": []}


async def test_bad_query_parameters_are_422(gateway: Gateway) -> None:
    """Missing, negative, non-numeric or inverted ranges are refused with a named field."""
    for path in (
        "/log/entries?start=0",
        "/log/entries?start=-1&end=3",
        "/log/entries?start=x&end=3",
        "/log/entries?start=5&end=5",
        "/log/proof/inclusion?index=3&size=3",
        "/log/proof/inclusion?index=0&size=999999",
        "/log/proof/consistency?old=0&new=1",
        "/log/proof/consistency?old=3&new=2",
    ):
        status, body = await gateway.call(None, "GET", path)
        assert status == 422, (path, body)
        assert body["error"] == "validation_failed"


async def test_inclusion_and_consistency_proofs_verify(gateway: Gateway) -> None:
    """Every entry's inclusion proof and the proof between two checkpoints verify."""
    old_size, old_root = await _checkpoint(gateway)
    await populate(gateway)
    size, root = await _checkpoint(gateway)
    assert size > old_size
    status, body = await gateway.call(None, "GET", f"/log/entries?start=0&end={size}")
    assert status == 200 and [e["index"] for e in body["entries"]] == list(range(size)), (status, body)
    for record in body["entries"]:
        index = record["index"]
        status, proof = await gateway.call(None, "GET", f"/log/proof/inclusion?index={index}&size={size}")
        assert status == 200 and proof["index"] == index and proof["size"] == size
        hashes = [base64.b64decode(h) for h in proof["proof"]]
        merkle.verify_inclusion(merkle.leaf_hash(base64.b64decode(record["leaf"])), index, size, hashes, root)
    status, body = await gateway.call(None, "GET", f"/log/proof/consistency?old={old_size}&new={size}")
    assert status == 200 and (body["old"], body["new"]) == (old_size, size)
    merkle.verify_consistency(old_size, size, old_root, root, [base64.b64decode(h) for h in body["proof"]])


async def test_texts_match_their_commitments(gateway: Gateway) -> None:
    """/log/texts gives each committed text with its salt; it hashes to what the entry says."""
    post = await gateway.submit("alice", "direct", "Hello salted world")
    await gateway.tick()
    size = await gateway.log_size()
    status, body = await gateway.call(None, "GET", f"/log/texts?start=0&end={size}")
    assert status == 200
    texts = {t["hash"]: t for t in body["texts"]}
    status, entries = await gateway.call(None, "GET", f"/log/entries?start=0&end={size}")
    submitted = [json.loads(base64.b64decode(e["leaf"])) for e in entries["entries"]]
    submitted = [e for e in submitted if e["type"] == "post.submitted" and e["post"] == post["id"]]
    digest = submitted[0]["data"]["text_hash"]
    assert texts[digest]["text"] == "Hello salted world"
    assert text_commitment("Hello salted world", bytes.fromhex(texts[digest]["salt"])) == digest


async def test_unpublished_words_are_withheld_from_the_public(gateway: Gateway) -> None:
    """A draft waiting for approval is withheld publicly, shown to the account's people, and
    public once it goes out; a refused attempt stays withheld."""
    held = await gateway.submit("carol", "cosigned", "Unannounced launch details")
    status, _ = await gateway.call("alice", "POST", "/v1/posts", {"account": "direct", "text": "example-slur"})
    assert status == 422

    async def texts(user: str | None) -> list[dict[str, object]]:
        status, body = await gateway.call(user, "GET", f"/log/texts?start=0&end={await gateway.log_size()}")
        assert status == 200, body
        return list(body["texts"])

    public = await texts(None)
    assert {t["text"] for t in public} == {None}
    assert all(t["withheld"] is True for t in public)
    members = {t["text"] for t in await texts("bob")}  # bob approves on cosigned
    assert "Unannounced launch details" in members and "example-slur" not in members
    assert "example-slur" in {t["text"] for t in await texts("alice")}  # alice owns direct
    assert {t["text"] for t in await texts("erin")} == {None}  # a token alone is not enough
    for approver in ("bob", "dave"):
        assert (await gateway.act(approver, held["id"], "approve"))[0] == 200
    gateway.clock.advance(__import__("datetime").timedelta(minutes=2))
    await gateway.tick()
    shown = {t["text"] for t in await texts(None)}
    assert "Unannounced launch details\n\n—carol" in shown and "Unannounced launch details" in shown
    assert "example-slur" not in shown


async def test_post_proofs_bundle_each_event(gateway: Gateway) -> None:
    """/v1/posts/{id}/proof gives a tlog-proof per event that verifies against the log key."""
    post = await gateway.submit("alice", "direct", "Provable")
    await gateway.tick()
    key = await _key(gateway)
    status, body = await gateway.call("alice", "GET", f"/v1/posts/{post['id']}/proof")
    assert status == 200, body
    assert body["post"] == post["id"]
    assert [e["type"] for e in body["events"]] == ["post.submitted", "post.publishing", "post.published"]
    for event in body["events"]:
        leaf = merkle.leaf_hash(base64.b64decode(event["leaf"]))
        parsed = verify_tlog_proof(event["proof"].encode(), leaf, key)
        assert parsed.index == event["index"]
        assert event["problem"] is None
    assert body["checkpoint"].startswith("byline.local/log\n")


async def test_post_proofs_need_a_token_and_a_role(gateway: Gateway) -> None:
    """Per-post proofs follow the post's visibility: 401 without a token, 404 for outsiders."""
    post = await gateway.submit("alice", "direct", "Private until out")
    status, body = await gateway.call(None, "GET", f"/v1/posts/{post['id']}/proof")
    assert status == 401, body
    status, body = await gateway.call("erin", "GET", f"/v1/posts/{post['id']}/proof")
    assert status == 404, body
    status, body = await gateway.call("alice", "GET", "/v1/posts/123/proof")
    assert status == 404


async def test_tiles_hold_the_stored_hashes_and_entries(gateway: Gateway) -> None:
    """tlog-tiles: level-0 and level-1 tiles are the stored node hashes; entry bundles the bytes."""
    await _bulk(gateway, 70_000 - await gateway.log_size())
    size = await gateway.log_size()
    assert size == 70_000
    _, body = await gateway.call(None, "GET", "/log/entries?start=256&end=512")
    leaves = [merkle.leaf_hash(base64.b64decode(e["leaf"])) for e in body["entries"]]
    resp = await gateway.client.get("/log/tile/0/001")
    assert resp.status == 200 and "immutable" in resp.headers["Cache-Control"]
    assert await resp.read() == b"".join(leaves)
    resp = await gateway.client.get("/log/tile/entries/001")
    bundle = await resp.read()
    parsed: list[bytes] = []
    while bundle:
        length = int.from_bytes(bundle[:2], "big")
        parsed.append(bundle[2 : 2 + length])
        bundle = bundle[2 + length :]
    assert [merkle.leaf_hash(p) for p in parsed] == leaves
    resp = await gateway.client.get("/log/tile/1/000")
    level8 = await resp.read()
    assert level8[32:64] == merkle.root_from_leaves(leaves)
    # 70,000 = 273 full tiles of 256 and a partial one of 112 entries.
    resp = await gateway.client.get("/log/tile/0/273.p/112")
    assert resp.status == 200 and len(await resp.read()) == 112 * 32
    resp = await gateway.client.get("/log/tile/1/001.p/17")
    assert resp.status == 200 and len(await resp.read()) == 17 * 32
    for path in ("/log/tile/0/274", "/log/tile/0/273.p/113", "/log/tile/0/1", "/log/tile/0/x000/001",
                 "/log/tile/0/273.p/0", "/log/tile/64/000", "/log/tile/entries/274"):
        resp = await gateway.client.get(path)
        assert resp.status == 404, path


async def test_readyz_is_ready_with_a_signed_log(gateway: Gateway) -> None:
    """A fresh gateway signs its log at start and says it is ready."""
    status, body = await gateway.call(None, "GET", "/readyz")
    assert status == 200, body
    assert "log" not in body["problems"]


async def test_reasons_for_ending_a_post_stay_off_the_public_log(gateway: Gateway) -> None:
    """A rejection's or a dismissal's reason, which may quote the words that never went out, is
    not in the public entries nor on the audit page; the account's people still read it."""
    held = await gateway.submit("carol", "cosigned", "Acme merger closes Friday")
    said = "Not before the board: drop 'Acme merger closes Friday'"
    assert (await gateway.act("bob", held["id"], "reject", {"reason": said}))[0] == 200
    suggestion = await gateway.submit("dave", "managed", "Layoffs in Ohio next week")
    assert (await gateway.act("carol", suggestion["id"], "dismiss", {"reason": "Layoffs in Ohio: never"}))[0] == 200
    size = await gateway.log_size()
    status, body = await gateway.call(None, "GET", f"/log/entries?start=0&end={size}")
    assert status == 200
    public = b"".join(base64.b64decode(e["leaf"]) for e in body["entries"])
    for page in (f"/audit?kind=post&q={held['id']}", f"/audit?kind=post&q={suggestion['id']}",
                 "/audit?kind=person&q=bob", "/audit?kind=person&q=carol"):
        status, text = await _text(gateway, page)
        assert status == 200
        public += text.encode()
    assert b"Acme" not in public and b"Ohio" not in public
    rejected = await gateway.get("carol", held["id"])
    assert [e["data"].get("reason") for e in rejected["events"] if e["type"] == "post.rejected"] == [said]
    dismissed = await gateway.get("dave", suggestion["id"])
    assert [e["data"].get("reason") for e in dismissed["events"]
            if e["type"] == "post.dismissed"] == ["Layoffs in Ohio: never"]
