"""Large answers relayed to clients: a blob from the account's PDS passes through Byline as it
arrives, in bounded chunks, and is never held whole."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import IDENTITY
from gateway.clock import ManualClock
from tests.conftest import Gateway, started_gateway, write_policy

BLOB_CID = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
DID = "did:plc:fakepds"


class _BlobPds:
    """A PDS that holds one large blob, sends half of it and waits to be told to send the rest;
    its first session token has expired, as a real one does after two hours."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.release = asyncio.Event()
        self.tokens: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/xrpc/{nsid}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        nsid = request.match_info["nsid"]
        if nsid == "com.atproto.server.createSession":
            return web.json_response({"did": DID, "handle": "fake.test", "accessJwt": "stale", "refreshJwt": "r"})
        if nsid == "com.atproto.server.refreshSession":
            return web.json_response({"did": DID, "handle": "fake.test", "accessJwt": "fresh", "refreshJwt": "r2"})
        if nsid == "com.atproto.server.getSession":
            return web.json_response({"did": DID, "handle": "fake.test"})
        assert nsid == "com.atproto.sync.getBlob", nsid
        self.tokens.append(request.headers["Authorization"])
        if request.headers["Authorization"] != "Bearer fresh":
            return web.json_response({"error": "ExpiredToken", "message": "Token has expired"}, status=400)
        if request.query.get("cid") != BLOB_CID:
            return web.json_response({"error": "BlobNotFound", "message": "Blob not found"}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        half = len(self.blob) // 2
        for start in range(0, len(self.blob), 65536):
            if start >= half and not self.release.is_set():
                await asyncio.wait_for(self.release.wait(), 20)
            await response.write(self.blob[start:start + 65536])
        await response.write_eof()
        return response


async def _session(gw: Gateway, user: str, account: str) -> str:
    password = await gw.app[IDENTITY].create(user=user, account=account)
    resp = await gw.client.post("/xrpc/com.atproto.server.createSession",
                                json={"identifier": "fake.test", "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    return str(body["accessJwt"])


@pytest.fixture
async def blob_pds(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Gateway, _BlobPds]]:
    """A gateway whose ``blobs`` account is on a PDS holding an 8 MiB blob."""
    pds = _BlobPds(os.urandom(8 * 1024 * 1024))
    server = TestServer(pds.app())
    await server.start_server()
    monkeypatch.setenv("BLOB_PDS_PASSWORD", "abcd-efgh-ijkl-mnop")
    write_policy(policy_dir, "blobs", f"""
        account: blobs
        platform: bluesky
        handle: fake.test
        pds: {str(server.make_url('')).rstrip('/')}
        credentials: env:BLOB_PDS_PASSWORD
        tier: co-signed
        owner: alice
        approvals:
          required: 1
          from: [bob]
    """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            yield gw, pds
    finally:
        await server.close()


async def test_a_blob_is_streamed_through_whole(blob_pds: tuple[Gateway, _BlobPds]) -> None:
    """getBlob starts reaching the client before the PDS has sent it all, and arrives intact."""
    gw, pds = blob_pds
    token = await _session(gw, "bob", "blobs")
    resp = await gw.client.get("/xrpc/com.atproto.sync.getBlob", params={"did": DID, "cid": BLOB_CID},
                               headers={"Authorization": f"Bearer {token}"})
    assert (resp.status, resp.content_type) == (200, "image/jpeg")
    assert resp.headers.get("Transfer-Encoding") == "chunked", resp.headers
    # Half the blob is all the PDS has sent: a gateway that held answers whole would send nothing yet.
    received = bytearray(await asyncio.wait_for(resp.content.readexactly(1024 * 1024), 10))
    pds.release.set()
    received += await resp.content.read()
    assert (len(received), hashlib.sha256(received).hexdigest()) == (
        len(pds.blob), hashlib.sha256(pds.blob).hexdigest())
    # The PDS's first session had expired: Byline logged in again and asked once more.
    assert pds.tokens == ["Bearer stale", "Bearer fresh"]


async def test_a_blob_the_pds_has_not_is_its_error(blob_pds: tuple[Gateway, _BlobPds]) -> None:
    """The PDS's own error for a missing blob comes back as it gave it."""
    gw, _ = blob_pds
    token = await _session(gw, "bob", "blobs")
    resp = await gw.client.get("/xrpc/com.atproto.sync.getBlob", params={"did": DID, "cid": "bafkreinothere"},
                               headers={"Authorization": f"Bearer {token}"})
    assert (resp.status, await resp.json()) == (400, {"error": "BlobNotFound", "message": "Blob not found"})
