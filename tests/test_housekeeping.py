"""Housekeeping drops what nobody can use any more, and nothing else; on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from gateway.clock import ManualClock, now_micros
from gateway.services.housekeeping import Housekeeper, Swept
from gateway.storage import idempotency as idem_sql
from gateway.storage import media as media_sql
from gateway.storage import notify as notify_sql
from gateway.storage import oauth as oauth_sql
from gateway.storage import people as people_sql
from gateway.storage import tokens as token_sql
from gateway.storage import xrpc as xrpc_sql
from gateway.storage.db import Database, open_database

HOUR = 3_600_000_000  # microseconds


async def _count(db: Database, table: str) -> list[str]:
    key = {"oauth_signins": "ticket_hash", "oauth_codes": "code_hash", "client_idempotency": "key_hash",
           "media": "id", "tokens": "token_hash", "web_sessions": "session_hash"}[table]
    async with db.read() as txn:
        return sorted(str(r[key]) for r in await txn.fetchall(f"SELECT {key} FROM {table}"))


async def test_a_sweep_drops_only_what_has_outlived_its_use(db_url: str, tmp_path: Path) -> None:
    """Expired tickets and codes, keys past their hour, uploads no post took within a day, and
    XRPC and page sessions dead for a day go; everything still usable, or kept for history, stays."""
    clock = ManualClock()
    db = await open_database(db_url)
    now = now_micros(clock)
    async with db.write() as txn:
        for name, expires in (("signin-expired", now - 1), ("signin-live", now + HOUR)):
            await oauth_sql.insert_signin(txn, ticket_hash=name, token_hash="t", csrf_hash="c", at=now - HOUR,
                                          expires_at=expires)
        for name, expires in (("code-expired", now - 1), ("code-live", now + 600_000_000)):
            await oauth_sql.insert_code(txn, code_hash=name, client_id="app", user="alice", account="brand",
                                        redirect_uri="https://app.example/cb", scopes="read write", challenge=None,
                                        challenge_method=None, at=now - HOUR, expires_at=expires,
                                        parent_hash="t")
        for name, age in (("key-old", HOUR + 1), ("key-fresh", HOUR - 1_000_000)):
            assert await idem_sql.remember(txn, token_hash="tok", key_hash=name, kind="status", post_id="1",
                                           at=now - age, stale_before=0)
        for name, age, post in (("m-old", 25 * HOUR, None), ("m-fresh", 23 * HOUR, None), ("m-used", 25 * HOUR, "7")):
            await media_sql.insert(txn, media_id=name, account="brand", user="alice", mime_type="image/png",
                                   description=None, data=b"\x89PNG" + name.encode(), digest="d" * 64, at=now - age)
            if post:
                await media_sql.attach(txn, [name], post_id=post)
        await token_sql.insert_token(txn, token_hash="cli-expired", user="alice", account=None, label="cli",
                                     at=now - 50 * HOUR, expires_at=now - 48 * HOUR)
        sessions = (("xrpc:dead", now - 48 * HOUR), ("xrpc:just-expired", now - HOUR), ("xrpc:live", now + HOUR))
        for key, expires in sessions:
            await xrpc_sql.insert_session(txn, key=key, user="alice", account="brand", parent_hash="p",
                                          at=now - 50 * HOUR, expires_at=expires)
        await xrpc_sql.insert_session(txn, key="xrpc:revoked", user="alice", account="brand", parent_hash="p",
                                      at=now - 50 * HOUR, expires_at=now + HOUR)
        assert await xrpc_sql.revoke_family(txn, "xrpc:revoked", at=now - 30 * HOUR) == 1
        for name, expires in (("page-dead", now - 25 * HOUR), ("page-expired", now - HOUR), ("page-live", now + HOUR),
                              ("page-out", now + 90 * HOUR)):
            await people_sql.insert_session(txn, session_hash=name, person="alice", csrf="c", at=now - 50 * HOUR,
                                            expires_at=expires)
        await people_sql.end_session(txn, "page-out", at=now - 30 * HOUR)  # signed out more than a day ago

    housekeeper = Housekeeper(db=db, clock=clock, interval=60)
    assert await housekeeper.sweep() == Swept(signins=1, codes=1, idempotency_keys=1, media=1, xrpc_sessions=2,
                                              page_sessions=2)
    assert await _count(db, "web_sessions") == ["page-expired", "page-live"]
    assert await _count(db, "oauth_signins") == ["signin-live"]
    assert await _count(db, "oauth_codes") == ["code-live"]
    assert await _count(db, "client_idempotency") == ["key-fresh"]
    assert await _count(db, "media") == ["m-fresh", "m-used"]
    assert await _count(db, "tokens") == ["cli-expired", "xrpc:just-expired", "xrpc:live"]
    assert await housekeeper.sweep() == Swept()  # nothing left to drop

    clock.advance(timedelta(days=1, hours=2))  # now the live session has been dead a day too
    assert await housekeeper.sweep() == Swept(signins=1, codes=1, idempotency_keys=1, media=1, xrpc_sessions=2,
                                              page_sessions=2)
    assert await _count(db, "web_sessions") == []
    assert await _count(db, "media") == ["m-used"]
    assert await _count(db, "tokens") == ["cli-expired"]
    await db.close()


async def test_a_refreshed_session_goes_a_day_after_its_grace(db_url: str) -> None:
    """A session replaced by a refresh is dead once its grace is over, and goes a day later like
    any dead session; its successor, still live, stays. A login ended by deleteSession goes whole."""
    clock = ManualClock()
    db = await open_database(db_url)
    now = now_micros(clock)
    async with db.write() as txn:
        for key in ("xrpc:old", "xrpc:gone"):
            await xrpc_sql.insert_session(txn, key=key, user="alice", account="brand", parent_hash="p",
                                          at=now, expires_at=now + 90 * 24 * HOUR)
        assert await xrpc_sql.rotate_session(txn, "xrpc:old", successor="xrpc:new", until=now + 2 * HOUR, now=now)
        await xrpc_sql.insert_session(txn, key="xrpc:new", user="alice", account="brand", parent_hash="p",
                                      at=now, expires_at=now + 90 * 24 * HOUR, family="xrpc:old")
        assert await xrpc_sql.rotate_session(txn, "xrpc:gone", successor="xrpc:gone-next", until=now + 2 * HOUR,
                                             now=now)
        await xrpc_sql.insert_session(txn, key="xrpc:gone-next", user="alice", account="brand", parent_hash="p",
                                      at=now, expires_at=now + 90 * 24 * HOUR, family="xrpc:gone")
        assert await xrpc_sql.revoke_family(txn, "xrpc:gone", at=now) == 2
    housekeeper = Housekeeper(db=db, clock=clock, interval=60)
    clock.advance(timedelta(days=1, hours=1))  # the grace ended 23 hours ago; the log-out a day and an hour
    assert await housekeeper.sweep() == Swept(xrpc_sessions=2)
    assert await _count(db, "tokens") == ["xrpc:new", "xrpc:old"]
    clock.advance(timedelta(hours=1, seconds=1))
    assert await housekeeper.sweep() == Swept(xrpc_sessions=1)
    assert await _count(db, "tokens") == ["xrpc:new"]
    await db.close()


async def test_the_housekeeper_sweeps_on_its_own_while_running(db_url: str) -> None:
    """Started, it sweeps every interval without being asked; stopped, it sweeps no more."""
    clock = ManualClock()
    db = await open_database(db_url)
    housekeeper = Housekeeper(db=db, clock=clock, interval=0.02)
    await housekeeper.start()
    try:
        for n in range(2):
            now = now_micros(clock)
            async with db.write() as txn:
                await oauth_sql.insert_signin(txn, ticket_hash=f"expired-{n}", token_hash="t", csrf_hash="c",
                                              at=now - HOUR, expires_at=now - 1)
            for _ in range(200):
                if not await _count(db, "oauth_signins"):
                    break
                await asyncio.sleep(0.01)
            assert await _count(db, "oauth_signins") == []
    finally:
        await housekeeper.stop()
    async with db.write() as txn:
        await oauth_sql.insert_signin(txn, ticket_hash="after-stop", token_hash="t", csrf_hash="c",
                                      at=0, expires_at=1)
    await asyncio.sleep(0.1)
    assert await _count(db, "oauth_signins") == ["after-stop"]
    await db.close()


async def test_finished_notifications_go_after_thirty_days(db_url: str) -> None:
    """Deliveries delivered or given up thirty days ago go (their payloads hold a post's words);
    newer ones, and any still owed however old, stay."""
    clock = ManualClock()
    db = await open_database(db_url)
    now = now_micros(clock)
    rows = {"old-delivered": (notify_sql.DELIVERED, 31), "old-failed": (notify_sql.FAILED, 31),
            "old-pending": (notify_sql.PENDING, 31), "new-delivered": (notify_sql.DELIVERED, 29)}
    async with db.write() as txn:
        for msg_id, (state, days) in rows.items():
            at = now - days * 24 * HOUR
            await notify_sql.insert_deliveries(txn, [notify_sql.NewDelivery(
                msg_id=msg_id, channel="webhook", account="direct", target="https://hooks.example/in",
                credential=None, event_type="post.published", log_idx=1, payload="{}",
            )], at=at)
            await txn.execute("UPDATE notify_deliveries SET state = ? WHERE msg_id = ?", state, msg_id)
    assert await Housekeeper(db=db, clock=clock, interval=60).sweep() == Swept(deliveries=2)
    async with db.read() as txn:
        left = sorted(r["msg_id"] for r in await txn.fetchall("SELECT msg_id FROM notify_deliveries"))
    assert left == ["new-delivered", "old-pending"]
    await db.close()
