"""The gateway's side of the sandbox platform: its timeline lives in the gateway's database."""

from __future__ import annotations

import json
import secrets

from adapters.base import OutboundPost
from adapters.sandbox import SandboxRecord
from gateway.clock import Clock, now_micros
from gateway.storage import sandbox as sql
from gateway.storage.db import Database


class SandboxTimeline:
    """Implements ``adapters.sandbox.SandboxStore`` on the gateway's database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def find(self, key: str) -> SandboxRecord | None:
        """The sandbox post made with this idempotency key."""
        async with self._db.read() as txn:
            row = await sql.find_by_key(txn, key)
        return SandboxRecord(remote_id=row["id"], account=row["account"]) if row else None

    async def create(self, *, account: str, post: OutboundPost) -> SandboxRecord:
        """Publish once per idempotency key, like a platform that honours Idempotency-Key."""
        options = {"reply_to": post.reply_to, "spoiler_text": post.spoiler_text,
                   "language": post.language, "visibility": post.visibility}
        async with self._db.write() as txn:
            row = await sql.find_by_key(txn, post.idempotency_key)
            if row is not None:
                return SandboxRecord(remote_id=row["id"], account=row["account"])
            remote_id = "sb" + secrets.token_hex(8)
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
