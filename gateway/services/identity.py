"""API tokens: made once, shown once, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.services.posts import Caller
from gateway.storage import tokens as sql
from gateway.storage.db import Database, Txn
from gateway.types import duration_micros

TOKEN_PREFIX = "byl_"
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Identity:
    """Creates, checks and revokes tokens."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self, *, user: str, account: str | None = None, label: str = "",
        expires_in: timedelta | None = None,
    ) -> str:
        """A new random token for ``user`` (bound to one account when given); shown once."""
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            return await self.issue(
                txn, user=user, account=account, label=label, at=now,
                expires_at=now + duration_micros(expires_in) if expires_in else None,
            )

    async def issue(
        self, txn: Txn, *, user: str, account: str | None, label: str, at: int,
        expires_at: int | None = None,
    ) -> str:
        """A new token written in the caller's transaction, so that whatever it is issued for
        (an OAuth code exchanged for it) commits with it or not at all; shown once."""
        if not _USER.match(user):
            raise BylineError(Code.VALIDATION, f"not a valid user name: {user!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await sql.insert_token(
            txn, token_hash=hash_token(token), user=user, account=account, label=label, at=at,
            expires_at=expires_at,
        )
        return token

    async def authenticate(self, token: str | None) -> Caller:
        """The caller a bearer token stands for, or 401."""
        if not token:
            raise BylineError(
                Code.UNAUTHENTICATED, "missing token: send Authorization: Bearer <token>"
            )
        async with self._db.read() as txn:
            row = await sql.find_token(txn, hash_token(token))
        if row is None:
            raise BylineError(Code.UNAUTHENTICATED, "unknown or revoked token")
        if row["expires_at"] is not None and row["expires_at"] <= now_micros(self._clock):
            raise BylineError(Code.UNAUTHENTICATED, "token expired: ask for a new one")
        return Caller(user=row["user_name"], account=row["account"])

    async def revoke(self, token: str) -> bool:
        """Revoke a token; False when it was not live."""
        async with self._db.write() as txn:
            return await sql.revoke_token(txn, hash_token(token), at=now_micros(self._clock))
