"""XRPC sessions: what an AT Protocol client logs in with when it points at Byline.

A client logs in (``com.atproto.server.createSession``) with the account's handle (or its DID,
or its Byline name) and an *app password*: a gateway token bound to one user and one account,
made by ``byline token create --user NAME --account ACCOUNT``. It gets back an access and a
refresh JWT, as from a PDS. Clients read ``exp`` and ``sub`` from them (the ``atproto`` SDK
refreshes a quarter of an hour before ``exp``), so they are real JWTs:

* HS256, keyed with a random key of its own kept in the database (``gateway.services.keys``),
  shared by every replica, so a session made on one is good on all, with no new file or
  setting. It is not derived from the log signing key: the two keys guard different things, and
  one leaking tells nothing of the other. A symmetric key is enough: only the gateway ever
  checks these tokens.
* ``sub`` is the account's DID: its real one for a Bluesky account (as its PDS tells it), and
  ``did:web:<name>.<host>`` for other accounts, where ``host`` is the host part of the log
  origin (``BYLINE_LOG_ORIGIN``), the gateway's own stable name. ``aud`` is the gateway's
  ``did:web:<host>``. ``scope`` is ``com.atproto.appPass`` (access) or
  ``com.atproto.refresh``, as a PDS issues for app-password logins. ``sid`` names the session.
* Sessions are stored (``storage/xrpc.py``), so ``deleteSession`` really revokes one, and
  revoking the app password ends every session made from it.
* A refresh rotates the session as the reference PDS does (its ``rotateRefreshToken``): the old
  session stays usable for ``REFRESH_GRACE`` (two hours) after its first refresh, so that two
  clients sharing a saved session (an app and its share extension, two tabs, a client whose
  refresh answer was lost and that tries again) do not log each other out. Within the grace
  the old access token still works (until its own ``exp``), and the old refresh token answers
  the *same* successor each time it is used (new tokens for the successor's ``sid``, derived
  from the old ``sid`` with the session key), never a new branch. After the grace the old
  tokens are refused. ``deleteSession`` ends the whole chain at once, old sessions and new,
  with no grace; so do revoking the app password and the person losing every role.

Errors carry the name a PDS would answer with (``xrpc=`` in the details), which the XRPC
surface turns into the PDS's status and body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import jwt
import structlog

from adapters.base import AdapterError
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.policy.engine import roles
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.services.identity import Identity, hash_token
from gateway.services.platforms import Platforms
from gateway.services.posts import Caller
from gateway.services.throttle import Throttle, client_key
from gateway.storage import xrpc as sql
from gateway.storage.db import Database, DatabaseUnavailable
from gateway.types import duration_micros

logger = structlog.get_logger("byline.xrpc")

ACCESS_SCOPE: Final = "com.atproto.appPass"
REFRESH_SCOPE: Final = "com.atproto.refresh"
ACCESS_LIFETIME: Final = timedelta(hours=2)
REFRESH_LIFETIME: Final = timedelta(days=90)
REFRESH_GRACE: Final = timedelta(hours=2)
"""How long a refreshed session stays usable: the reference PDS's ``REFRESH_GRACE_MS``."""
_ALGORITHM: Final = "HS256"
_LOGIN_REFUSED: Final = "Invalid identifier or password"

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_FALLBACK_HOST: Final = "byline.invalid"


def xrpc_error(code: Code, name: str, message: str) -> BylineError:
    """A ``BylineError`` that the XRPC surface answers as a PDS answers ``name``."""
    return BylineError(code, message, xrpc=name)


def service_host(origin: str) -> str:
    """The gateway's host name for DIDs and handles: the host part of its log origin."""
    host = origin.split("/", 1)[0].lower()
    return host if _DOMAIN.match(host) else _FALLBACK_HOST


@dataclass(frozen=True, kw_only=True)
class AccountId:
    """How AT Protocol clients name an account: its DID and handle."""

    did: str
    handle: str


@dataclass(frozen=True, kw_only=True)
class XrpcSession:
    """A live session: the user it acts for, on one account, under that account's DID."""

    sid: str
    user: str
    account: str
    did: str

    @property
    def caller(self) -> Caller:
        """The caller this session stands for in the post services."""
        return Caller(user=self.user, account=self.account)


class XrpcSessions:
    """Creates, checks, refreshes and revokes XRPC sessions."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        identity: Identity,
        policies: PolicyRegistry,
        platforms: Platforms,
        secret: bytes,
        host: str,
        throttle: Throttle,
    ) -> None:
        self._db = db
        self._clock = clock
        self._identity = identity
        self._policies = policies
        self._platforms = platforms
        self._secret = secret
        self._host = host
        self._throttle = throttle

    @property
    def service_did(self) -> str:
        """The gateway's own DID: the audience of its tokens."""
        return f"did:web:{self._host}"

    # -- naming accounts --------------------------------------------------------------------

    def local_id(self, account: str) -> AccountId:
        """The DID and handle of an account that is not on Bluesky (stable for its name)."""
        label = account if _DNS_LABEL.match(account) else "x-" + hashlib.sha256(account.encode()).hexdigest()[:16]
        return AccountId(did=f"did:web:{label}.{self._host}", handle=f"{label}.{self._host}")

    def handle_of(self, loaded: LoadedPolicy) -> str:
        """The handle clients see for an account."""
        policy = loaded.policy
        if policy.platform == "bluesky":
            return policy.handle.removeprefix("@") or policy.account
        return self.local_id(policy.account).handle

    async def account_id(self, loaded: LoadedPolicy) -> AccountId:
        """An account's DID and handle; for a Bluesky account, as its PDS tells them."""
        if loaded.policy.platform != "bluesky":
            return self.local_id(loaded.policy.account)
        try:
            info = await self._platforms.adapter_for(loaded).verify_credentials()
        except AdapterError as exc:
            raise xrpc_error(
                Code.UNAVAILABLE, "UpstreamFailure",
                f"the PDS of {loaded.policy.account} did not answer: {exc.message}",
            ) from None
        return AccountId(did=info.remote_id, handle=self.handle_of(loaded) or info.handle)

    def names(self, loaded: LoadedPolicy, ident: AccountId, identifier: str) -> bool:
        """Whether ``identifier`` (a handle, a DID or the Byline name) names this account."""
        wanted = identifier.strip().lower().removeprefix("@")
        known = {
            loaded.policy.account.lower(), loaded.policy.handle.lower().removeprefix("@"),
            ident.did.lower(), ident.handle.lower(),
        }
        return bool(wanted) and wanted in known

    # -- sessions ---------------------------------------------------------------------------

    async def create(self, *, identifier: str, password: str, client: str) -> dict[str, Any]:
        """``createSession``: log in with an app password; answers the session's tokens.

        Failed logins count against the client's address (429 ``RateLimitExceeded`` once it is
        used up). Not against the identifier named, as a PDS does for its typed passwords: an
        app password here is a Byline token of 256 random bits, which no rate of guessing finds,
        so a count per identifier would protect nothing and would let anyone who knows an
        account's handle keep all of its apps out."""
        keys = (client_key(client),)
        with self._throttle.attempt(*keys, xrpc="RateLimitExceeded"):
            try:
                return await self._create(identifier=identifier, password=password)
            except BylineError as exc:
                if exc.code is Code.UNAUTHENTICATED:
                    self._throttle.failed(*keys)
                raise

    async def _create(self, *, identifier: str, password: str) -> dict[str, Any]:
        try:
            # An app password is a person's token made for one account; an app's OAuth token
            # carries scopes that mean nothing to a PDS client, so it is no app password.
            caller = await self._identity.person(password)
        except DatabaseUnavailable:
            raise  # the password is not known to be wrong: no refusal, and no failure counted
        except BylineError:
            raise xrpc_error(Code.UNAUTHENTICATED, "AuthenticationRequired", _LOGIN_REFUSED) from None
        if caller.account is None:
            raise xrpc_error(
                Code.UNAUTHENTICATED, "AuthenticationRequired",
                f"{_LOGIN_REFUSED}: this token is not an app password; make one with "
                "`byline token create --user NAME --account ACCOUNT`",
            )
        loaded = self._policies.get(caller.account)
        if loaded is None or not roles(loaded.policy, caller.user):
            raise xrpc_error(
                Code.UNAUTHENTICATED, "AuthenticationRequired",
                f"{_LOGIN_REFUSED}: this app password's account has no policy naming {caller.user}",
            )
        ident = await self.account_id(loaded)
        if not self.names(loaded, ident, identifier):
            raise xrpc_error(
                Code.UNAUTHENTICATED, "AuthenticationRequired",
                f"{_LOGIN_REFUSED}: this app password is for another account",
            )
        sid = secrets.token_urlsafe(18)
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            await sql.insert_session(
                txn, key=self._key(sid), user=caller.user, account=caller.account,
                parent_hash=hash_token(password), at=now,
                expires_at=now + duration_micros(REFRESH_LIFETIME),
            )
        logger.info("xrpc_session_created", user=caller.user, account=caller.account)
        return self._answer(sid=sid, did=ident.did, handle=ident.handle)

    async def authenticate(self, authorization: str | None) -> XrpcSession:
        """The live session an access token belongs to, or the error a PDS would give."""
        return await self._session(self._claims(authorization, scopes=(ACCESS_SCOPE,)))

    async def refresh(self, authorization: str | None) -> dict[str, Any]:
        """``refreshSession``: the tokens of the session that replaces this one. The first refresh
        makes it and leaves this one usable for ``REFRESH_GRACE``; a refresh within the grace
        answers the same successor again."""
        old = await self._session(self._claims(authorization, scopes=(REFRESH_SCOPE,)))
        loaded = self._policy(old.account)
        sid = self._successor_sid(old.sid)
        key, new_key = self._key(old.sid), self._key(sid)
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            row = await sql.find_session(txn, key, now=now)
            if row is None:
                raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has been revoked")
            reused = row["successor"] is not None
            if not reused:
                if not await sql.rotate_session(
                    txn, key, successor=new_key, until=now + duration_micros(REFRESH_GRACE), now=now
                ):
                    # Another refresh of this session won the race (or ended it) since it was read.
                    row = await sql.find_session(txn, key, now=now)
                    if row is None or row["successor"] is None:
                        raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has been revoked")
                    reused = True
                else:
                    await sql.insert_session(
                        txn, key=new_key, user=old.user, account=old.account,
                        parent_hash=row["parent_hash"], family=row["family"], at=now,
                        expires_at=now + duration_micros(REFRESH_LIFETIME),
                    )
            if row["successor"] not in (None, new_key):
                raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has been revoked")
            successor = await sql.find_session(txn, new_key, now=now)
            if successor is None:
                raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has been revoked")
        logger.info("xrpc_session_refreshed", user=old.user, account=old.account, again=reused)
        return self._answer(sid=sid, did=old.did, handle=self.handle_of(loaded), until=successor["expires_at"])

    async def delete(self, authorization: str | None) -> None:
        """``deleteSession``: revoke the session (with its refresh or its access token), the ones
        it replaced and the ones that replaced it, at once: no grace for a log-out."""
        session = await self._session(
            self._claims(authorization, scopes=(REFRESH_SCOPE, ACCESS_SCOPE))
        )
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            row = await sql.find_session(txn, self._key(session.sid), now=now)
            if row is None or not await sql.revoke_family(txn, row["family"], at=now):
                raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has been revoked")
        logger.info("xrpc_session_deleted", user=session.user, account=session.account)

    def describe(self, session: XrpcSession) -> dict[str, Any]:
        """``getSession``: who the session is."""
        loaded = self._policy(session.account)
        return {"handle": self.handle_of(loaded), "did": session.did, "active": True}

    # -- inside -----------------------------------------------------------------------------

    def _policy(self, account: str) -> LoadedPolicy:
        loaded = self._policies.get(account)
        if loaded is None:
            raise xrpc_error(
                Code.UNAUTHENTICATED, "AccountNotFound", f"the account {account} has no policy in force"
            )
        return loaded

    def _key(self, sid: str) -> str:
        # Keyed, so only the gateway can compute which row a session id belongs to.
        return sql.SESSION_KEY_PREFIX + hmac.new(self._secret, sid.encode(), hashlib.sha256).hexdigest()

    def _successor_sid(self, sid: str) -> str:
        # Derived, not drawn: every refresh of one session within its grace names the same
        # successor, with nothing but its key stored, and only the gateway can derive it.
        digest = hmac.new(self._secret, b"xrpc-successor:" + sid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def _answer(self, *, sid: str, did: str, handle: str, until: int | None = None) -> dict[str, Any]:
        now = int(self._clock.now().timestamp())
        # A successor answered again may have been refreshed itself: its tokens say when it ends.
        last = now + int(REFRESH_LIFETIME.total_seconds()) if until is None else until // 1_000_000
        common = {"sub": did, "aud": self.service_did, "iat": now, "sid": sid}
        access = jwt.encode(
            {**common, "scope": ACCESS_SCOPE, "exp": min(now + int(ACCESS_LIFETIME.total_seconds()), last),
             "jti": secrets.token_urlsafe(12)},
            self._secret, algorithm=_ALGORITHM, headers={"typ": "at+jwt"},
        )
        refresh = jwt.encode(
            {**common, "scope": REFRESH_SCOPE, "exp": min(now + int(REFRESH_LIFETIME.total_seconds()), last),
             "jti": secrets.token_urlsafe(12)},
            self._secret, algorithm=_ALGORITHM, headers={"typ": "refresh+jwt"},
        )
        return {"accessJwt": access, "refreshJwt": refresh, "handle": handle, "did": did,
                "active": True}

    def _claims(self, authorization: str | None, *, scopes: tuple[str, ...]) -> dict[str, Any]:
        if not authorization:
            raise xrpc_error(Code.UNAUTHENTICATED, "AuthMissing", "Authentication Required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise xrpc_error(Code.UNAUTHENTICATED, "InvalidToken", "Malformed authorization header")
        try:
            # Expiry is checked against the injected clock below, not the wall clock.
            claims: dict[str, Any] = jwt.decode(
                token.strip(), self._secret, algorithms=[_ALGORITHM], audience=self.service_did,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": ["exp", "sub", "scope", "sid"]},
            )
        except jwt.InvalidTokenError:
            raise xrpc_error(Code.UNAUTHENTICATED, "InvalidToken", "Token could not be verified") from None
        if claims.get("scope") not in scopes:
            raise xrpc_error(Code.UNAUTHENTICATED, "InvalidToken", "Bad token scope")
        if not all(isinstance(claims.get(k), str) for k in ("sub", "sid")) or not isinstance(
            claims.get("exp"), int
        ):
            raise xrpc_error(Code.UNAUTHENTICATED, "InvalidToken", "Malformed token")
        if claims["exp"] <= int(self._clock.now().timestamp()):
            raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has expired")
        return claims

    async def _session(self, claims: dict[str, Any]) -> XrpcSession:
        sid = str(claims["sid"])
        async with self._db.read() as txn:
            row = await sql.find_session(txn, self._key(sid), now=now_micros(self._clock))
        if row is None:
            raise xrpc_error(Code.UNAUTHENTICATED, "ExpiredToken", "Token has been revoked")
        loaded = self._policies.get(row["account"])
        if loaded is not None and not roles(loaded.policy, row["user_name"]):
            # A session outlives a role: once the policy names its person no more, it reads
            # nothing through the account's PDS session and writes nothing (a policy gone
            # altogether is said by each method, as AccountNotFound).
            raise xrpc_error(
                Code.UNAUTHENTICATED, "AuthenticationRequired",
                f"{row['user_name']} no longer has a role on {row['account']}: sign in again",
            )
        return XrpcSession(sid=sid, user=row["user_name"], account=row["account"], did=str(claims["sub"]))
