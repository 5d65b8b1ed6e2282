"""NodeInfo discovery: ``/.well-known/nodeinfo`` links to a NodeInfo 2.0 document that the
official schema accepts, and that Mastodon.py's ``instance_nodeinfo`` reads.

megalodon (npm) tells the server's kind from it: a Mastodon-compatible one, by the ``upstream``
its metadata names. ``schemas/nodeinfo-2.0.json`` is the NodeInfo project's schema for version 2.0 (CC0, from
github.com/jhass/nodeinfo, ``schemas/2.0/schema.json``), checked with ``jsonschema``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import ClientSession
from mastodon import Mastodon

from gateway.clock import ManualClock
from tests.clients.node_client import Megalodon
from tests.clients.world import World
from tests.conftest import started_gateway

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "nodeinfo-2.0.json").read_text())
REL = "http://nodeinfo.diaspora.software/ns/schema/2.0"


async def _get(http: ClientSession, url: str) -> tuple[int, str, Any]:
    async with http.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.json(content_type=None)


async def test_discovery_links_a_valid_nodeinfo_document(world: World) -> None:
    """The JRD links one 2.0 document; the schema validates it; registrations are closed."""
    async with ClientSession() as http:
        status, _, jrd = await _get(http, f"{world.base}/.well-known/nodeinfo")
        assert status == 200
        assert jrd == {"links": [{"rel": REL, "href": f"{world.base}/nodeinfo/2.0"}]}
        status, content_type, document = await _get(http, jrd["links"][0]["href"])
    assert status == 200
    assert content_type == f'application/json; profile="{REL}#"'
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(document)
    assert document["software"]["name"] == "byline"
    assert document["openRegistrations"] is False
    assert document["metadata"]["apis"] == ["mastodon", "atproto"]


def test_the_schema_is_not_a_formality() -> None:
    """The same validator refuses what NodeInfo forbids: a name with capitals, a missing field."""
    validator = jsonschema.Draft4Validator(SCHEMA)
    good = {"version": "2.0", "software": {"name": "byline", "version": "1"}, "protocols": ["activitypub"],
            "services": {"inbound": [], "outbound": []}, "openRegistrations": False, "usage": {"users": {}},
            "metadata": {}}
    validator.validate(good)
    assert not validator.is_valid({**good, "software": {"name": "Byline", "version": "1"}})
    assert not validator.is_valid({key: value for key, value in good.items() if key != "usage"})
    assert not validator.is_valid({**good, "protocols": []})


async def test_mastodon_py_reads_it(world: World) -> None:
    """Mastodon.py finds the document through the well-known link, with no token."""
    client = Mastodon(api_base_url=world.base)
    info = await world.run(client.instance_nodeinfo)
    assert (info["version"], info["software"]["name"], info["openRegistrations"]) == ("2.0", "byline", False)


async def test_megalodon_detects_a_mastodon_server(world: World) -> None:
    """megalodon's ``detector`` follows the discovery link and takes Byline for Mastodon."""
    async with Megalodon(world.base) as client:
        assert await client.ok("detector") == "mastodon"


FORGED_HOST = "attacker.example"
HOST_ECHOED = ("/.well-known/nodeinfo", "/nodeinfo/2.0", "/api/v1/instance", "/api/v2/instance", "/openapi.json")
"""Answers that name the gateway's address: without ``BYLINE_PUBLIC_URL``, the host asked."""


async def _vary_and_body(http: ClientSession, url: str) -> tuple[set[str], str]:
    async with http.get(url, headers={"Host": FORGED_HOST}) as response:
        assert response.status == 200, url
        fields = {f.strip().lower() for v in response.headers.getall("Vary", []) for f in v.split(",")}
        return fields, await response.text()


async def test_an_answer_built_on_the_asked_host_varies_by_it(world: World) -> None:
    """Nodeinfo is kept by shared caches for half an hour: an answer naming a forged ``Host``
    must be kept for that host alone, or every reader is sent the forger's address."""
    async with ClientSession() as http:
        for path in HOST_ECHOED:
            vary, _ = await _vary_and_body(http, f"{world.base}{path}")
            assert "host" in vary, path


async def test_a_configured_public_url_is_named_whatever_the_host(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """With ``BYLINE_PUBLIC_URL`` no answer is built on the asked host, so none names it."""
    async with started_gateway(db_url, policy_dir, clock, public_url="https://byline.example/") as gw:
        base = str(gw.client.make_url("")).rstrip("/")
        async with ClientSession() as http:
            for path in HOST_ECHOED:
                _, body = await _vary_and_body(http, f"{base}{path}")
                assert FORGED_HOST not in body, path
            _, jrd = await _vary_and_body(http, f"{base}/.well-known/nodeinfo")
    assert json.loads(jrd)["links"][0]["href"] == "https://byline.example/nodeinfo/2.0"
