"""Failed sign-in attempts, counted and limited, so a token cannot be guessed at speed.

Each failure counts against the client's address (an IPv6 one by its /64, ``client_key``) and
against the name it tried (an XRPC identifier), or, for a browser that brought its device
cookie for that name, against that cookie (``gateway.services.devices``); once either has used up its allowance in the
moving window, further attempts are refused with 429 before any token is checked, right ones
included, until the window moves on.
The counts live in this process (the ``limits`` library's moving window): with several replicas
behind a load balancer, each allows its own share; the workers of one ``byline serve`` each
allow their share of it (``shares``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network, ip_address
from typing import Final

from limits import parse, storage, strategies

from gateway.errors import BylineError, Code
from gateway.metrics import NOT_SCRAPED, Metrics

IPV6_BLOCK: Final = 64
"""The prefix length of the IPv6 block counted as one client: a /64 is the least a subscriber is
given (RFC 6177), and every address in it is theirs to use."""


def client_key(address: str) -> str:
    """The key that failures from ``address`` count against: an IPv4 address itself (an IPv6
    one that carries it too), an IPv6 address by its /64. Keyed by the whole IPv6 address, one
    subscriber would have a fresh allowance at each of their 2**64 addresses, and one password
    tried against every name (each name's own limit seeing one try) would never be limited."""
    try:
        ip = ip_address(address)
    except ValueError:
        return f"address:{address}"
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{IPv6Network((ip, IPV6_BLOCK), strict=False)}"
    return f"address:{ip}"


class Throttle:
    """Counts failures per key and says when a key has had too many."""

    def __init__(self, rate: str, *, what: str, metrics: Metrics = NOT_SCRAPED, shares: int = 1) -> None:
        """``shares``: the processes that count apart behind one address (``BYLINE_WORKERS``):
        each allows its share of ``rate``, rounded up, so that together they allow about what
        ``rate`` says, not that many times over."""
        self._metrics = metrics
        limit = parse(rate)
        if shares > 1:
            limit = type(limit)(math.ceil(limit.amount / shares), limit.multiples, limit.namespace)
        self._limit = limit
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self._what = what
        self._running: dict[str, int] = {}

    @contextlib.contextmanager
    def attempt(self, *keys: str, **details: object) -> Iterator[None]:
        """One attempt against ``keys``, for its whole run: refused (429) when the failures in
        the window and the attempts still running would together use up any key's allowance,
        else counted as running until it ends (count its failure with :meth:`failed`). Many
        guesses sent at once are so limited as surely as one after another: each waits for its
        hash to be checked before it is counted, and they would all pass a check of failures
        alone."""
        self.check(*keys, **details)
        for key in keys:
            self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            for key in keys:
                left = self._running.get(key, 1) - 1
                if left > 0:
                    self._running[key] = left
                else:
                    self._running.pop(key, None)

    def check(self, *keys: str, **details: object) -> None:
        """429 when any of ``keys`` has no failed attempts left in the window (those running
        counted as failed)."""
        for key in keys:
            if not self._limiter.test(self._limit, key, cost=self._running.get(key, 0) + 1):
                reset = self._limiter.get_window_stats(self._limit, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                self._metrics.signin_failed("throttled")
                raise BylineError(
                    Code.TOO_MANY_REQUESTS,
                    f"too many failed {self._what} attempts: try again in {wait} seconds",
                    retry_after=wait, **details,
                )

    def failed(self, *keys: str) -> None:
        """Count one failed attempt against each of ``keys``."""
        self._metrics.signin_failed("wrong")
        for key in keys:
            self._limiter.hit(self._limit, key)
