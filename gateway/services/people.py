"""People who sign in to the pages: names and passwords (Argon2id), and browser sessions.

A person's name is the one the policy files give them; having a password gives no role (the
policies do). A session is a random cookie of which only the SHA-256 is stored; each carries
its own random CSRF value, which every form of the pages sends back. Changing a password signs
every session of that person out.

A browser that signed in is given a device cookie (:mod:`gateway.services.devices`): its
failures then count against that cookie, not against the name, so guesses from elsewhere that
use up the name's allowance do not keep the person out of their own browser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from gateway.audit.appender import Appender, LogTxn
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.services.devices import LIFETIME as DEVICE_LIFETIME
from gateway.services.devices import DeviceCookies
from gateway.services.identity import end_app_token
from gateway.services.throttle import Throttle, client_key
from gateway.storage import oauth as oauth_sql
from gateway.storage import people as sql
from gateway.storage.db import Database
from gateway.types import duration_micros, person_name_problem

_EMAIL = re.compile(r"[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
"""Longer passwords are refused before hashing: Argon2 takes any length, at a cost per byte."""

_HASHER = PasswordHasher()


def decoy_hash(hasher: PasswordHasher) -> str:
    """A hash to check a password against when the name is unknown, so that an unknown name
    takes as long as a wrong password: ``hasher``'s parameters (what verifying costs), a random
    salt and a random digest, which no password matches. Nothing is hashed to make it: hashing
    a decoy at Byline's cost took a fifth to a half of a second at every start of `byline
    serve` and of every `byline` command."""

    def b64(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode().rstrip("=")

    kind = f"argon2{hasher.type.name.lower()}"
    costs = f"m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
    return f"${kind}$v={ARGON2_VERSION}${costs}${b64(hasher.salt_len)}${b64(hasher.hash_len)}"


_DECOY = decoy_hash(_HASHER)


@dataclass(frozen=True, kw_only=True)
class Session:
    """A signed-in person, and the CSRF value their session's forms carry."""

    person: str
    csrf: str

    def csrf_matches(self, sent: str | None) -> bool:
        """Whether a form's CSRF value is this session's."""
        return sent is not None and hmac.compare_digest(self.csrf.encode(), sent.encode())


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    """A sign-in that worked: the new session's cookie (shown once), the session, and the device
    cookie for the browser (None where no device cookies are made: the command line)."""

    cookie: str
    session: Session
    device: str | None


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """``name`` when it is a valid person's name, else 422."""
    if problem := person_name_problem(name):
        raise BylineError(Code.VALIDATION, f"{name[:80]!r} {problem}")
    return name


def check_password(password: str) -> str:
    """``password`` when it is long enough and not absurdly long, else 422."""
    if len(password) < MIN_PASSWORD:
        raise BylineError(Code.VALIDATION, f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BylineError(Code.VALIDATION, f"a password has at most {MAX_PASSWORD} characters")
    return password


def check_email(email: str | None) -> str | None:
    """``email`` when it looks like one address (or None), else 422."""
    if email is None or email == "":
        return None
    if not _EMAIL.fullmatch(email):
        raise BylineError(Code.VALIDATION, f"not an email address: {email[:80]!r}")
    return email


@dataclass(kw_only=True)
class People:
    """Adds people, checks passwords, opens and ends sessions."""

    db: Database
    clock: Clock
    throttle: Throttle
    devices: DeviceCookies | None = None
    """Device cookies, where browsers sign in (the gateway); None for the command line."""
    session_lifetime: timedelta = timedelta(days=14)

    @property
    def device_lifetime(self) -> timedelta:
        """How long a browser keeps its device cookie (as long as the gateway takes it)."""
        return self.devices.lifetime if self.devices is not None else DEVICE_LIFETIME

    async def add(self, name: str, password: str, *, email: str | None = None) -> None:
        """A new person who can sign in (409 when the name is taken)."""
        check_name(name)
        hashed = await asyncio.to_thread(_HASHER.hash, check_password(password))
        now = now_micros(self.clock)
        async with self.db.write() as txn:
            if not await sql.insert_person(txn, name=name, password_hash=hashed, email=check_email(email), at=now):
                raise BylineError(Code.CONFLICT, f"{name} can already sign in: use set-password")

    async def set_password(self, name: str, password: str, *, appender: Appender) -> tuple[int, int]:
        """A new password: every page session of the person ends, and so does every app token
        a sign-in with a password or a page session gave an app (an old password may be why it
        changes, and whoever knew it could have signed an app in), each logged as
        ``client.revoked``, as an app's token that ends always is. An app signed in with a
        gateway token ends with that token instead. How many sessions and app tokens ended
        (404: no such person)."""
        hashed = await asyncio.to_thread(_HASHER.hash, check_password(password))

        async def work(ltx: LogTxn) -> tuple[int, int]:
            if not await sql.set_password(ltx.txn, name, password_hash=hashed, at=ltx.now):
                raise BylineError(Code.NOT_FOUND, f"no person named {name!r} can sign in (byline user add)")
            sessions = await sql.end_sessions_of(ltx.txn, name, at=ltx.now)
            apps = await oauth_sql.password_app_tokens(ltx.txn, name, now=ltx.now)
            for app in apps:
                await end_app_token(ltx, app["token_hash"], account=app["account"], app=app,
                                    reason=f"{name}'s password changed")
            return sessions, len(apps)

        return await appender.submit(work)

    async def set_email(self, name: str, email: str | None) -> None:
        """A new email address for notifications (None: none)."""
        async with self.db.write() as txn:
            if not await sql.set_email(txn, name, email=check_email(email), at=now_micros(self.clock)):
                raise BylineError(Code.NOT_FOUND, f"no person named {name!r} can sign in (byline user add)")

    async def sign_in(self, name: str, password: str, *, client: str, ending: Sequence[str] = (),
                      device: str | None = None) -> SignedIn:
        """A new session for a right name and password; 401 otherwise, and 429 after too many
        failures from this address, or for this name. A browser that sends a valid device cookie
        for this very name (``device``) is counted by that cookie instead of by the name: wrong
        passwords sent from elsewhere for the name do not keep it out, and its own wrong ones
        lock the cookie out after the same allowance. The sessions of the cookies in ``ending``
        (the browser's until now) end as the new one opens, and only then."""
        known = self.devices.read(device) if self.devices is not None else None
        keys = (client_key(client), known.key if known is not None and known.person == name
                else f"person:{name.lower()}")
        with self.throttle.attempt(*keys):
            if len(password) > MAX_PASSWORD or person_name_problem(name):
                row = None
            else:
                async with self.db.read() as txn:
                    row = await sql.get_person(txn, name)
            stored = row["password_hash"] if row is not None else _DECOY
            try:
                ok = await asyncio.to_thread(_HASHER.verify, stored, password[:MAX_PASSWORD]) and row is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            if not ok or row is None:
                self.throttle.failed(*keys)
                raise BylineError(Code.UNAUTHENTICATED, "That name and password do not match.")
        cookie, session = await self.open_session(row["name"], ending=ending)
        # A fresh cookie each time (OWASP): a fresh allowance, and its 180 days from now.
        issued = self.devices.issue(session.person) if self.devices is not None else None
        return SignedIn(cookie=cookie, session=session, device=issued)

    async def open_session(self, person: str, *, ending: Sequence[str] = ()) -> tuple[str, Session]:
        """A new session for ``person``: the cookie (shown once) and the session. The sessions of
        the cookies in ``ending`` end in the same transaction: a browser signed in afresh (as
        someone else, or as the same person) keeps no session of before alive on the server,
        whether a person left it open on a shared computer or someone planted it to share it."""
        cookie = secrets.token_urlsafe(32)
        session = Session(person=person, csrf=secrets.token_urlsafe(32))
        now = now_micros(self.clock)
        async with self.db.write() as txn:
            for old in ending:
                await sql.end_session(txn, _sha256(old), at=now)
            await sql.insert_session(txn, session_hash=_sha256(cookie), person=person, csrf=session.csrf,
                                     at=now, expires_at=now + duration_micros(self.session_lifetime))
        return cookie, session

    async def session(self, cookie: str | None) -> Session | None:
        """The live session a cookie stands for, if any."""
        if not cookie or len(cookie) > 128:
            return None
        async with self.db.read() as txn:
            row = await sql.live_session(txn, _sha256(cookie), now=now_micros(self.clock))
        return Session(person=row["person"], csrf=row["csrf"]) if row is not None else None

    async def sign_out(self, cookie: str) -> None:
        """End the session a cookie stands for."""
        async with self.db.write() as txn:
            await sql.end_session(txn, _sha256(cookie), at=now_micros(self.clock))

    async def emails(self, names: list[str]) -> dict[str, str]:
        """The email addresses of those of ``names`` who gave one."""
        async with self.db.read() as txn:
            return await sql.emails(txn, sorted(set(names)))
