"""The gateway's side of the sandbox platform: its timeline lives in the gateway's database."""

from __future__ import annotations

import asyncio
import json
import secrets

from adapters.base import OutboundPost
from adapters.sandbox import SandboxRecord
from gateway.clock import Clock, now_micros
from gateway.storage import sandbox as sql
from gateway.storage.db import Database, Txn

_MAX_BATCH = 512


class SandboxTimeline:
    """Implements ``adapters.sandbox.SandboxStore`` on the gateway's database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._waiting: list[tuple[str, OutboundPost, asyncio.Future[SandboxRecord]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def find(self, key: str) -> SandboxRecord | None:
        """The sandbox post made with this idempotency key."""
        async with self._db.read() as txn:
            row = await sql.find_by_key(txn, key)
        return SandboxRecord(remote_id=row["id"], account=row["account"]) if row else None

    async def create(self, *, account: str, post: OutboundPost) -> SandboxRecord:
        """Publish once per idempotency key, like a platform that honours Idempotency-Key.

        Posts sent while a write is under way are written together in the next transaction, as
        a platform takes many requests at once, each answered once it is committed: one
        transaction a post kept the gateway's only SQLite writer from its own work (measured
        with ``python -m bench.scheduler``: the sandbox's writes were what limited 100,000
        posts due in a minute)."""
        future: asyncio.Future[SandboxRecord] = asyncio.get_running_loop().create_future()
        self._waiting.append((account, post, future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_waiting(), name="byline-sandbox-writes")
        return await future

    async def _write_waiting(self) -> None:
        """Write the posts waiting, a transaction for each batch of them, until none waits."""
        while self._waiting:
            batch = [job for job in self._waiting[:_MAX_BATCH] if not job[2].done()]
            del self._waiting[:_MAX_BATCH]
            try:
                async with self._db.write() as txn:
                    records = [await self._create(txn, account, post) for account, post, _ in batch]
            except Exception as exc:  # every post of the batch is refused with the error
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:
                for _, _, future in batch:
                    future.cancel()
                raise
            for (_, _, future), record in zip(batch, records, strict=True):
                if not future.done():
                    future.set_result(record)

    async def _create(self, txn: Txn, account: str, post: OutboundPost) -> SandboxRecord:
        row = await sql.find_by_key(txn, post.idempotency_key)
        if row is not None:
            return SandboxRecord(remote_id=row["id"], account=row["account"])
        remote_id = "sb" + secrets.token_hex(8)
        options = {"reply_to": post.reply_to, "spoiler_text": post.spoiler_text,
                   "language": post.language, "visibility": post.visibility}
        await sql.insert(
            txn, post_id=remote_id, account=account, text=post.text,
            options=json.dumps({k: v for k, v in options.items() if v}),
            key=post.idempotency_key, at=now_micros(self._clock),
        )
        return SandboxRecord(remote_id=remote_id, account=account)

    async def delete(self, remote_id: str) -> None:
        """Mark the sandbox post deleted."""
        async with self._db.write() as txn:
            await sql.mark_deleted(txn, remote_id, at=now_micros(self._clock))

    async def timeline(self, account: str) -> list[dict[str, object]]:
        """An account's live posts, newest first, for the sandbox pages."""
        async with self._db.read() as txn:
            rows = await sql.timeline(txn, account)
        return [
            {"id": r["id"], "text": r["text"], "created_at": int(r["created_at"]),
             "options": json.loads(r["options"])}
            for r in rows
        ]
