"""``byline audit verify --url`` checks the hash tiles (c2sp.org/tlog-tiles) a log publishes
against the entries it serves: the log's proofs are made of the same stored hashes, so entries
that give the signed root do not vouch for them. A stand-in log serves a hand-made log with its
tiles, honest or not."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.audit import merkle
from gateway.audit.note import Checkpoint, sign_note
from gateway.audit.verify import Report, UrlSource, verify
from tests.audit.synthetic import SyntheticLog, messages, summary

Tamper = Callable[[str, bytes], bytes | None]
"""Given a tile's path (``0/001.p/44``) and its honest bytes: what the stand-in serves (None: 404)."""


def _log(posts: int) -> SyntheticLog:
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["alice"]), "s1")
    for n in range(posts):
        log.submit(str(n + 1), author="alice", account="solo", sha="s1")
    return log


def _tile(leaves: list[bytes], path: str) -> bytes | None:
    """A hash tile computed afresh from the leaves (RFC 9162 roots of each span), or None."""
    level_text, *parts = path.split("/")
    width = 256
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        width, parts = int(parts[-1]), [*parts[:-2], parts[-2][:-2]]
    level, index = int(level_text), int("".join(p.lstrip("x") for p in parts))
    span = 1 << (8 * level)
    first = index * 256
    if (first + width) * span > len(leaves):
        return None
    return b"".join(merkle.root_from_leaves(leaves[i * span : (i + 1) * span]) for i in range(first, first + width))


@asynccontextmanager
async def stand_in(log: SyntheticLog, tamper: Tamper = lambda path, data: data) -> AsyncIterator[str]:
    """A log's public read API, serving ``log`` signed whole and its tiles as ``tamper`` has them."""
    leaves = [merkle.leaf_hash(e) for e in log.entries]
    note = sign_note(Checkpoint(log.signer.name, len(leaves), merkle.root_from_leaves(leaves)).to_text(), log.signer)
    texts = [{"hash": digest, "salt": salt.hex(), "text": text} for digest, (salt, text) in log.texts.items()]

    async def checkpoint(request: web.Request) -> web.Response:
        return web.Response(body=note, content_type="text/plain")

    async def entries(request: web.Request) -> web.Response:
        start, end = int(request.query["start"]), int(request.query["end"])
        return web.json_response({"entries": [
            {"index": i, "leaf": base64.b64encode(log.entries[i]).decode()} for i in range(start, min(end, len(leaves)))
        ]})

    async def all_texts(request: web.Request) -> web.Response:
        return web.json_response({"texts": texts})

    async def tile(request: web.Request) -> web.Response:
        path = request.match_info["path"]
        honest = _tile(leaves, path)
        served = None if honest is None else tamper(path, honest)
        if served is None:
            raise web.HTTPNotFound()
        return web.Response(body=served, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/log/checkpoint", checkpoint)
    app.router.add_get("/log/entries", entries)
    app.router.add_get("/log/texts", all_texts)
    app.router.add_get("/log/tile/{path:.+}", tile)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def _verify(log: SyntheticLog, url: str) -> Report:
    return await asyncio.to_thread(verify, UrlSource(url), log.signer.verifier(), workers=1)


def _flip(byte: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:byte] + bytes([data[byte] ^ 1]) + data[byte + 1 :]


async def test_a_log_whose_tiles_agree_with_its_entries_verifies() -> None:
    """300 entries: tiles 0/000, 0/001.p/44 and 1/000.p/1, each compared, and all agree."""
    log = _log(299)
    async with stand_in(log) as url:
        report = await _verify(log, url)
    assert (report.ok, report.size, report.tiles_checked) == (True, 300, 3), report.summary()
    assert "; 3 published tiles checked" in report.summary()


async def test_a_leaf_hash_tile_that_disagrees_with_the_entries_names_the_entry() -> None:
    """A level-0 tile holding another hash for entry 260 than its bytes give: entry 260 is named
    (before, `verify --url` read no tile once the entries gave the signed root, and said ok)."""
    log = _log(299)
    flip = _flip((260 - 256) * 32 + 5)
    async with stand_in(log, lambda path, data: flip(data) if path == "0/001.p/44" else data) as url:
        report = await _verify(log, url)
    assert messages(report) == [
        "entry 260: the log's tile tile/0/001.p/44 holds another leaf hash for this entry than its bytes give: "
        "the log's proofs of it do not hold"
    ]
    assert report.summary().startswith("FAILED: first bad entry: entry 260:")


async def test_a_higher_tile_that_disagrees_with_the_entries_is_named() -> None:
    """A level-1 tile whose hash of entries 0–255 is not theirs: every proof through it fails."""
    log = _log(299)
    async with stand_in(log, lambda path, data: _flip(0)(data) if path.startswith("1/") else data) as url:
        report = await _verify(log, url)
    assert messages(report) == [
        "the log's tile tile/1/000.p/1: hash 0 is not that of entries 0–255: the log's proofs through it "
        "do not lead to its signed root"
    ]


async def test_a_tile_not_served_or_cut_short_is_named() -> None:
    """A tile of the signed tree that the log does not serve, or serves cut short, fails too."""
    log = _log(299)

    def tamper(path: str, data: bytes) -> bytes | None:
        return None if path == "0/000" else data[:-32] if path.startswith("1/") else data

    async with stand_in(log, tamper) as url:
        report = await _verify(log, url)
    assert [m.split(": GET ")[0] for m in messages(report)] == [
        "the log publishes no tile tile/0/000 for its signed tree",
        "the log's tile tile/1/000.p/1 holds 0 bytes where its width says 32",
    ]
    assert messages(report)[0].endswith("/log/tile/0/000: HTTP 404")
