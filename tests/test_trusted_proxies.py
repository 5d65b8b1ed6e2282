"""Behind a reverse proxy (``BYLINE_TRUSTED_PROXIES``), the failed sign-in limit is each
person's, not the proxy's; without it, or from a peer that is not a trusted proxy, a forged
``X-Forwarded-For`` changes nothing (both databases, over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.appkeys import IDENTITY, PEOPLE
from gateway.clock import ManualClock
from gateway.settings import Settings
from tests.conftest import Gateway, started_gateway


async def _sign_in(gw: Gateway, address: str | None, who: str = "alice") -> int:
    """A wrong password for ``who`` (each name has a limit of its own too), through the proxy
    from ``address``."""
    headers = {"X-Forwarded-For": f"198.51.100.9, {address}"} if address else {}
    resp = await gw.client.post("/xrpc/com.atproto.server.createSession",
                                json={"identifier": who, "password": "not-the-password"}, headers=headers)
    await resp.read()
    return resp.status


async def test_behind_a_trusted_proxy_each_person_has_their_own_limit(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    async with started_gateway(db_url, policy_dir, clock, signin_attempts="3/minute",
                               trusted_proxies="127.0.0.1/32, ::1") as gw:
        assert [await _sign_in(gw, "203.0.113.5") for _ in range(4)] == [401, 401, 401, 429]
        # Another person behind the same proxy is not locked out by the first one's guesses.
        assert await _sign_in(gw, "203.0.113.6", who="bob") == 401
        assert await _sign_in(gw, "203.0.113.5", who="bob") == 429, "the first one's address is limited"


async def test_guesses_at_an_account_from_elsewhere_do_not_keep_its_apps_out(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """Wrong app passwords sent against an account's identifier from many addresses, each
    within its own limit, then the account's own app from its address with its real app
    password: signed in. Before, createSession also counted failures per identifier, so anyone
    who knew an account's handle could keep every app of that account out for as long as they
    kept guessing, while an app password (a Byline token of 256 random bits) cannot be guessed
    at any rate. The guessing addresses stay limited."""
    async with started_gateway(db_url, policy_dir, clock, signin_attempts="3/minute",
                               trusted_proxies="127.0.0.1/32, ::1") as gw:
        password = await gw.app[IDENTITY].create(user="alice", account="direct")
        guesses = [await _sign_in(gw, f"198.18.0.{n}", who="direct") for n in range(1, 5) for _ in range(3)]
        assert guesses == [401] * 12
        assert await _sign_in(gw, "198.18.0.1", who="direct") == 429, "each guessing address is limited"
        resp = await gw.client.post("/xrpc/com.atproto.server.createSession",
                                    json={"identifier": "direct", "password": password},
                                    headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.44"})
        body = await resp.json()
        assert resp.status == 200 and body["accessJwt"], body


async def _page_sign_in(gw: Gateway, address: str, who: str) -> int:
    """A wrong password for ``who`` on the sign-in page, through the proxy from ``address``."""
    resp = await gw.client.post("/signin", data={"name": who, "password": "not-the-password"},
                                headers={"X-Forwarded-For": address}, allow_redirects=False)
    await resp.read()
    return resp.status


async def test_addresses_of_one_ipv6_block_share_one_limit(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """One password tried against many names (a spray) from new addresses of one IPv6 /64, a
    block any one subscriber holds whole: limited as from one address, on the sign-in page and
    at createSession. (Before, each address of the block had a limit of its own, so a spray was
    never limited.) Another /64, and an IPv4 client, keep their own."""
    async with started_gateway(db_url, policy_dir, clock, signin_attempts="3/minute",
                               trusted_proxies="127.0.0.1/32, ::1") as gw:
        for name in ("alice", "bob", "carol", "dave", "erin"):
            await gw.app[PEOPLE].add(name, f"{name}-long-password")
        spray = [await _page_sign_in(gw, f"2001:db8:1:2::{n}", who)
                 for n, who in enumerate(("alice", "bob", "carol", "dave"), start=1)]
        assert spray == [401, 401, 401, 429]
        assert await _page_sign_in(gw, "2001:db8:1:2:ffff:ffff:ffff:ffff", "erin") == 429
        assert await _page_sign_in(gw, "2001:db8:1:3::1", "erin") == 401
        assert await _page_sign_in(gw, "203.0.113.7", "erin") == 401
        spray = [await _sign_in(gw, f"2001:db8:9:9::{n}", who=who) for n, who in enumerate("wxyz", start=1)]
        assert spray == [401, 401, 401, 429]


async def test_without_a_trusted_proxy_the_header_is_not_believed(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    async with started_gateway(db_url, policy_dir, clock, signin_attempts="3/minute") as gw:
        statuses = [await _sign_in(gw, f"203.0.113.{n}", who=who) for n, who in enumerate("abcd")]
        assert statuses == [401, 401, 401, 429], "a new forged address each time gains nothing"
    async with started_gateway(db_url, policy_dir, clock, signin_attempts="3/minute",
                               trusted_proxies="10.0.0.0/8") as gw:
        statuses = [await _sign_in(gw, f"203.0.113.{n}", who=who) for n, who in enumerate("abcd")]
        assert statuses == [401, 401, 401, 429], "this peer is no trusted proxy"


@pytest.mark.parametrize("networks", ["0.0.0.0/0", "10.0.0.1, ::/0"])
def test_trusting_every_address_is_refused_at_start(networks: str) -> None:
    """A network that holds every address would let any client name any address: `byline
    serve` refuses it, saying why, rather than start with no limit per client."""
    with pytest.raises(ValidationError, match="trusts every address"):
        Settings(trusted_proxies=networks)
    assert Settings(trusted_proxies="10.0.0.0/8").trusted_networks
