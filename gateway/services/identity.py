"""API tokens: made once, shown once, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from gateway.audit.appender import Appender, LogTxn
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.services.scopes import Caller
from gateway.storage import oauth as oauth_sql
from gateway.storage import tokens as sql
from gateway.storage.db import Database, Row, Txn
from gateway.types import duration_micros, person_name_problem

TOKEN_PREFIX = "byl_"
TOKEN_ID_LENGTH = 12
"""Hex digits of a token's SHA-256 that name it to operators (``byline token list``)."""
MIN_TOKEN_ID_LENGTH = 6
"""The shortest start of an id that ``byline token revoke`` takes: fewer would name many."""
_HEX = re.compile(r"[0-9a-f]+")


def token_id(token_hash: str) -> str:
    """A token's short public id: the start of its stored SHA-256, which tells nothing about the
    token (finding a token from it is as hard as from the whole hash)."""
    return token_hash[:TOKEN_ID_LENGTH]


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    """What an operator is shown of a token: never the token, nor all of its hash."""

    id: str
    user: str
    account: str | None
    label: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: Row) -> TokenInfo:
        """From a row of the tokens table."""
        return cls(id=token_id(row["token_hash"]), user=row["user_name"], account=row["account"],
                   label=row["label"], created_at=row["created_at"], expires_at=row["expires_at"],
                   revoked_at=row["revoked_at"])


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenApp:
    """The app the OAuth sign-in issued a token to."""

    client_id: str
    name: str | None


@dataclass(frozen=True, kw_only=True)
class Revocation:
    """What revoking a token by its id did."""

    token: TokenInfo
    already: bool  # it had been revoked before: nothing changed
    client: str | None  # the app an OAuth token was issued to; its end went into the log


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def end_app_token(ltx: LogTxn, token_hash: str, *, account: str | None, app: Row, reason: str) -> str:
    """Revoke a token the OAuth sign-in gave an app and log it as ``client.revoked``, in the
    caller's log transaction: an app's token ending changes who speaks for an account. ``app``
    holds the grant's ``client_id`` and its app's ``name``; the app is logged under its name,
    or its client id when it has none (its record is gone). Returns that name."""
    client = str(app["name"] or app["client_id"])
    await sql.revoke_token(ltx.txn, token_hash, at=ltx.now)
    await ltx.append("client.revoked", actor="system", account=account, data={"client": client, "reason": reason})
    return client


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
        if expires_in is not None and expires_in <= timedelta(0):
            raise BylineError(Code.VALIDATION, "a token's lifetime must be longer than nothing")
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            return await self.issue(
                txn, user=user, account=account, label=label, at=now,
                expires_at=now + duration_micros(expires_in) if expires_in is not None else None,
            )

    async def issue(
        self, txn: Txn, *, user: str, account: str | None, label: str, at: int,
        expires_at: int | None = None, parent_hash: str | None = None,
    ) -> str:
        """A new token written in the caller's transaction, so that whatever it is issued for
        (an OAuth code exchanged for it) commits with it or not at all; shown once."""
        if problem := person_name_problem(user):
            raise BylineError(Code.VALIDATION, f"{user[:80]!r} {problem}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await sql.insert_token(
            txn, token_hash=hash_token(token), user=user, account=account, label=label, at=at,
            expires_at=expires_at, parent_hash=parent_hash,
        )
        return token

    async def authenticate(self, token: str | None) -> Caller:
        """The caller a bearer token stands for, or 401."""
        caller, _ = await self.authenticate_app(token)
        return caller

    async def authenticate_app(
        self, token: str | None, *, token_hash: str | None = None,
    ) -> tuple[Caller, TokenApp | None]:
        """The caller a bearer token stands for, and the app the sign-in issued it to (None for
        a token made otherwise), in one read; or 401. ``token_hash``: the token's
        :func:`hash_token`, when the caller has it already."""
        if not token:
            raise BylineError(
                Code.UNAUTHENTICATED, "missing token: send Authorization: Bearer <token>"
            )
        async with self._db.read(single=True) as txn:
            row = await sql.find_token(txn, hash_token(token) if token_hash is None else token_hash)
        if row is None:
            raise BylineError(Code.UNAUTHENTICATED, "unknown or revoked token")
        if row["expires_at"] is not None and row["expires_at"] <= now_micros(self._clock):
            raise BylineError(Code.UNAUTHENTICATED, "token expired: ask for a new one")
        scopes = frozenset(row["scopes"].split()) if row["scopes"] is not None else None
        app = TokenApp(client_id=row["client_id"], name=row["app_name"]) if row["client_id"] is not None else None
        return Caller(user=row["user_name"], account=row["account"], scopes=scopes), app

    async def person(self, token: str | None) -> Caller:
        """The person a token of their own stands for: an app's OAuth token is refused (401),
        because a scope means nothing where a person proves who they are."""
        caller = await self.authenticate(token)
        if caller.scopes is not None:
            raise BylineError(
                Code.UNAUTHENTICATED, "an app's token cannot stand for a person here: use your own Byline token"
            )
        return caller

    async def revoke(self, token: str) -> bool:
        """Revoke a token; False when it was not live."""
        async with self._db.write() as txn:
            return await sql.revoke_token(txn, hash_token(token), at=now_micros(self._clock))

    async def listing(self) -> list[TokenInfo]:
        """Every token, revoked and expired ones too, oldest first (``byline token list``)."""
        async with self._db.read() as txn:
            rows = await sql.all_tokens(txn)
        return [TokenInfo.from_row(row) for row in rows]

    async def revoke_by_id(self, appender: Appender, wanted: str) -> Revocation:
        """Revoke the one token whose SHA-256 starts with ``wanted`` (its id, at least
        ``MIN_TOKEN_ID_LENGTH`` hex digits of it, or its whole hash); a start that several
        tokens share is refused (409), one that none has is 404.

        An app's OAuth token ending is a change of who speaks for an account, so it goes into
        the log as ``client.revoked``, as it does when the app revokes it. A person's own token
        is not: its making is not in the log either, and it gives no role (the policy does).
        """
        wanted = wanted.lower()
        if len(wanted) < MIN_TOKEN_ID_LENGTH or not _HEX.fullmatch(wanted):
            raise BylineError(
                Code.VALIDATION, f"not a token id: {wanted!r} (the ID column of `byline token list`: "
                f"at least {MIN_TOKEN_ID_LENGTH} of its hex digits)",
            )

        async def work(ltx: LogTxn) -> Revocation:
            rows = await sql.tokens_with_prefix(ltx.txn, wanted)
            if not rows:
                raise BylineError(Code.NOT_FOUND, f"no token has the id {wanted} (see `byline token list`)")
            if len(rows) > 1:
                which = ", ".join(f"{token_id(r['token_hash'])} ({r['user_name']})" for r in rows)
                raise BylineError(
                    Code.CONFLICT, f"{wanted} starts the id of more than one token: {which}; give more of it"
                )
            row = rows[0]
            info = TokenInfo.from_row(row)
            if row["revoked_at"] is not None:
                return Revocation(token=info, already=True, client=None)
            grant = await oauth_sql.get_token_grant(ltx.txn, row["token_hash"])
            client = None
            if grant is None:
                await sql.revoke_token(ltx.txn, row["token_hash"], at=ltx.now)
            else:
                client = await end_app_token(ltx, row["token_hash"], account=row["account"], app=grant,
                                             reason="revoked by an operator (byline token revoke)")
            return Revocation(token=replace(info, revoked_at=ltx.now), already=False, client=client)

        return await appender.submit(work)

    async def reissue(self, *, label: str, users: Sequence[str]) -> tuple[int, dict[str, str]]:
        """Revoke every live token labelled ``label`` and make one new one with it for each of
        ``users``, in one transaction, so that those of earlier runs end as the new ones begin
        (``byline serve --demo``). How many were revoked, and the new tokens."""
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            revoked = await sql.revoke_labelled(txn, label, at=now)
            tokens = {user: await self.issue(txn, user=user, account=None, label=label, at=now)
                      for user in users}
        return revoked, tokens
