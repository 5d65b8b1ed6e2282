"""Who each credential publishes as, in its platform's own words, learned once per credential.

One platform account has one policy file. The loader catches two files that name one account
as written (one credential reference, one token under two ``env:`` names); two *different*
tokens of one account (a second app token made on the Mastodon instance, a second Bluesky app
password, copies of a token in two files) only the platform can tell apart, by answering who
each credential is (``verify_credentials``). :class:`Platforms <gateway.services.platforms.Platforms>`
asks it here, once per credential and process, before an account publishes, and holds both
accounts when two credentials turn out to be one account.

What a credential is known by here is a digest of it under a key this process makes at start
and never keeps (as the loader's token comparison does): no token is stored, logged or shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from adapters.base import AccountInfo, Adapter, AdapterError
from gateway.policy.models import Policy
from gateway.types import Micros

_CREDENTIAL_KEY: Final = secrets.token_bytes(32)
"""This process's own key for knowing a credential again without keeping it."""

UNREACHED_WAIT: Final = 30 * 1_000_000
"""How long a platform that did not say who a credential is is left alone before it is asked
again for that credential (microseconds): less than the minute between the publisher's probes of
an account held back, so that each probe asks again."""


def credential_key(platform: str, server: str, secret: str) -> str:
    """What a credential is known by here: the same secret sent to the same server."""
    message = f"{platform}\n{server}\n{secret}".encode()
    return hmac.new(_CREDENTIAL_KEY, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class PlatformIdentity:
    """The platform account a credential publishes as: what two credentials of one account
    share (``keys``), and how the platform names it, for people (``handle``)."""

    keys: frozenset[tuple[str, ...]]
    handle: str
    asked_at: str = ""
    """The server address the platform was asked at ("" where the account is one anywhere)."""
    partial: bool = False
    """Known at ``asked_at`` only: a Mastodon server that did not give the account's profile
    address, so that its id, its own, cannot be compared with an answer from another address."""

    def same_account(self, other: PlatformIdentity) -> bool:
        """Whether the two are one platform account."""
        return not self.keys.isdisjoint(other.keys)

    def comparable(self, other: PlatformIdentity) -> bool:
        """Whether :meth:`same_account` can tell: False where one of the two could be known
        only at its own address and the other was asked at another (maybe the same server)."""
        return not (self.partial or other.partial) or self.asked_at == other.asked_at


def identity_of(policy: Policy, server: str, info: AccountInfo) -> PlatformIdentity:
    """The platform account ``info`` (a ``verify_credentials`` answer for ``policy``'s
    credential) names. A Bluesky DID and an X user id are one account wherever they are asked.
    A Mastodon account id is the instance's own, and an instance may answer at several
    addresses (``https://social.example`` and ``https://www.social.example``, a port, an
    alias): the account is known by the profile address the instance itself gives it (its
    ``url``, made from the instance's own domain whatever address was asked), so two addresses
    of one instance name one account; by its id at the address asked, too. A server that gives
    no profile address (Mastodon always does) is known by its id at that address only
    (``partial``). An answer naming no account is no answer (retried later)."""
    remote_id = info.remote_id.strip()
    if not remote_id:
        raise AdapterError(f"{policy.platform} said whose the credential is without naming the account",
                           retryable=True)
    if policy.platform != "mastodon":
        return PlatformIdentity(keys=frozenset({(policy.platform, remote_id)}), handle=info.handle or remote_id)
    at = ("mastodon", server, remote_id)
    profile = profile_address(info.url or "")
    handle = info.handle or remote_id
    if profile is None:
        return PlatformIdentity(keys=frozenset({at}), handle=handle, asked_at=server, partial=True)
    return PlatformIdentity(keys=frozenset({at, ("mastodon-profile", profile)}), handle=handle, asked_at=server)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def profile_address(url: str) -> str | None:
    """A Mastodon profile address as one account, or None if it is none: scheme and host in
    lower case, no default port, no trailing slash, no query or fragment, and the path in lower
    case (a Mastodon username is one account in any case: ``@Brand`` is ``@brand``)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host or not parts.path.strip("/"):
        return None
    where = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{where}{parts.path.rstrip('/').lower()}"


@dataclass(frozen=True, slots=True)
class Refused:
    """A credential its platform refused: it publishes as nobody, so it shares no account."""

    error: AdapterError


@dataclass(frozen=True, slots=True)
class Unreached:
    """A platform that did not say who a credential is: when it was asked, and what it answered."""

    at: Micros
    error: AdapterError


Learned = PlatformIdentity | Refused | Unreached
"""What is known of a credential: its account, or why not."""


class AccountHeld(Exception):
    """An account may not publish now: Byline holds its posts, for a reason that is no fault
    of theirs nor of the platform's. ``message`` is for its people and admins (it names Byline
    accounts, never a credential); ``public`` is what the public log says."""

    def __init__(self, message: str, *, public: str) -> None:
        super().__init__(message)
        self.message = message
        self.public = public


SHARED_PUBLIC: Final = ("Byline holds the account's posts: another policy file's credential is for the same "
                        "platform account")
WAITING_PUBLIC: Final = ("Byline holds the account's posts until the platform says which account another policy "
                         "file's credential is for")


def shared_problem(account: str, others: list[str], *, platform: str, handle: str) -> str:
    """Why ``account`` does not publish: its credential and those of ``others`` are one account."""
    names = ", ".join(others)
    return (f"{account} and {names} publish as one {platform} account ({handle}), as {platform} answers for "
            f"their credentials: one platform account has one policy file, so none of them publishes until "
            f"their files name different accounts (remove one, or give it its own account's credential)")


NOT_NAMED_PUBLIC: Final = ("Byline holds the account's posts: its credential is for another platform account than "
                          "its policy file names")


def names(policy: Policy, identity: PlatformIdentity) -> bool | None:
    """Whether ``identity`` (who the platform says ``policy``'s credential is) is the account
    the file's ``handle`` names; None where the file names none. A Bluesky handle written as a
    DID is the DID answered, else the handle answered; an X handle is the username; a Mastodon
    handle is the username (``@brand`` of ``@brand@social.example``): a token is always for an
    account of the instance it is sent to, the one the file names, and an instance asked at
    another address than its own domain (or one that gives no profile address) cannot be
    held to the domain written. Each in any case, as the platforms take them."""
    named = policy.handle.strip().removeprefix("@").lower()
    if not named:
        return None
    if policy.platform == "bluesky" and named.startswith("did:"):
        return ("bluesky", policy.handle.strip().removeprefix("@")) in identity.keys
    answered = identity.handle.strip().removeprefix("@").lower()
    if policy.platform != "mastodon":
        return named == answered
    return named.partition("@")[0] == answered.partition("@")[0]


def not_named_problem(account: str, *, platform: str, named: str | None, answered: str, before: str = "") -> str:
    """Why ``account`` does not publish: its credential is for ``answered``, not the ``named``
    its file gives (or, where it gives none, not ``before``, the account it published as)."""
    if named is None:
        return (f"{account} is held: its policy file names no handle, and {platform} answers that its credential "
                f"is for {answered}, where it published as {before}; its posts wait, none lost, until its "
                f"credential is put back or the file names the handle it is to publish as")
    return (f"{account} is held: its policy file names {named} as the {platform} account it publishes as, but "
            f"{platform} answers that its credential is for {answered}; its posts wait, none lost, until the "
            f"file's handle or its credential is put right")


UNCOMPARED_PUBLIC: Final = ("Byline holds the account's posts: another policy file's credential may be for the "
                           "same platform account, and its server does not say")


def uncompared_problem(account: str, other: str, *, platform: str) -> str:
    """Why ``account`` does not publish: it and ``other`` are at two addresses that may be one
    server, and a server did not give the account's profile address to tell them apart."""
    return (f"{account} waits: it and {other} name their {platform} servers by different addresses, which may "
            f"be one server, and the server did not give the account's profile address (url) that would tell "
            f"whether their credentials are one account; two policy files must not publish as one account, so "
            f"its posts wait until their files name one address, or a server that says")


def waiting_problem(account: str, other: str, *, platform: str, error: AdapterError) -> str:
    """Why ``account`` does not publish yet: ``other``'s credential, on its server, may be its account."""
    return (f"{account} waits until {platform} says which account {other}'s credential is for "
            f"({error.message}): two policy files must not publish as one account, so its posts wait; "
            f"{platform} is asked again every minute")


class Learning:
    """What each credential is known to be, asked of its platform at most once at a time."""

    def __init__(self) -> None:
        self.known: dict[str, Learned] = {}
        self._asking: dict[str, asyncio.Task[Learned]] = {}

    async def ask(self, credential: str, policy: Policy, server: str, adapter: Adapter, *, now: Micros) -> Learned:
        """Ask the platform who ``credential`` is, and keep the answer. A credential being asked
        about already is waited for, not asked twice; one caller given up (cancelled) leaves
        the question to finish for the others and for the next."""
        task = self._asking.get(credential)
        if task is None:
            task = asyncio.ensure_future(self._learn(credential, policy, server, adapter, now=now))
            self._asking[credential] = task

            def done(finished: asyncio.Task[Learned]) -> None:
                if self._asking.get(credential) is finished:
                    del self._asking[credential]
                if not finished.cancelled():
                    finished.exception()  # a crash is each waiter's to raise; with none left, it is read

            task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _learn(self, credential: str, policy: Policy, server: str, adapter: Adapter, *, now: Micros) -> Learned:
        learned: Learned
        try:
            learned = identity_of(policy, server, await adapter.verify_credentials())
        except AdapterError as exc:
            learned = Refused(exc) if exc.auth_failed else Unreached(at=now, error=exc)
        if not (isinstance(learned, Unreached) and isinstance(self.known.get(credential), PlatformIdentity)):
            # A platform that does not answer now does not unsay whose a credential is: one
            # credential is always one account's (a refusal is kept: it publishes as nobody now).
            self.known[credential] = learned
        return learned

    def forget(self, credentials: set[str]) -> None:
        """Keep only what is known of ``credentials`` (those in use)."""
        self.known = {c: learned for c, learned in self.known.items() if c in credentials}
