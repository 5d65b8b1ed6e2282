"""Housekeeping: every few minutes, drop what has outlived its use.

Sign-in tickets and authorization codes past their expiry, Idempotency-Keys past their hour
(Mastodon keeps them for one), XRPC sessions and people's page sessions dead for a day,
notifications delivered or given up thirty days ago, and uploads that no post took within a day
(as Mastodon drops unattached media). Without it these tables only grow, and
uploads are the largest rows the gateway keeps. Every sweep is a plain DELETE of rows nobody can
use any more, so several replicas may sweep at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import timedelta

import structlog

from gateway.clock import Clock, now_micros
from gateway.services.mastodon import IDEMPOTENCY_TTL
from gateway.storage import housekeeping as sql
from gateway.storage.db import Database
from gateway.tasks import cancel_task, run_every
from gateway.types import duration_micros

UNATTACHED_MEDIA_TTL = timedelta(days=1)
DEAD_SESSION_GRACE = timedelta(days=1)
DELIVERY_LOG_KEPT = timedelta(days=30)
logger = structlog.get_logger("byline.housekeeping")


@dataclass(frozen=True, slots=True)
class Swept:
    """How many rows one sweep dropped, by kind."""

    signins: int = 0
    codes: int = 0
    idempotency_keys: int = 0
    media: int = 0
    xrpc_sessions: int = 0
    page_sessions: int = 0
    deliveries: int = 0

    @property
    def total(self) -> int:
        """All rows dropped."""
        return sum(asdict(self).values())


class Housekeeper:
    """Sweeps every ``interval`` seconds while the gateway runs."""

    def __init__(self, *, db: Database, clock: Clock, interval: float) -> None:
        self._db = db
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start sweeping (the first sweep one interval from now)."""
        self._task = run_every(self._interval, self.sweep, name="byline-housekeeping", failed="housekeeping_failed")

    async def stop(self) -> None:
        """Stop sweeping."""
        await cancel_task(self._task)
        self._task = None

    async def sweep(self) -> Swept:
        """Drop everything that has outlived its use now; say how much."""
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            swept = Swept(
                signins=await sql.expired_signins(txn, now=now),
                codes=await sql.expired_codes(txn, now=now),
                idempotency_keys=await sql.stale_idempotency_keys(txn, before=now - duration_micros(IDEMPOTENCY_TTL)),
                media=await sql.unattached_media(txn, before=now - duration_micros(UNATTACHED_MEDIA_TTL)),
                xrpc_sessions=await sql.dead_xrpc_sessions(txn, before=now - duration_micros(DEAD_SESSION_GRACE)),
                page_sessions=await sql.dead_page_sessions(txn, before=now - duration_micros(DEAD_SESSION_GRACE)),
                deliveries=await sql.finished_deliveries(txn, before=now - duration_micros(DELIVERY_LOG_KEPT)),
            )
        if swept.total:
            logger.info("housekeeping_swept", **asdict(swept))
        return swept
